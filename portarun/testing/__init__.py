"""Run code as if on a host: the public simulation API.

>>> from portarun.testing import simulate
>>> with simulate("kaggle") as rt:
...     assert rt.host.name == "kaggle"
...     assert rt.paths.output.is_dir()     # under a temporary root, real and writable

``simulate`` builds a :class:`~portarun.probe.Probe` over a root folder (temporary unless given):
``env`` is the whole environment the probe sees, ``paths`` are folders and ``files`` are files
created under the root, ``modules`` are importable (as empty stand-ins where not really
installed) while every other host module (``google.colab``, ``kaggle_secrets``, ``torch_xla``,
…) counts as absent. Hardware keywords fake what cannot exist here. Inside the block
``portarun.detect()`` returns the simulated runtime; leaving it restores everything.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import runtime as _runtime
from .._machine.catalog import gpu_from_name, tpu_from_spec
from .._plugins.manager import plugin_set
from .._plugins.state import DEFAULT_KEY, STATE
from .._util.units import parse_size
from ..errors import PortarunError, UnknownHostError, warn
from ..facts import CpuFacts, GpuFacts, MemoryFacts, PlatformFacts, ShmFacts, TpuFacts
from ..probe import Probe
from ..provider import Preset


def _installed_presets(env: Mapping[str, str] | None = None) -> dict[str, Preset]:
    """Every preset the providers of ``env``'s plugin set ship (:meth:`Provider.presets`), by
    name (``env=None``: every installed provider's); on a clash of names the provider that sorts
    first by name keeps it."""
    found: dict[str, Preset] = {}
    providers = plugin_set(env or {}).providers()
    for name in sorted(providers):
        try:
            shipped = dict(providers[name].presets())
        except Exception as exc:  # one plugin's broken presets must not hide every other host's
            warn(f"provider {name!r} failed to list its simulation presets ({type(exc).__name__}: {exc}); "
                 "they are skipped. Run portarun.testing.contract.check_presets on it.")
            continue
        for preset_name, preset in shipped.items():
            found.setdefault(preset_name, preset)
    return found


def presets() -> tuple[str, ...]:
    """Names accepted as ``simulate(host)``: the presets of every installed provider."""
    return tuple(sorted(_installed_presets()))


def preset(name: str) -> Preset:
    """The installed preset ``name`` (:class:`~portarun.provider.Preset`), or
    :class:`~portarun.errors.UnknownHostError` listing those there are."""
    found = _installed_presets()
    if name not in found:
        raise UnknownHostError(name, found, "simulated host")
    return found[name]


def __getattr__(name: str) -> Any:
    # ``PRESETS`` (name → Preset) was a fixed dict of the built-in hosts; it is now gathered from
    # the installed providers on each access, plugins' included.
    if name == "PRESETS":
        return _installed_presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _host_modules(env: Mapping[str, str]) -> frozenset[str]:
    """Host marker modules of every provider the simulated environment's plugin controls load."""
    names = {"torch_xla", "pynvml", "google.colab", "kaggle_secrets", "kaggle_web_client"}
    for cls in plugin_set(env).providers().values():
        names.update(cls.marker_modules)
    return frozenset(names)


def _stand_in(name: str, added: list[str]) -> None:
    """Make ``name`` importable as an empty package unless it really is importable; a real
    parent (the ``google`` namespace package, say) gets the stand-in as an attribute."""
    if name in sys.modules:
        return
    try:
        if importlib.util.find_spec(name) is not None:  # imports real parents on the way
            return
    except (ImportError, ValueError):
        pass
    parent, _, child = name.rpartition(".")
    if parent:
        _stand_in(parent, added)
    module = types.ModuleType(name, f"portarun.testing stand-in for {name}")
    module.__path__ = []  # a package, so stand-ins for submodules can live under it
    # importlib.util.find_spec() raises ValueError for a module in sys.modules without a spec,
    # which breaks libraries (transformers, accelerate) that probe for google.colab that way.
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    sys.modules[name] = module
    if parent:
        setattr(sys.modules[parent], child, module)
    added.append(name)


def _add_stand_in_apis(env: Mapping[str, str], added: list[str]) -> None:
    """Put on the stand-ins what the providers say their modules' callers need
    (:meth:`~portarun.provider.Provider.stand_in_apis`: Colab's ``drive.mount``, say)."""
    for cls in plugin_set(env).providers().values():
        for name, functions in cls.stand_in_apis().items():
            if name.rpartition(".")[0] in added:  # only under a stand-in, never a real module
                _stand_in(name, added)
                for attribute, function in functions.items():
                    setattr(sys.modules[name], attribute, function)


def _remove_stand_ins(added: list[str]) -> None:
    for name in reversed(added):
        module = sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and getattr(sys.modules[parent], child, None) is module:
            delattr(sys.modules[parent], child)
    added.clear()


def _gpus(gpus: Sequence[str | GpuFacts] | None) -> tuple[GpuFacts, ...] | None:
    if gpus is None:
        return None
    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Iterable):
        raise PortarunError(f"gpus={gpus!r} is not a list of GPU model names; pass e.g. gpus=['Tesla T4'] * 2.")
    out = []
    for i, g in enumerate(gpus):
        if not isinstance(g, (str, GpuFacts)):
            raise PortarunError(f"gpus[{i}]={g!r} is neither a GPU model name (like 'Tesla T4') nor a GpuFacts.")
        out.append(g if isinstance(g, GpuFacts) else gpu_from_name(g, i))
    return tuple(out)


