"""Which accelerator this process uses (``rt.device``), and the helpers around it.

Decision order (docs/devices.md writes it out with examples):

1. A request: ``detect(device=...)``, else ``PORTARUN_DEVICE`` (``cuda``/``gpu``, ``xla``/``tpu``,
   ``mps``, ``cpu``; ``auto`` or unset means no request). A requested kind that is absent is a
   :class:`~portarun.errors.DeviceError`, never a silent fallback.
2. Otherwise the provider's ``device_order()`` (``cuda, xla, mps, cpu`` by default), taking the
   first kind present in the inventory (:mod:`portarun._machine.accelerators`); ``cpu`` always is.

Building :class:`DeviceInfo` imports neither torch nor torch_xla. Problems found on the way
(a GPU with a CPU-only torch build, torch_xla installed on a GPU machine, TPU variables without
TPU chips) become ``diagnostics``, each warned once as a
:class:`~portarun.errors.PortarunWarning` naming the cause and the fix. :meth:`DeviceInfo.torch`
imports torch only then, and raises :class:`~portarun.errors.DeviceError` where the installed
torch cannot drive the hardware (CPU-only build, GPU architecture missing from the build).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
import random
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._machine.accelerators import has_mps
from ._machine.catalog import TPU_SPECS
from ._util.files import read_small_text
from .errors import DeviceError, PortarunWarning, warn
from .provider import DeviceKind

if TYPE_CHECKING:
    import torch

    from .facts import GpuFacts
    from .probe import Probe
    from .runtime import Runtime

T = TypeVar("T")

KINDS: tuple[DeviceKind, ...] = ("cuda", "xla", "mps", "cpu")
_ALIASES: dict[str, DeviceKind] = {"cuda": "cuda", "gpu": "cuda", "xla": "xla", "tpu": "xla", "mps": "mps",
                                   "cpu": "cpu"}
_AMP_CHOICES = ("bfloat16", "float16", "none")
#: Install command for the legacy CUDA 12.6 wheels, the last that ship Maxwell/Pascal/Volta
#: kernels (PyTorch 2.8 release notes; pytorch/pytorch#172352, #190385).
_CU126 = "pip install torch --index-url https://download.pytorch.org/whl/cu126"


@dataclass(frozen=True)
class DeviceInfo:
    """The accelerator this process uses.

    ``kind`` is ``cuda``, ``xla`` (TPU), ``mps`` or ``cpu``; ``count`` how many devices of that
    kind this process can see (TPU: torch_xla devices, two per v2/v3 chip); ``names`` and
    ``memory`` (bytes, ``None`` where unknown) one entry per device. ``bf16`` says whether the
    hardware computes in bfloat16 natively; ``amp_dtype`` is the autocast dtype to use
    (``"bfloat16"``, ``"float16"`` or ``None``). ``diagnostics`` are the problems found,
    ``decision`` how the kind was chosen. ``local_rank`` selects the device under a launcher.
    """

    kind: DeviceKind
    count: int
    names: tuple[str, ...]
    memory: tuple[int | None, ...]
    bf16: bool
    amp_dtype: str | None
    diagnostics: tuple[str, ...] = ()
    decision: tuple[str, ...] = ()
    compute_capability: tuple[tuple[int, int] | None, ...] = ()
    local_rank: int = 0

    @property
    def index(self) -> int:
        """The device index this process uses (``cuda:<index>``): its local rank."""
        return self.local_rank

    def _repr_html_(self) -> str:
        """This device as a table in Jupyter (:func:`portarun.display.device_html`)."""
        from .display import device_html

        return device_html(self)

    def torch(self) -> torch.device:
        """The ``torch.device`` for this process, importing torch (and torch_xla on TPU) now.

        CUDA: ``cuda:<local_rank>``, made the current device. TPU: ``torch_xla.device()``, with
        ``PJRT_DEVICE=TPU`` set first when unset. Raises :class:`~portarun.errors.DeviceError`
        when torch is missing or cannot drive this hardware."""
        if importlib.util.find_spec("torch") is None:
            raise DeviceError("torch is not installed. Install it (`pip install torch`, or "
                              "`pip install portarun[torch]`); portarun never installs or replaces torch itself.")
        import torch

        if self.kind == "cuda":
            problem = cuda_problem(self)
            if problem:
                raise DeviceError(problem)
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        if self.kind == "xla":
            # Importing torch_xla picks PJRT_DEVICE itself (runtime.py @6c7e91ef); with chips
            # present TPU is the only right answer, so say it before the import.
            os.environ.setdefault("PJRT_DEVICE", "TPU")
            import torch_xla

            return cast("torch.device", torch_xla.device())
        return torch.device(self.kind)


# -- inventory → DeviceInfo ------------------------------------------------------------------
def present_kinds(probe: Probe) -> dict[DeviceKind, str]:
    """Device kinds present on ``probe``'s host, each with the fact that shows it."""
    kinds: dict[DeviceKind, str] = {}
    if probe.gpus:
        kinds["cuda"] = f"{len(probe.gpus)} NVIDIA GPU(s) via {probe.gpus[0].source}"
    if probe.tpu is not None:
        kinds["xla"] = f"{probe.tpu.chips} TPU {probe.tpu.generation or ''} chip(s) via {probe.tpu.source}"
    if has_mps(probe):
        kinds["mps"] = f"{probe.platform.system} on {probe.platform.machine}"
    kinds["cpu"] = f"{probe.cpu.usable} usable CPU(s)"
    return kinds


