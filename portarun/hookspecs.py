"""The plugin surface: the hook specifications, the one ``hookimpl`` marker every plugin uses,
and the ``Register`` type of ``portarun_register_providers``'s argument.

A plugin is a module whose functions are marked with :data:`hookimpl` (also exported as
``portarun.hookimpl``), named under the ``portarun`` entry-point group of its distribution::

    from portarun.hookspecs import Register, hookimpl

    @hookimpl
    def portarun_register_providers(register: Register) -> None:
        register(MyProvider)

Built-in behaviour is registered through the same hooks as ``trylast`` implementations, so a
plugin's implementation wins, and a ``wrapper=True`` implementation can adjust any result. A
marked function whose name is not one of these hooks (a misspelling) is reported when plugins
load (:meth:`portarun._plugins.manager.PluginSet.check_pending`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from .devices import DeviceInfo
    from .loader import LoaderOptions
    from .paths import Paths
    from .provider import Provider
    from .runtime import Runtime
    from .submission import Submission, SubmitOptions

#: The project name pluggy matches markers and specifications by.
PROJECT = "portarun"
#: Marks a plugin's hook implementations: ``@hookimpl``, ``@hookimpl(trylast=True)``,
#: ``@hookimpl(wrapper=True)``. The same object as ``portarun.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)
hookspec = pluggy.HookspecMarker(PROJECT)

#: The ``register`` callable handed to ``portarun_register_providers``: call it once per
#: :class:`~portarun.provider.Provider` subclass.
Register = Callable[[type["Provider"]], None]


@hookspec
def portarun_register_providers(register: Register) -> None:
    """Offer this plugin's provider classes. Called once per plugin set (a process loads one
    per combination of the plugin-control variables).

    :param register: call ``register(ProviderClass)`` for each concrete
        :class:`~portarun.provider.Provider` subclass. A class that is not one, or whose name
        another plugin already registered, is skipped and reported.
    :return: nothing; what was passed to ``register`` is what counts.
    """


@hookspec(firstresult=True)
def portarun_resolve_paths(provider: Provider, project: str) -> Paths | None:
    """Decide where each kind of data lives for the chosen provider.

    :param provider: the provider that won detection, built on the probe.
    :param project: the project's folder name (``detect(project=...)``, ``PORTARUN_PROJECT``
        or the script's name).
    :return: the :class:`~portarun.paths.Paths`, or ``None`` to leave it to the next
        implementation (the built-in one applies the project namespace and the
        ``PORTARUN_<ROLE>_DIR`` overrides, and checks them). First result wins.
    """


@hookspec(firstresult=True)
def portarun_resolve_device(runtime: Runtime) -> DeviceInfo | None:
    """Decide the accelerator this process uses, on first access to ``rt.device``.

    :param runtime: the detected runtime (``runtime.provider.device_order()``,
        ``runtime.device_request`` and ``runtime.probe``'s inventory are the built-in inputs).
    :return: a :class:`~portarun.devices.DeviceInfo`, or ``None`` for the built-in decision.
        First result wins.
    """


@hookspec(firstresult=True)
def portarun_resolve_loader(runtime: Runtime) -> LoaderOptions | None:
    """Decide the DataLoader settings, on first access to ``rt.loader``.

    :param runtime: the detected runtime (its CPU quota, memory and ``/dev/shm`` are the
        built-in inputs).
    :return: a :class:`~portarun.loader.LoaderOptions`, or ``None`` for the built-in plan.
        First result wins.
    """


@hookspec(firstresult=True)
def portarun_submit(runtime: Runtime, path: Path, options: SubmitOptions) -> Submission | None:
    """Deliver a submission that ``rt.submit()`` has validated and written.

    :param runtime: the detected runtime.
    :param path: the local file written (under ``rt.paths.output``, or scratch when the output
        is remote).
    :param options: what ``rt.submit()`` was asked and found, as a
        :class:`~portarun.submission.SubmitOptions` (file name, competition, message,
        ``dry_run``, the sample, row count, columns, whether rows were reordered, which checks
        ran).
    :return: the :class:`~portarun.submission.Submission`, or ``None`` for the built-in
        delivery (upload to a remote output, the Kaggle API, Colab's download offer). First
        result wins.
    """
