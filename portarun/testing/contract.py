"""The provider contract, as checks any plugin's tests can run on its own provider classes.

Every provider portarun ships passes these, and so should yours::

    from portarun.testing.contract import check_provider
    from portarun_acme.plugin import AcmeProvider

    def test_contract():
        check_provider(AcmeProvider)

or, to see each check as its own test::

    import pytest
    from portarun.testing.contract import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    def test_contract(check):
        check(AcmeProvider)

A provider that is not registered (its distribution is not installed, say) is registered for
the duration of each check. Each check runs on a simulated machine (:func:`~portarun.testing.simulate`),
writes only under a temporary folder, and raises :class:`ContractViolation` (an
``AssertionError``) saying which promise the provider broke. The promises are those
docs/plugins.md lists: a valid class, registered as portarun registers plugins' classes; a
``detect()`` that is pure, deterministic, well-formed and never claims an empty machine; and,
forced onto any machine, usable paths under the probe's root, nothing created until something
writes there, a positive session limit or none, and a device order ending in ``cpu``; presets on
which the provider wins; and well-typed answers from the optional host services (secret sources,
quotas, submission note, storage sync, missing-path hint).
"""
from __future__ import annotations

import tempfile
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .._plugins.manager import _instance_problem, checked_detection, plugin_set, provider_problem
from ..errors import PortarunWarning
from ..hookspecs import Register, hookimpl
from ..paths import ROLES, is_remote
from ..provider import MATCH_THRESHOLD, Detection, HostLocations, Preset, Provider, Quota, SessionLimits
from . import plugin, simulate

#: The device kinds a provider may list in ``device_order()``.
DEVICE_KINDS = frozenset({"cuda", "xla", "mps", "cpu"})


class ContractViolation(AssertionError):
    """A provider broke a promise of the provider contract."""


def _require(ok: object, cls: type[Provider], message: str) -> None:
    if not ok:
        raise ContractViolation(f"provider {getattr(cls, 'name', '?')!r} ({cls.__module__}.{cls.__qualname__}) "
                                f"{message}")


@contextmanager
def _registered(cls: type[Provider]) -> Iterator[None]:
    """``cls`` registered for the block, unless the installed plugins already register it (in the
    plugin set of the checks' simulations, whose environments set no plugin controls)."""
    if plugin_set({}).providers().get(cls.name) is cls:
        yield
        return

    @hookimpl
    def portarun_register_providers(register: Register) -> None:
        register(cls)

    with plugin(types.SimpleNamespace(portarun_register_providers=portarun_register_providers),
                name=f"contract-{cls.name}"):
        yield


def check_class(cls: type[Provider]) -> None:
    """The class is one portarun accepts at registration: a concrete ``Provider`` subclass with a
    lower-case ``name`` (what ``PORTARUN_HOST`` takes), a ``display_name``, an ``int`` priority,
    a ``bool`` fallback and ``marker_modules`` a tuple of module names."""
    problem = provider_problem(cls)
    _require(problem is None, cls, f"would be refused at registration: it {problem}")
    _require(cls.name == cls.name.strip().lower(), cls, f"has a name that is not lower case: {cls.name!r}")


def check_empty_machine(cls: type[Provider]) -> None:
    """On a machine with no variables, folders or modules, ``detect()`` returns ``None`` or a
    :class:`~portarun.provider.Detection` below the threshold (only a fallback may claim it), and
    ``local`` wins."""
    with _registered(cls), simulate(env={}) as rt:
        detection = cls.detect(rt.probe)
        _require(detection is None or isinstance(detection, Detection), cls,
                 f"returned {type(detection).__name__} from detect(), not a Detection or None")
        if not cls.fallback and detection is not None:
            _require(detection.confidence < MATCH_THRESHOLD, cls,
                     f"claims an empty machine (confidence {detection.confidence:.2f}): {detection.evidence}")
        _require(rt.host.name == "local", cls, f"made {rt.host.name!r} win on an empty machine")