#: More CPUs than any machine has: a count past it is a typo, not a simulation.
_MAX_CPUS = 1 << 16


def _cpu_count(cpus: object) -> int:
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= _MAX_CPUS:
        raise PortarunError(f"cpus={cpus!r} is not a CPU count; pass a whole number from 1 to {_MAX_CPUS}.")
    return cpus


@contextmanager
def simulate(
    host: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    paths: Iterable[str] = (),
    files: Iterable[str] = (),
    modules: Iterable[str] = (),
    root: str | Path | None = None,
    project: str | None = None,
    gpus: Sequence[str | GpuFacts] | None = None,
    tpu: str | TpuFacts | None = None,
    cpus: int | CpuFacts | None = None,
    memory: int | str | MemoryFacts | None = None,
    shm: int | str | ShmFacts | None = None,
    platform: tuple[str, str] | None = None,
    kernel: bool | None = None,
    started_at: datetime | None = None,
) -> Iterator[_runtime.Runtime]:
    """Detect as if on ``host`` (a preset: see :func:`presets`) or on the described machine.

    ``env`` is merged over the preset's environment; ``paths``/``files``/``modules`` add to the
    preset's. ``root`` defaults to a temporary folder removed on exit. ``gpus`` takes model
    names (``["Tesla T4"] * 2``) or :class:`~portarun.facts.GpuFacts`; ``tpu`` an accelerator
    type (``"v5e-8"``); ``cpus`` a count; ``memory``/``shm`` sizes (``"30G"``, ``"64M"``);
    ``platform`` ``(system, machine)`` such as ``("Darwin", "arm64")``; ``kernel`` whether the
    process is a notebook kernel. Unset hardware is read from the real machine (CPU, memory,
    /dev/shm) or absent (GPUs, TPU).
    """
    # The simulated machine's own plugin set first (so its plugin controls, PORTARUN_STRICT
    # included, apply as they will to detection); every installed provider's where it disables
    # the very host it builds.
    known = _installed_presets(env) if host else {}
    if host and host not in known:
        known = _installed_presets()
    if host and host not in known:
        raise UnknownHostError(host, known, "simulated host")
    preset = known[host] if host else Preset(env={})
    all_modules = frozenset((*preset.modules, *modules))
    # Every keyword is checked before anything is created, so a refused one leaves nothing behind.
    cpu = cpus if isinstance(cpus, CpuFacts) or cpus is None else CpuFacts(logical=_cpu_count(cpus),
                                                                             affinity=_cpu_count(cpus))
    mem = memory if isinstance(memory, MemoryFacts) or memory is None else MemoryFacts(
        total=parse_size(memory, "memory"), available=parse_size(memory, "memory"))
    shm_given = shm if isinstance(shm, ShmFacts) else None
    shm_size = None if isinstance(shm, ShmFacts) or shm is None else parse_size(shm, "shm")
    tpu_value = tpu if tpu is not None else preset.tpu
    tpu_facts = tpu_value if isinstance(tpu_value, TpuFacts) or tpu_value is None else tpu_from_spec(tpu_value)
    gpu_facts = _gpus(gpus)
    probe_env = {**preset.env, **(env or {})}
    host_modules = _host_modules(probe_env)
    made_root = root is None
    base = Path(tempfile.mkdtemp(prefix="portarun-sim-")) if root is None else Path(root)
    added: list[str] = []
    probe: Probe | None = None
    try:
        base.mkdir(parents=True, exist_ok=True)
        base = base.resolve()
        for folder in (*preset.paths, *paths):
            (base / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for file in (*preset.files, *files):
            target = base / file.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        shm_facts = shm_given if shm_size is None else ShmFacts(
            path=str(base / "dev/shm"), total=shm_size, free=shm_size)
        probe = Probe(
            env=probe_env, root=base, modules=all_modules, host_modules=host_modules,
            simulated=True, kernel=preset.kernel if kernel is None else kernel, cpu_override=cpu,
            memory_override=mem, shm_override=shm_facts, gpus_override=gpu_facts, tpu_override=tpu_facts,
            platform_override=PlatformFacts(*platform) if platform else None,
            started_at_override=started_at.timestamp() if started_at else None,
        )
        for name in sorted(all_modules):
            _stand_in(name, added)
        _add_stand_in_apis(probe_env, added)
        STATE.push_probe(probe)
        rt = _runtime.detect(project=project)
        STATE.remember(DEFAULT_KEY, rt)  # detect() without arguments answers the same runtime
        yield rt
    finally:
        try:
            _close_checkpointers(base)
        finally:
            if probe is not None:
                STATE.pop_probe(probe)
            _remove_stand_ins(added)
            if made_root:
                _remove_root(base)


def _close_checkpointers(root: Path) -> None:
    """Finish the saves of checkpointers writing under the simulated ``root`` (and flush the
    stand-in Drive) while the simulation still stands: at interpreter exit, where a
    checkpointer would otherwise close, the root and the stand-in modules are gone."""
    checkpointer = sys.modules.get("portarun.checkpoint.checkpointer")  # never imported here
    live = getattr(checkpointer, "_LIVE", None)
    if live is None:
        return
    for ck in list(live):
        if Path(ck.root).is_relative_to(root):
            try:
                ck.close()
            except Exception as exc:
                warn(f"the last checkpoint save to {ck.root} failed: {exc}")
            live.discard(ck)


def _remove_root(base: Path) -> None:
    """Remove a temporary root whatever the code under test left in it (read-only folders
    included)."""
    def unlock(function: Any, path: str, *_: Any) -> None:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
        function(path)

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(base, onexc=unlock)
        else:
            shutil.rmtree(base, onerror=unlock)
    except OSError as exc:
        warn(f"could not remove the simulation's temporary root {base}: {exc}")


@contextmanager
def plugin(obj: object, name: str | None = None) -> Iterator[None]:
    """Register a plugin object (a module or class with ``@portarun.hookimpl`` functions) for
    the duration of the block, in every plugin set; detection caches are reset on entry and
    exit so it takes effect at once and leaves no trace."""
    name = name or f"portarun-testing-{id(obj)}"
    STATE.add_plugin(obj, name)
    try:
        yield
    finally:
        STATE.remove_plugin(obj, name)
