"""Specifications of accelerators by name, for simulations and for filling gaps the probe
cannot read (``/proc/driver/nvidia`` has no memory size).

GPU figures are NVIDIA's data-sheet values (memory in GiB as the driver reports it, rounded;
compute capability from https://developer.nvidia.com/cuda-gpus). TPU generations by PCI device
id are in :mod:`portarun._machine.accelerators`.
"""
from __future__ import annotations

import re

from ..errors import PortarunError
from ..facts import GpuFacts, TpuFacts

GIB = 1024**3

#: name fragment → (memory in bytes, compute capability); matched case-insensitively.
GPU_SPECS: dict[str, tuple[int, tuple[int, int]]] = {
    "K80": (12 * GIB, (3, 7)),
    "P4": (8 * GIB, (6, 1)),
    "P100": (16 * GIB, (6, 0)),
    "V100": (16 * GIB, (7, 0)),
    "T4": (15 * GIB, (7, 5)),
    "A10G": (23 * GIB, (8, 6)),
    "A100": (40 * GIB, (8, 0)),
    "A100-SXM4-80GB": (80 * GIB, (8, 0)),
    "L4": (23 * GIB, (8, 9)),
    "L40S": (45 * GIB, (8, 9)),
    "RTX 4090": (24 * GIB, (8, 9)),
    "RTX 5090": (32 * GIB, (12, 0)),
    "H100": (80 * GIB, (9, 0)),
    "H100 NVL": (94 * GIB, (9, 0)),
    "A100 80GB": (80 * GIB, (8, 0)),
    "A10": (23 * GIB, (8, 6)),
    "A30": (24 * GIB, (8, 0)),
    "A40": (45 * GIB, (8, 6)),
    "L40": (45 * GIB, (8, 9)),
    "P40": (24 * GIB, (6, 1)),
    "RTX A4000": (16 * GIB, (8, 6)),
    "RTX A5000": (24 * GIB, (8, 6)),
    "RTX A6000": (48 * GIB, (8, 6)),
    "RTX 6000 Ada": (48 * GIB, (8, 9)),
    "Quadro RTX 4000": (8 * GIB, (7, 5)),
    "Quadro RTX 5000": (16 * GIB, (7, 5)),
    "Quadro RTX 6000": (24 * GIB, (7, 5)),
    "Quadro RTX 8000": (48 * GIB, (7, 5)),
    "RTX 3090": (24 * GIB, (8, 6)),
    "RTX 2080 Ti": (11 * GIB, (7, 5)),
    "GTX 1080 Ti": (11 * GIB, (6, 1)),
    "H200": (141 * GIB, (9, 0)),
    "RTX PRO 6000": (96 * GIB, (12, 0)),
}


def gpu_spec(name: str) -> tuple[int, tuple[int, int]] | None:
    """``(memory, compute capability)`` for a GPU name, by the longest matching fragment."""
    upper = name.upper()
    matches = [key for key in GPU_SPECS if re.search(rf"(?<![A-Z0-9]){re.escape(key.upper())}(?![0-9])", upper)]
    if not matches:
        return None
    return GPU_SPECS[max(matches, key=len)]


def gpu_from_name(name: str, index: int) -> GpuFacts:
    """A simulated GPU of this model (``"Tesla T4"``, ``"NVIDIA A100-SXM4-80GB"``). A model
    missing from :data:`GPU_SPECS` is simulated as the probe sees one on a real machine: its
    memory and compute capability unknown. Raises :class:`~portarun.errors.PortarunError` for
    a name that is not text naming something."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or not name.isprintable():
        raise PortarunError(f"GPU model {str(name)[:80]!r} is not a GPU name like 'Tesla T4'. Pass the name "
                            "nvidia-smi shows, or a portarun.facts.GpuFacts.")
    spec = gpu_spec(name)
    memory, capability = spec if spec is not None else (None, None)
    return GpuFacts(index=index, name=name, uuid=f"GPU-sim-{index:04d}", memory=memory,
                    compute_capability=capability, source="simulated")


_TPU_SPEC = re.compile(r"^(v2|v3|v4|v5e|v5p|v5litepod|v6e|tpu7x)(?:-(\d+))?$")
#: chips per host for ``<gen>-<cores or chips>`` names: v2/v3 count cores (2 per chip).
_CORES_PER_CHIP = {"v2": 2, "v3": 2, "v4": 2}


def tpu_from_spec(spec: str) -> TpuFacts:
    """A simulated TPU host from an accelerator type such as ``v3-8``, ``v5e-8``, ``v6e-1``.
    v2/v3/v4 names count TensorCores (two per chip); v5e/v6e names count chips."""
    match = _TPU_SPEC.match(spec.strip().lower())
    if not match:
        raise PortarunError(f"TPU spec {spec!r} is not an accelerator type like 'v3-8', 'v5e-8' or 'v6e-1'.")
    gen, size = match.group(1), int(match.group(2) or 1)
    gen = "v5e" if gen == "v5litepod" else gen
    chips = max(1, size // _CORES_PER_CHIP.get(gen, 1))
    # A single host holds at most 8 chips (4 for v2/v3/v4); bigger slices span several hosts.
    chips = min(chips, 4 if gen in _CORES_PER_CHIP else 8)
    return TpuFacts(chips=chips, generation=gen, accelerator_type=spec, source="simulated")


#: TPU generation → (HBM per chip in bytes, torch_xla devices per chip). Memory from Google's
#: Cloud TPU system-architecture pages (cloud.google.com/tpu/docs/v2, v3, v4, v5e, v5p, v6e);
#: v2/v3 chips hold two TensorCores that torch_xla exposes as two devices
#: (torch_xla ``_internal/tpu.py`` @022ecde6 ``num_logical_cores_per_chip``).
TPU_SPECS: dict[str, tuple[int, int]] = {
    "v2": (16 * GIB, 2),
    "v3": (32 * GIB, 2),
    "v4": (32 * GIB, 1),
    "v5e": (16 * GIB, 1),
    "v5p": (95 * GIB, 1),
    "v6e": (32 * GIB, 1),
}