def check_detection(cls: type[Provider]) -> None:
    """On another host's machine (a simulated Kaggle notebook), ``detect()`` answers the same
    twice, with a confidence in [0, 0.99] and non-empty evidence strings that portarun's own
    check of detections (:func:`portarun._plugins.manager.checked_detection`) accepts unchanged."""
    with _registered(cls), simulate("kaggle") as rt:
        first, second = cls.detect(rt.probe), cls.detect(rt.probe)
        _require(first == second, cls, f"answered detect() differently twice on one machine: {first} then {second}")
        if first is None:
            return
        checked, error = checked_detection(first)
        _require(error is None, cls, f"{error} from detect()")
        _require(checked == first, cls, "returned evidence that portarun had to clean (control characters, "
                                        "more than 50 lines or lines over 500 characters)")
        _require(0.0 <= first.confidence <= 0.99, cls, f"returned confidence {first.confidence}, outside [0, 0.99]")
        _require(all(isinstance(line, str) and line for line in first.evidence), cls,
                 "returned an empty evidence line")


def check_forced_paths(cls: type[Provider]) -> None:
    """Forced onto a bare machine (``PORTARUN_HOST``), the provider still wins and hands out paths
    (with a warning that they belong to another platform, unless it is a fallback): local ones
    under the simulation's root, none created until something writes there; and it answers
    what ``detect()`` asks a winner (:func:`portarun._plugins.manager._instance_problem`)."""
    with tempfile.TemporaryDirectory(prefix="portarun-contract-") as folder:
        root = Path(folder).resolve() / "root"
        with _registered(cls), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with simulate(env={"PORTARUN_HOST": cls.name}, root=root) as rt:
                _require(rt.host.name == cls.name and rt.host.forced, cls,
                         f"could not be forced with PORTARUN_HOST (the host is {rt.host.name!r})")
                locations = cls(rt.probe).locations(rt.project)
                _require(isinstance(locations, HostLocations), cls,
                         f"returned {type(locations).__name__} from locations(), not a HostLocations")
                problem = _instance_problem(cls, rt.probe)
                _require(problem is None, cls, f"cannot answer as a winner: {problem}")
                for role in ROLES:
                    value = rt.paths[role]
                    if is_remote(value):
                        continue
                    _require(root in Path(value).parents, cls,
                             f"put {role} at {value}, outside the simulated machine's root {root} (build paths "
                             "with self.probe.path(...))")
                    _require(not Path(value).exists() or Path(value) == root, cls,
                             f"created {role} ({value}) before anything was written there")
        if not cls.fallback:
            _require(any(issubclass(w.category, PortarunWarning) for w in caught), cls,
                     "was forced onto a machine without its evidence and no warning said so")


def check_session_and_devices(cls: type[Provider]) -> None:
    """``session_limits()`` is a :class:`~portarun.provider.SessionLimits` with a source and a
    positive limit or ``None``; ``device_order()`` lists known device kinds ending in ``cpu``."""
    with _registered(cls), simulate(env={}) as rt:
        provider = cls(rt.probe)
        limits = provider.session_limits()
        _require(isinstance(limits, SessionLimits) and limits.source, cls,
                 "returned session limits without a source")
        _require(limits.limit is None or limits.limit.total_seconds() > 0, cls,
                 f"has a session limit that is not positive: {limits.limit}")
        order = provider.device_order()
        _require(order and set(order) <= DEVICE_KINDS and order[-1] == "cpu", cls,
                 f"has device_order() {order!r}: it must list kinds from {sorted(DEVICE_KINDS)} ending with 'cpu'")


