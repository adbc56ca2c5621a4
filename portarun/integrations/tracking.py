"""Experiment trackers that continue the same run after a resume.

A resumed session is a new process: without the run's id, W&B starts a new run, and a
TensorBoard writer adds the steps replayed since the checkpoint a second time. So the id of
each tracker's run is kept in the checkpoints: :func:`tracker_run_id` gives the id that the
resumed checkpoint holds (or a new one for a fresh start) and remembers it, and every
``training_state(...)`` of this process stores the remembered ids in ``extra["trackers"]``.

>>> start = ckpt.resume(model, optimizer, loader=loader)
>>> run = portarun.integrations.wandb.init(start, project="my-project")   # same run as before
>>> writer = tensorboard_writer(log_dir, start)   # replayed steps replace the old ones

Log with the number of completed steps (the ``step`` given to ``maybe_save``): a run resumed
from step ``s`` replays steps ``s + 1``, ``s + 2``, ...
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..checkpoint.training import ResumeResult

_IDS: dict[str, str] = {}


def saved_run_ids(start: ResumeResult | None) -> dict[str, str]:
    """The tracker run ids a resumed checkpoint holds (``{}`` when none)."""
    saved = start.extra.get("trackers") if start is not None else None
    return {str(k): str(v) for k, v in saved.items()} if isinstance(saved, dict) else {}


def tracker_run_id(name: str, start: ResumeResult | None = None, new: Callable[[], str] | None = None) -> str:
    """The id of tracker ``name``'s run: the one stored in the checkpoint ``start`` came from,
    else the one this process already uses, else a new one (``new()``, default 8 random hex
    digits). It is remembered, so the next ``training_state(...)`` stores it."""
    run_id = saved_run_ids(start).get(name) or _IDS.get(name) or (new or (lambda: secrets.token_hex(4)))()
    _IDS[name] = run_id
    return run_id


def remember(name: str, run_id: str) -> None:
    """Store ``run_id`` for tracker ``name`` in the checkpoints saved from now on."""
    _IDS[name] = run_id


def run_ids() -> dict[str, str]:
    """The tracker run ids this process stores in its checkpoints."""
    return dict(_IDS)


def tensorboard_writer(log_dir: str, start: ResumeResult | None = None, **options: Any) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir`` that continues the run
    ``start`` resumed (keep ``log_dir`` on storage that outlives the session): with
    ``purge_step=start + 1``, TensorBoard hides the events of steps after the checkpoint that
    the interrupted process had already written, so each replayed step appears once. (Source:
    the ``purge_step`` docstring of pytorch/pytorch ``torch/utils/tensorboard/writer.py``: events
    with a global step at or above it are purged when TensorBoard reads the folder.)
    ``start`` of 0 (a fresh start) purges whatever an earlier attempt logged in that folder;
    ``None`` purges nothing. ``options`` go to ``SummaryWriter``."""
    from torch.utils.tensorboard import SummaryWriter

    purge = int(start) + 1 if start is not None else None
    return SummaryWriter(log_dir, purge_step=purge, **options)
