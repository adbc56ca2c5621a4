"""The built-in implementations of portarun's hooks, registered ``trylast`` so that a plugin's
implementation wins and a ``wrapper=True`` one sees their result.

Each imports its feature module only when called: registering them costs nothing at
``detect()``, which never needs a device, a loader or a submission.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from pathlib import Path

    from ..devices import DeviceInfo
    from ..loader import LoaderOptions
    from ..paths import Paths
    from ..provider import Provider
    from ..runtime import Runtime
    from ..submission import Submission, SubmitOptions


@hookimpl(trylast=True)
def portarun_resolve_paths(provider: Provider, project: str) -> Paths:
    """Path roles with overrides applied (:func:`portarun.paths.resolve`)."""
    from ..paths import resolve

    return resolve(provider, project)


@hookimpl(trylast=True)
def portarun_resolve_device(runtime: Runtime) -> DeviceInfo:
    """The device decision (:func:`portarun.devices.resolve`)."""
    from ..devices import resolve

    return resolve(runtime)


@hookimpl(trylast=True)
def portarun_resolve_loader(runtime: Runtime) -> LoaderOptions:
    """DataLoader settings (:meth:`portarun.loader.LoaderOptions.for_runtime`)."""
    from ..loader import LoaderOptions

    return LoaderOptions.for_runtime(runtime)


@hookimpl(trylast=True)
def portarun_submit(runtime: Runtime, path: Path, options: SubmitOptions) -> Submission:
    """Submission delivery (:func:`portarun.submission.deliver`)."""
    from ..submission import deliver

    return deliver(runtime, path, options)