def check_presets(cls: type[Provider]) -> None:
    """``presets()`` maps names (the provider's ``name`` or ``name-<variant>``, so that no two
    providers' presets clash) to :class:`~portarun.provider.Preset` records, and simulating each
    one makes this provider win."""
    presets = cls.presets()
    _require(isinstance(presets, Mapping), cls, f"returned {type(presets).__name__} from presets(), not a mapping")
    for name, preset in presets.items():
        _require(isinstance(preset, Preset), cls, f"returned {type(preset).__name__} for preset {name!r}, not a Preset")
        _require(name == cls.name or str(name).startswith(cls.name + "-"), cls,
                 f"ships a preset {name!r} not named {cls.name!r} or {cls.name + '-<variant>'!r}")
        with _registered(cls), warnings.catch_warnings():
            warnings.simplefilter("ignore", PortarunWarning)  # a preset may show a host's own warnings
            with simulate(name) as rt:
                _require(rt.host.name == cls.name, cls, f"ships a preset {name!r} on which {rt.host.name!r} wins")


def check_host_services(cls: type[Provider]) -> None:
    """What a provider may supply beyond paths answers in the declared types, forced onto a bare
    machine: ``secret_sources()`` a tuple of :class:`~portarun.secrets.Source`; ``quotas()``
    absolute host folders mapped to :class:`~portarun.provider.Quota` with a positive limit and a
    source; ``submission_note()`` and ``missing_path_hint()`` ``None`` or text; ``stand_in_apis()``
    module names mapped to functions; ``storage_sync()`` ``None`` or an object with
    ``ensure_mounted``, ``flush`` and ``dirty``. (``deliver_submission``
    and ``mount_drive`` act on the host, so they are not called here.)"""
    from ..secrets import Source

    with _registered(cls), warnings.catch_warnings():
        warnings.simplefilter("ignore", PortarunWarning)
        with simulate(env={"PORTARUN_HOST": cls.name}) as rt:
            provider = cls(rt.probe)
            sources = provider.secret_sources()
            _require(isinstance(sources, tuple) and all(isinstance(x, Source) for x in sources), cls,
                     f"returned {sources!r} from secret_sources(), not a tuple of portarun.secrets.Source")
            quotas = provider.quotas()
            _require(isinstance(quotas, Mapping), cls, f"returned {type(quotas).__name__} from quotas(), not a mapping")
            for folder, quota in quotas.items():
                _require(isinstance(folder, str) and folder.startswith("/"), cls,
                         f"has a quota on {folder!r}: quotas are keyed by absolute host folders")
                _require(isinstance(quota, Quota) and isinstance(quota.limit, int) and quota.limit > 0
                         and quota.source, cls,
                         f"has quota {quota!r} on {folder}: it needs a positive limit and a source")
            for what, answer in (("submission_note", provider.submission_note("submission.csv")),
                                 ("missing_path_hint", provider.missing_path_hint("/portarun-contract/missing"))):
                _require(answer is None or (isinstance(answer, str) and answer), cls,
                         f"returned {answer!r} from {what}(), not None or text")
            apis = cls.stand_in_apis()
            _require(isinstance(apis, Mapping) and all(
                isinstance(module, str) and isinstance(functions, Mapping)
                and all(callable(f) for f in functions.values())
                for module, functions in apis.items()), cls,
                f"returned {apis!r} from stand_in_apis(), not module names mapped to attribute names and functions")
            sync = provider.storage_sync(Path(rt.paths.scratch) if not is_remote(rt.paths.scratch) else rt.probe.root)
            _require(sync is None or all(hasattr(sync, a) for a in ("ensure_mounted", "flush", "dirty")), cls,
                     f"returned {sync!r} from storage_sync(), not None or a StorageSync")


#: Every check, in the order :func:`check_provider` runs them (parametrize a test over these).
CHECKS: tuple[Callable[[type[Provider]], None], ...] = (
    check_class, check_empty_machine, check_detection, check_forced_paths, check_session_and_devices,
    check_presets, check_host_services)


def check_provider(cls: type[Provider]) -> None:
    """Run every check of the provider contract on ``cls``; raises :class:`ContractViolation`
    at the first broken promise."""
    for check in CHECKS:
        check(cls)