def _request(rt: Runtime) -> tuple[DeviceKind | None, str]:
    raw, source = rt.device_request, "detect(device=...)"
    if raw is None:
        raw, source = rt.probe.getenv("PORTARUN_DEVICE"), "PORTARUN_DEVICE"
    value = (raw or "").strip().lower()
    if value in ("", "auto"):
        return None, source
    if value not in _ALIASES:
        from ._util.redact import shown_input  # a 100 kB value is quoted cut short

        raise DeviceError(f"unknown device {shown_input(raw or '')} in {source}; known: auto, "
                          f"{', '.join(sorted(_ALIASES))}.")
    return _ALIASES[value], f"{source}={raw}"


def resolve(rt: Runtime) -> DeviceInfo:
    """The :class:`DeviceInfo` for ``rt``: the request if any, else the provider's order."""
    probe = rt.probe
    present = present_kinds(probe)
    requested, source = _request(rt)
    if requested is not None:
        if requested not in present:
            found = "; ".join(f"{k}: {why}" for k, why in present.items())
            raise DeviceError(f"device {requested!r} was requested by {source}, but this host has none. "
                              f"Present: {found}. "
                              "Unset PORTARUN_DEVICE (or pass device='auto') to use the best present device, or run "
                              "on a machine with that accelerator.")
        kind: DeviceKind = requested
        decision = [f"forced by {source}", f"{kind}: {present[kind]}"]
    else:
        order = tuple(rt.provider.device_order())
        order = order if "cpu" in order else (*order, "cpu")
        kind = next(k for k in order if k in present)
        decision = [f"provider {rt.provider.name!r} order: {', '.join(order)}"]
        decision += [f"{k}: {present[k]}" if k in present else f"{k}: absent" for k in order[:order.index(kind) + 1]]
    local_rank = rt.dist.local_rank
    info = _build(probe, kind, local_rank)
    return dataclasses.replace(info, decision=tuple(decision), diagnostics=tuple(static_diagnostics(probe, kind)))


