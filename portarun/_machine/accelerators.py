"""Accelerator inventory without importing torch or torch_xla.

The probe calls :func:`read_gpus` and :func:`read_tpu` the first time ``probe.gpus`` /
``probe.tpu`` is read; :func:`inventory` gathers everything (GPUs, TPU chips, Apple MPS, CPUs)
for ``rt.device`` and ``portarun info``. Nothing here creates a CUDA context or imports torch
or torch_xla (importing torch_xla rewrites ``PJRT_DEVICE``; pytorch/xla ``runtime.py``
@6c7e91ef).

NVIDIA GPUs, in this order of sources (docs/reference/host-evidence.md §5):

1. NVML through ``pynvml`` (the ``nvidia-ml-py`` distribution, extra ``portarun[nvml]``), when
   importable and on the real machine: names, UUIDs, memory and compute capability.
2. ``/proc/driver/nvidia/gpus/<pci>/information`` under ``probe.root`` (``Model:``,
   ``GPU UUID:``, ``Bus Location:``, ``Device Minor:``; no memory, which comes from
   :func:`portarun._machine.catalog.gpu_spec`). Format as in ray's ``resource_spec.py`` and its tests.
3. ``nvidia-smi --query-gpu=...`` on the real machine; ``compute_cap`` is not a valid field on
   470-series drivers (huggingface/candle#733), so the query is retried without it.

``CUDA_VISIBLE_DEVICES`` is then applied as CUDA does (CUDA C Programming Guide, "CUDA
Environment Variables"): a comma-separated list of indices or ``GPU-<uuid>`` prefixes, in the
given order; the list stops at the first entry that names no device; set but empty hides all.
Under SLURM with device cgroups the job sees only its own GPUs renumbered from 0
(``SLURM_JOB_GPUS=6`` with ``CUDA_VISIBLE_DEVICES=0``, HOSTS.md [SL1]) while
``/proc/driver/nvidia`` still lists every GPU of the node; the /proc source therefore first
narrows to the job's GPUs when ``SLURM_STEP_GPUS``/``SLURM_JOB_GPUS`` differ from
``CUDA_VISIBLE_DEVICES``.

TPU chips: the PCI scan torch_xla itself uses (``torch_xla/_internal/tpu.py`` @022ecde6
``num_available_chips``; jax ``hardware_utils.py`` @b5d8cd95): devices under
``/sys/bus/pci/devices`` with vendor ``0x1ae0``, the device id giving the generation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._util.files import read_small_text
from ..facts import GpuFacts, TpuFacts
from .catalog import gpu_spec

if TYPE_CHECKING:
    from ..probe import Probe

#: Google's PCI vendor id (torch_xla ``_internal/tpu.py`` @022ecde6 ``_GOOGLE_PCI_VENDOR_ID``).
GOOGLE_PCI_VENDOR = "0x1ae0"
#: TPU PCI device id → generation (jax ``hardware_utils.py`` @b5d8cd95; 0x0027 is v2 *and* v3,
#: jax names it v3; 0x0076 TPU7x from a newer jax copy, host-evidence.md §4).
TPU_PCI_DEVICES: dict[str, str] = {
    "0x0027": "v3",
    "0x005e": "v4",
    "0x0062": "v5p",
    "0x0063": "v5e",
    "0x006f": "v6e",
    "0x0076": "tpu7x",
}
_NVIDIA_SMI_FIELDS = "index,name,uuid,memory.total,compute_cap"


@dataclass(frozen=True)
class Inventory:
    """Every accelerator this process can see: NVIDIA ``gpus`` (visible ones, in CUDA order),
    ``tpu`` chips (or ``None``), whether Apple ``mps`` exists, usable ``cpus``, and ``hints``:
    environment variables that speak of accelerators without proving any (for reports)."""

    gpus: tuple[GpuFacts, ...]
    tpu: TpuFacts | None
    mps: bool
    cpus: int
    hints: tuple[str, ...]


def inventory(probe: Probe) -> Inventory:
    """The accelerator inventory of ``probe``'s host."""
    return Inventory(gpus=probe.gpus, tpu=probe.tpu, mps=has_mps(probe), cpus=probe.cpu.usable,
                     hints=accelerator_hints(probe))


def has_mps(probe: Probe) -> bool:
    """Whether Apple's Metal (MPS) backend can exist here: macOS on arm64 (torch's MPS backend
    needs Apple silicon; https://docs.pytorch.org/docs/stable/notes/mps.html)."""
    return probe.platform.system == "Darwin" and probe.platform.machine == "arm64"


