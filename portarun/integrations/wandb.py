"""Weights & Biases: a resumed session continues the same W&B run.

>>> start = ckpt.resume(model, optimizer, loader=loader)
>>> run = portarun.integrations.wandb.init(start, project="my-project")

``wandb`` is imported only by :func:`init`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .tracking import remember, tracker_run_id

if TYPE_CHECKING:
    from ..checkpoint.training import ResumeResult


def init(start: ResumeResult | None = None, **options: Any) -> Any:
    """``wandb.init(id=..., resume="allow", **options)``: the id is the one stored in the
    checkpoint ``start`` came from (:func:`~portarun.integrations.tracking.tracker_run_id`), so
    the resumed session logs into the run it interrupted; a fresh start gets a new id, which
    the following checkpoints store. W&B documents ``resume="allow"`` as "resume the run if the
    id exists, else create a new run with that id" (https://docs.wandb.ai/guides/runs/resuming/).
    ``options`` win over both (pass ``id=`` to choose it yourself)."""
    import wandb

    options.setdefault("id", tracker_run_id("wandb", start))
    options.setdefault("resume", "allow")
    run = wandb.init(**options)
    remember("wandb", str(run.id))
    return run