def _build(probe: Probe, kind: DeviceKind, local_rank: int) -> DeviceInfo:
    if kind == "cuda":
        gpus = probe.gpus
        caps = tuple(g.compute_capability for g in gpus)
        bf16 = all(c is not None and c >= (8, 0) for c in caps)  # bf16 tensor cores from Ampere (sm_80)
        info = DeviceInfo("cuda", len(gpus), tuple(g.name for g in gpus), tuple(g.memory for g in gpus), bf16,
                          "bfloat16" if bf16 else "float16", compute_capability=caps, local_rank=local_rank)
    elif kind == "xla":
        tpu = probe.tpu
        assert tpu is not None
        hbm, per_chip = TPU_SPECS.get(tpu.generation or "", (None, 1))
        count = tpu.chips * per_chip
        info = DeviceInfo("xla", count, (f"TPU {tpu.generation or '?'}",) * count,
                          (hbm // per_chip if hbm else None,) * count, True, "bfloat16", local_rank=local_rank)
    elif kind == "mps":
        # MPS shares the host's unified memory; autocast on MPS uses float16 (bf16 needs macOS 14+).
        info = DeviceInfo("mps", 1, ("Apple MPS",), (None,), False, "float16", local_rank=0)
    else:
        info = DeviceInfo("cpu", 1, (_cpu_name(probe),), (probe.memory.usable,), False, None, local_rank=0)
    return _amp_override(probe, info)


def _cpu_name(probe: Probe) -> str:
    text = read_small_text(probe.path("/proc/cpuinfo")) or ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip()[:96] if match else "CPU"


def _amp_override(probe: Probe, info: DeviceInfo) -> DeviceInfo:
    """``PORTARUN_AMP_DTYPE`` (``bfloat16``/``float16``/``none``) overrides the autocast dtype,
    e.g. to use bfloat16 autocast on a CPU."""
    raw = probe.getenv("PORTARUN_AMP_DTYPE")
    if raw is None or not raw.strip():
        return info
    value = raw.strip().lower()
    if value not in _AMP_CHOICES:
        from ._util.redact import shown_input  # a 100 kB value is quoted cut short

        raise DeviceError(f"PORTARUN_AMP_DTYPE={shown_input(raw)} is not one of {', '.join(_AMP_CHOICES)}.")
    return dataclasses.replace(info, amp_dtype=None if value == "none" else value)


# -- diagnostics -------------------------------------------------------------------------------
def installed_torch_cuda() -> tuple[str, str | None] | None:
    """``(version, CUDA version or None)`` of the installed torch, read from ``torch/version.py``
    without importing torch; ``None`` when torch is not installed."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        return str(torch.__version__), getattr(torch.version, "cuda", None)
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return None
    version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.MULTILINE)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]*)['\"]|None)", text, re.MULTILINE)
    return (version.group(1) if version else "?"), (cuda.group(1) if cuda and cuda.group(1) else None)


def cpu_build_problem(gpus: Sequence[GpuFacts], torch_build: tuple[str, str | None] | None) -> str | None:
    """The message for NVIDIA GPUs next to a CPU-only torch build, or ``None``."""
    if not gpus or torch_build is None or torch_build[1] is not None:
        return None
    return (f"{len(gpus)} NVIDIA GPU(s) ({gpus[0].name}) are present, but the installed torch {torch_build[0]} is a "
            "CPU-only build, so nothing would run on the GPU. Install a CUDA build (`pip install torch`, or "
            f"`{_CU126}` for pre-Turing GPUs), or set PORTARUN_DEVICE=cpu to use the CPU on purpose.")


def arch_supported(capability: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a torch build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``, e.g.
    ``['sm_75', 'sm_80', 'compute_90']``) runs on a GPU of ``capability``: a cubin ``sm_XY``
    runs on X.Z for Z >= Y (same major); PTX ``compute_XY`` is JIT-compiled for any newer GPU
    (CUDA C Programming Guide, "Binary Compatibility" and "PTX Compatibility")."""
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)([a-z]?)", arch)
        if not match:
            continue
        number = int(match.group(2))
        built = (number // 10, number % 10)
        if match.group(3):  # sm_90a-style: only that exact architecture
            if built == capability:
                return True
        elif match.group(1) == "sm" and built[0] == capability[0] and built[1] <= capability[1]:
            return True
        elif match.group(1) == "compute" and built <= capability:
            return True
    return False


def arch_problem(info: DeviceInfo, arch_list: Sequence[str], torch_version: str) -> str | None:
    """The message for GPUs whose architecture the torch build lacks, or ``None`` (an empty
    ``arch_list`` means torch cannot tell, which is not reported here)."""
    if not arch_list:
        return None
    missing = sorted({(name, cap) for name, cap in zip(info.names, info.compute_capability)
                      if cap is not None and not arch_supported(cap, arch_list)})
    if not missing:
        return None
    gpus = ", ".join(f"{name} (sm_{cap[0]}{cap[1]})" for name, cap in missing)
    return (f"{gpus}: the installed torch {torch_version} has no kernels for this GPU architecture (built for "
            f"{' '.join(arch_list)}). CUDA reports the GPU as available, but every kernel launch fails with 'no "
            f"kernel image is available'. Install a build that includes it (`{_CU126}` still ships sm_50-sm_70), ask "
            "the host for a newer GPU (Kaggle: T4 x2 instead of P100), or set PORTARUN_DEVICE=cpu.")


def cuda_problem(info: DeviceInfo) -> str | None:
    """Why the imported torch cannot drive ``info``'s GPUs, or ``None``. Imports torch."""
    import torch

    build = cpu_build_problem(_as_gpus(info), (str(torch.__version__), torch.version.cuda))
    if build:
        return build
    if not torch.cuda.is_available():
        return (f"{info.count} NVIDIA GPU(s) are present, but torch {torch.__version__} (CUDA {torch.version.cuda}) "
                "cannot use them: CUDA is not available to torch. The driver is usually older than the CUDA "
                "runtime torch was built with; run `nvidia-smi` and install a torch build for that driver's CUDA "
                "version, or set PORTARUN_DEVICE=cpu.")
    if info.local_rank >= torch.cuda.device_count():
        return (f"LOCAL_RANK={info.local_rank}, but this process sees only {torch.cuda.device_count()} GPU(s). "
                "Start at most one process per GPU (`portarun launch --nproc auto`).")
    return arch_problem(info, torch.cuda.get_arch_list(), str(torch.__version__))


def _as_gpus(info: DeviceInfo) -> tuple[GpuFacts, ...]:
    from .facts import GpuFacts

    return tuple(GpuFacts(index=i, name=n) for i, n in enumerate(info.names))


def static_diagnostics(probe: Probe, kind: DeviceKind) -> list[str]:
    """Problems visible without importing torch (and, where torch is already imported, the
    build's GPU architectures). Checks that compare fake hardware with the real torch are
    skipped in simulations."""
    found: list[str] = []
    if probe.gpus and not probe.simulated:
        problem = cpu_build_problem(probe.gpus, installed_torch_cuda())
        if problem:
            found.append(problem)
    if probe.gpus and probe.tpu is None and probe.has_module("torch_xla"):
        found.append(
            f"torch_xla is installed on this GPU machine (PJRT_DEVICE={probe.getenv('PJRT_DEVICE') or 'unset'}). "
            "portarun uses the GPU and never imports torch_xla, but importing it (directly, or through a library "
            "that checks for it, such as accelerate or Lightning) switches code to the XLA device. Uninstall it "
            "(`pip uninstall -y torch-xla libtpu`) unless you mean to run XLA on GPU.")
    if probe.tpu is None:
        if probe.getenv("COLAB_TPU_ADDR"):
            found.append(
                f"COLAB_TPU_ADDR={probe.getenv('COLAB_TPU_ADDR')} points at a legacy Colab TPU node, which "
                "attaches no TPU chips to this VM; current torch_xla (PJRT runtime) only drives chips on the VM "
                "itself. Switch the runtime to a TPU VM type (Runtime > Change runtime type > v5e-1 or v2-8 TPU).")
        if (probe.getenv("PJRT_DEVICE") or "").upper() == "TPU":
            found.append("PJRT_DEVICE=TPU is set, but this host has no TPU chips (PCI scan); torch_xla will fail to "
                         "start. Unset PJRT_DEVICE, or run on a TPU VM.")
    if kind == "cuda" and "torch" in sys.modules and not probe.simulated:
        import torch

        problem = arch_problem(_build(probe, "cuda", 0), torch.cuda.get_arch_list(), str(torch.__version__))
        if problem:
            found.append(problem)
    return found


def warn_diagnostics(info: DeviceInfo) -> None:
    """Emit each of ``info``'s diagnostics as a :class:`~portarun.errors.PortarunWarning`."""
    for message in info.diagnostics:
        warn(message)


# -- helpers ---------------------------------------------------------------------------------
def to_device(info: DeviceInfo, batch: T, non_blocking: bool | None = None) -> T:
    """``batch`` with every tensor moved to ``info``'s device, through dicts (any ``dict``
    subclass keeps its type), lists, tuples, named tuples and dataclasses; objects with a
    ``.to(device)`` method (a Hugging Face ``BatchEncoding``) are moved with it; anything else
    is returned as is. ``non_blocking`` defaults to true for pinned CPU tensors going to CUDA
    (the copy then overlaps with compute), false otherwise."""
    import torch

    device = info.torch()

    def move(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            nb = non_blocking if non_blocking is not None else (device.type == "cuda" and x.is_pinned())
            return x.to(device, non_blocking=nb)
        if isinstance(x, dict):
            out = copy.copy(x)
            for key, value in x.items():
                out[key] = move(value)
            return out
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return type(x)(*(move(v) for v in x))
        if isinstance(x, (list, tuple)):
            return type(x)(move(v) for v in x)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return dataclasses.replace(x, **{f.name: move(getattr(x, f.name)) for f in dataclasses.fields(x) if f.init})
        if callable(getattr(x, "to", None)) and not isinstance(x, (str, bytes)):
            return x.to(device)
        return x

    return cast(T, move(batch))


def wrap_loader(info: DeviceInfo, loader: Iterable[T]) -> Iterable[T]:
    """On TPU, torch_xla's ``MpDeviceLoader`` around ``loader`` (it moves batches to the device
    in the background); everywhere else ``loader`` itself, unchanged.

    ``MpDeviceLoader`` reads batches ahead on a thread, so a stateful loader's own
    ``state_dict()`` counts batches not yet trained. For such a loader (``rt.dataloader``'s) the
    wrapper records the loader's state after each batch as it is read, and hands the state of the
    batch the loop last received to ``training_state(..., loader=loader)``: a resume continues
    with the next untrained batch."""
    if info.kind != "xla":
        return loader
    from torch_xla.distributed.parallel_loader import MpDeviceLoader

    if not callable(getattr(loader, "state_dict", None)):
        return cast("Iterable[T]", MpDeviceLoader(loader, info.torch()))
    return _DeliveredStates(loader, lambda source: MpDeviceLoader(source, info.torch()))


class _ReadAhead:
    """``loader`` as the read-ahead thread iterates it: each batch is followed by the loader's
    state just after it, queued for the batch's delivery."""

    def __init__(self, loader: Any, states: Any) -> None:
        self.loader, self.states = loader, states

    def __iter__(self) -> Any:
        for batch in self.loader:
            self.states.append(self.loader.state_dict())
            yield batch

    def __len__(self) -> int:
        return len(self.loader)


class _DeliveredStates(Iterable[T]):
    """A device loader around a stateful ``loader`` that knows which batch the training loop has
    received: :func:`portarun.loader.loader_state` saves that batch's state, not the read-ahead
    position."""

    def __init__(self, loader: Any, device_loader: Any) -> None:
        from collections import deque

        self.loader = loader
        self._states: Any = deque()
        self._device_loader = device_loader(_ReadAhead(loader, self._states))

    def __iter__(self) -> Any:
        self._states.clear()
        # Until the first batch arrives, the loop has trained nothing of this pass: the state is
        # the loader's as it stands now, before the read-ahead thread moves it. After the last
        # batch (or a `break`), the state stays that of the last batch the loop received.
        self.loader._portarun_delivered_state = self.loader.state_dict()
        for batch in self._device_loader:
            # The batches arrive in the order they were read (one read-ahead thread).
            self.loader._portarun_delivered_state = self._states.popleft()
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def state_dict(self) -> dict[str, Any]:
        """The state after the last batch the loop received (for ``training_state(loader=...)``
        given this wrapper instead of the loader)."""
        delivered = getattr(self.loader, "_portarun_delivered_state", None)
        return dict(delivered) if delivered is not None else dict(self.loader.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader._portarun_delivered_state = None
        self.loader.load_state_dict(state)


def seed(info: DeviceInfo, rank: int, n: int, per_rank: bool = False) -> int:
    """Seed every installed random generator: Python's ``random``, NumPy's global generator,
    torch (CPU and every CUDA device) and, on TPU, torch_xla. ``per_rank`` adds the global rank
    so ranks draw different numbers (data augmentation); the default gives every rank the same
    seed (identical model initialisation). Returns the seed used. ``PYTHONHASHSEED`` is set too,
    which affects processes started from here on (DataLoader workers, subprocesses)."""
    if n < 0:
        raise ValueError(f"seed must be >= 0, got {n}")
    value = n + rank if per_rank else n
    random.seed(value)
    os.environ["PYTHONHASHSEED"] = str(value)
    if importlib.util.find_spec("numpy") is not None:
        import numpy

        numpy.random.seed(value % 2**32)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(value)  # all devices, CUDA included
    if info.kind == "xla":
        import torch_xla

        torch_xla.manual_seed(value)
    return value


@dataclass(frozen=True)
class DeviceMemory:
    """Memory of this process's device and of the host, in bytes (``None`` where the device
    does not report it). ``allocated`` is held by live tensors, ``reserved`` by torch's caching
    allocator, ``free``/``total`` what the device reports; ``host_*`` is RAM (cgroup-limited)."""

    kind: str
    allocated: int | None
    reserved: int | None
    free: int | None
    total: int | None
    host_total: int
    host_available: int


def memory(info: DeviceInfo, probe: Probe) -> DeviceMemory:
    """Device and host memory now. Imports torch only for an accelerator (not on CPU)."""
    if probe.simulated:
        host = probe.memory
    else:
        from ._machine.sysinfo import read_memory

        host = read_memory(probe.root)
    allocated = reserved = free = total = None
    if info.kind == "cuda":
        import torch

        device = info.torch()
        allocated, reserved = torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)
        free, total = torch.cuda.mem_get_info(device)
    elif info.kind == "xla":
        import torch_xla.core.xla_model as xm

        stats = xm.get_memory_info(info.torch())
        if "bytes_limit" in stats:
            total, allocated = int(stats["bytes_limit"]), int(stats["bytes_used"])
            free = total - allocated
        else:  # torch_xla < 2.4 reported kilobytes
            total, free = int(stats["kb_total"]) * 1024, int(stats["kb_free"]) * 1024
            allocated = total - free
    elif info.kind == "mps":
        import torch

        allocated = int(torch.mps.current_allocated_memory())
        reserved = int(torch.mps.driver_allocated_memory())
        total = int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else None
    return DeviceMemory(info.kind, allocated, reserved, free, total, host.usable, host.available)


# -- report sections (``portarun info``) -----------------------------------------------------
def _device_quietly(rt: Runtime) -> tuple[DeviceInfo | None, str | None]:
    """``rt.device`` without its warnings (the report lists them), or the error it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PortarunWarning)
        try:
            return rt.device, None
        except DeviceError as exc:
            return None, str(exc)


def _torch_view(info: DeviceInfo | None) -> dict[str, Any] | None:
    """What the imported torch says; ``None`` unless torch is already imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    view: dict[str, Any] = {"version": str(torch.__version__), "cuda": torch.version.cuda,
                            "cuda_available": bool(torch.cuda.is_available()),
                            "arch_list": list(torch.cuda.get_arch_list())}
    if info is not None and info.kind == "mps":
        view["mps_available"] = bool(torch.backends.mps.is_available())
    return view


def accelerators_section(rt: Runtime) -> dict[str, Any]:
    """The inventory (read without importing torch) and the chosen device; torch's own view
    only when torch is already imported (``portarun info --torch``)."""
    from ._machine.accelerators import inventory

    inv = inventory(rt.probe)
    info, error = _device_quietly(rt)
    return {
        "device": None if info is None else {
            "kind": info.kind, "count": info.count, "names": list(info.names), "bf16": info.bf16,
            "amp_dtype": info.amp_dtype, "memory_bytes": info.memory[0] if info.memory else None,
            "decision": list(info.decision)},
        "device_error": error,
        "gpus": [{"index": g.index, "name": g.name, "uuid": g.uuid, "memory_bytes": g.memory,
                  "compute_capability": ".".join(map(str, g.compute_capability)) if g.compute_capability else None,
                  "source": g.source} for g in inv.gpus],
        "tpu": None if inv.tpu is None else {
            "chips": inv.tpu.chips, "generation": inv.tpu.generation, "accelerator_type": inv.tpu.accelerator_type,
            "source": inv.tpu.source},
        "mps": inv.mps,
        "usable_cpus": inv.cpus,
        "hints": list(inv.hints),
        "torch": _torch_view(info),
    }


def diagnostics_section(rt: Runtime) -> dict[str, Any]:
    """Every device problem found: the static diagnostics, the device error if any, and, when
    torch is imported, whether it can drive the GPUs."""
    info, error = _device_quietly(rt)
    problems = [error] if error else list(info.diagnostics if info else ())
    if info is not None and info.kind == "cuda" and "torch" in sys.modules and not rt.probe.simulated:
        problem = cuda_problem(info)
        if problem and problem not in problems:
            problems.append(problem)
    return {"problems": problems}