def accelerator_hints(probe: Probe) -> tuple[str, ...]:
    """Accelerator-related variables that are set, as ``NAME=value`` (hints, not proof:
    Kaggle's TPU image hard-codes ``TPU_ACCELERATOR_TYPE=v3-8``, tpu/Dockerfile @5c805377)."""
    names = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "PJRT_DEVICE", "TPU_ACCELERATOR_TYPE",
             "ISTPUVM", "COLAB_TPU_ADDR", "COLAB_GPU")
    return tuple(probe.env_fact(n) for n in names if probe.getenv(n) is not None)


# -- NVIDIA ----------------------------------------------------------------------------------
def read_gpus(probe: Probe) -> tuple[GpuFacts, ...]:
    """NVIDIA GPUs visible to this process, in CUDA ordinal order (``index`` is the ordinal
    this process uses: ``cuda:<index>``). Empty when there are none or nothing can be read."""
    real_machine = probe.root == Path("/")
    if real_machine and probe.has_module("pynvml"):
        found = _read_nvml()
        if found is not None:
            return _visible(found, probe.getenv("CUDA_VISIBLE_DEVICES"))
    proc = read_proc_gpus(probe.root)
    if proc:
        proc = _slurm_job_gpus(proc, probe)
        return _visible(proc, probe.getenv("CUDA_VISIBLE_DEVICES"))
    if real_machine:
        smi = _read_nvidia_smi()
        if smi:
            return _visible(smi, probe.getenv("CUDA_VISIBLE_DEVICES"))
    return ()


