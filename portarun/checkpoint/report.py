"""The ``checkpoints`` section of ``portarun info``: read from manifests, torch is not imported."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime import Runtime


def checkpoints_section(rt: Runtime) -> dict[str, Any]:
    """Where the project's checkpoints live and each published one: step, time, size."""
    from .checkpointer import Checkpointer

    try:
        found = Checkpointer(rt.paths.checkpoints, handle_signals=False, mode="blocking").list()
        error = None
    except Exception as exc:  # unreachable host or bucket, missing credentials: report it, do not fail the report
        found, error = [], f"{type(exc).__name__}: {exc}"
    return {
        "location": str(rt.paths.checkpoints),
        "count": len(found),
        "error": error,
        "checkpoints": [{"step": i.step, "saved_at": i.saved_at.isoformat(timespec="seconds"), "size_bytes": i.size,
                         "kind": i.kind, "metrics": dict(i.metrics)} for i in found],
    }
