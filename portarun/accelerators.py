"""Accelerator inventory without importing torch or torch_xla (issue 3 fills this in)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .facts import GpuFacts, TpuFacts

if TYPE_CHECKING:
    from .probe import Probe


def read_gpus(probe: Probe) -> tuple[GpuFacts, ...]:
    """NVIDIA GPUs visible to this process."""
    return ()


def read_tpu(probe: Probe) -> TpuFacts | None:
    """TPU chips on this host."""
    return None