def parse_information(text: str) -> dict[str, str]:
    """``key: value`` lines of a ``/proc/driver/nvidia/gpus/*/information`` file, split on the
    first colon only (``Bus Location: 0000:00:1e.0`` holds colons; ray's parser skips it)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


_MAX_NAME = 96


def read_proc_gpus(root: Path) -> tuple[GpuFacts, ...]:
    """Every GPU the NVIDIA driver lists under ``root/proc/driver/nvidia/gpus``, ordered by
    device minor number (``/dev/nvidia<minor>``, the physical index SLURM and nvidia-smi use),
    with memory and compute capability from the catalog."""
    base = root / "proc/driver/nvidia/gpus"
    try:
        folders = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        return ()
    entries: list[tuple[int, str, dict[str, str]]] = []
    for folder in folders:
        text = read_small_text(folder / "information", 1 << 16)
        if text is None:
            continue
        info = parse_information(text)
        minor = info.get("Device Minor", "")
        entries.append((int(minor) if minor.isdigit() else 1_000_000 + len(entries), folder.name, info))
    entries.sort()
    gpus = []
    for index, (_, bus, info) in enumerate(entries):
        # A driver file names the model in a few words; anything else is not a model name.
        name = info.get("Model", "").strip()[:_MAX_NAME] or "NVIDIA GPU"
        spec = gpu_spec(name)
        gpus.append(GpuFacts(
            index=index, name=name, uuid=info.get("GPU UUID") or None,
            memory=spec[0] if spec else None, compute_capability=spec[1] if spec else None,
            source=f"/proc/driver/nvidia/gpus/{bus}",
        ))
    return tuple(gpus)


def _read_nvml() -> tuple[GpuFacts, ...] | None:
    """GPUs via NVML, or ``None`` when NVML cannot be initialised (no driver)."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = _text(pynvml.nvmlDeviceGetName(handle))
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            memory = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                capability: tuple[int, int] | None = (int(major), int(minor))
            except pynvml.NVMLError:
                spec = gpu_spec(name)
                capability = spec[1] if spec else None
            gpus.append(GpuFacts(index=i, name=name, uuid=uuid, memory=memory,
                                 compute_capability=capability, source="nvml"))
        return tuple(gpus)
    except pynvml.NVMLError:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _text(value: object) -> str:
    # Older pynvml returns bytes, nvidia-ml-py >= 11.515 str (host-evidence.md §5).
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_nvidia_smi() -> tuple[GpuFacts, ...]:
    """GPUs via ``nvidia-smi`` (memory reported in MiB), or ``()``."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    for fields in (_NVIDIA_SMI_FIELDS, _NVIDIA_SMI_FIELDS.rsplit(",", 1)[0]):
        try:
            done = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, timeout=15, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ()
        if done.returncode == 0:
            return parse_nvidia_smi(done.stdout)
    return ()


def parse_nvidia_smi(text: str) -> tuple[GpuFacts, ...]:
    """Rows of ``nvidia-smi --query-gpu=index,name,uuid,memory.total[,compute_cap]
    --format=csv,noheader,nounits`` (e.g. ``0, Tesla T4, GPU-..., 15360, 7.5``)."""
    gpus = []
    for row in text.strip().splitlines():
        cells = [c.strip() for c in row.split(",")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        spec = gpu_spec(cells[1])
        capability = spec[1] if spec else None
        if len(cells) > 4 and re.fullmatch(r"\d+\.\d+", cells[4]):
            major, minor = cells[4].split(".")
            capability = (int(major), int(minor))
        memory = int(cells[3]) * 1024**2 if cells[3].isdigit() else (spec[0] if spec else None)
        gpus.append(GpuFacts(index=int(cells[0]), name=cells[1], uuid=cells[2] or None, memory=memory,
                             compute_capability=capability, source="nvidia-smi"))
    return tuple(gpus)


def _ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",")]


def _slurm_job_gpus(gpus: tuple[GpuFacts, ...], probe: Probe) -> tuple[GpuFacts, ...]:
    """Narrow the node's GPUs to the SLURM job's when device cgroups renumber them (the job's
    ``CUDA_VISIBLE_DEVICES`` then differs from ``SLURM_JOB_GPUS``, HOSTS.md [SL1])."""
    job = probe.getenv("SLURM_STEP_GPUS") or probe.getenv("SLURM_JOB_GPUS")
    visible = probe.getenv("CUDA_VISIBLE_DEVICES")
    if not job or visible is None or _ids(job) == _ids(visible):
        return gpus
    wanted = [int(i) for i in _ids(job) if i.isdigit()]
    mine = [g for g in gpus if g.index in wanted]
    if len(mine) != len(wanted):
        return gpus
    return tuple(_renumber(g, i) for i, g in enumerate(mine))


def _renumber(gpu: GpuFacts, index: int) -> GpuFacts:
    return GpuFacts(index=index, name=gpu.name, uuid=gpu.uuid, memory=gpu.memory,
                    compute_capability=gpu.compute_capability, source=gpu.source)


def _visible(gpus: tuple[GpuFacts, ...], visible: str | None) -> tuple[GpuFacts, ...]:
    """Apply ``CUDA_VISIBLE_DEVICES`` (``None`` = unset = all) and renumber from 0."""
    entries = _ids(visible) if visible is not None else []
    if visible is None or any(e.startswith("MIG-") for e in entries):
        # MIG instance ids cannot be mapped to GPUs without NVML's MIG API: keep the GPUs as read.
        return tuple(_renumber(g, i) for i, g in enumerate(gpus))
    chosen: list[GpuFacts] = []
    for entry in entries:
        match: GpuFacts | None = None
        if entry.isdigit():
            match = next((g for g in gpus if g.index == int(entry)), None)
        elif entry.startswith("GPU-"):
            hits = [g for g in gpus if g.uuid and g.uuid.startswith(entry)]
            match = hits[0] if len(hits) == 1 else None
        if match is None or match in chosen:
            break  # CUDA stops at the first entry naming no (or an already listed) device
        chosen.append(match)
    return tuple(_renumber(g, i) for i, g in enumerate(chosen))


# -- TPU -------------------------------------------------------------------------------------
def read_tpu(probe: Probe) -> TpuFacts | None:
    """TPU chips on this host from the PCI scan, or ``None`` when there are none.

    The generation comes from the PCI device id; id 0x0027 is shared by v2 and v3, so a
    ``TPU_ACCELERATOR_TYPE`` of ``v2-*`` picks v2 there. ``TPU_ACCELERATOR_TYPE`` is kept as
    ``accelerator_type`` only when its generation agrees with the chips (Kaggle's TPU image
    hard-codes ``v3-8`` on v5e/v6e machines, tpu/Dockerfile @5c805377)."""
    base = probe.path("/sys/bus/pci/devices")
    try:
        devices = sorted(base.iterdir())
    except OSError:
        return None
    generations: list[str] = []
    for dev in devices:
        vendor = (read_small_text(dev / "vendor", 64) or "").strip().lower()
        device = (read_small_text(dev / "device", 64) or "").strip().lower()
        if vendor == GOOGLE_PCI_VENDOR and device in TPU_PCI_DEVICES:
            generations.append(TPU_PCI_DEVICES[device])
    if not generations:
        return None
    generation = generations[0]
    declared = (probe.getenv("TPU_ACCELERATOR_TYPE") or "").strip().lower()
    declared_gen = "v5e" if declared.startswith("v5litepod") else declared.partition("-")[0]
    if generation == "v3" and declared_gen == "v2":
        generation = "v2"
    agrees = declared_gen == generation
    return TpuFacts(chips=len(generations), generation=generation,
                    accelerator_type=declared if agrees and declared else None,
                    source=f"PCI scan of {base} (vendor {GOOGLE_PCI_VENDOR})")
