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

from ..errors import IntegrationError

if TYPE_CHECKING:
    from ..checkpoint.training import ResumeResult

_IDS: dict[str, str] = {}


def saved_run_ids(start: ResumeResult | None) -> dict[str, str]:
    """The tracker run ids a resumed checkpoint holds (``{}`` when none, or when ``start`` is a
    plain step number). Only non-empty strings count: ``None`` must not become the id
    ``'None'``."""
    extra = getattr(start, "extra", None)
    saved = extra.get("trackers") if isinstance(extra, dict) else None
    if not isinstance(saved, dict):
        return {}
    return {k: v for k, v in saved.items() if isinstance(k, str) and isinstance(v, str) and v}


def tracker_run_id(name: str, start: ResumeResult | None = None, new: Callable[[], str] | None = None) -> str:
    """The id of tracker ``name``'s run: the one stored in the checkpoint ``start`` came from,
    else the one this process already uses, else a new one (``new()``, default 8 random hex
    digits). It is remembered, so the next ``training_state(...)`` stores it. ``name`` is a
    non-empty string without control characters (it is a key in every checkpoint), else
    :class:`~portarun.errors.IntegrationError`."""
    if not isinstance(name, str) or not name or any(ord(c) < 32 for c in name):
        raise IntegrationError(f"a tracker name is a non-empty string without control characters, such as 'wandb' "
                               f"or 'tensorboard'; got {type(name).__name__} {name!r:.80}.")
    run_id = saved_run_ids(start).get(name) or _IDS.get(name)
    if not run_id:
        run_id = (new or (lambda: secrets.token_hex(4)))()
        if not isinstance(run_id, str) or not run_id:
            raise IntegrationError(f"new() must return a non-empty string to use as the run id of {name!r}, got "
                                   f"{run_id!r:.80}.")
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

    from ..staging import without_credentials

    given: object = start  # typed as resume()'s result, but any value may come in
    if given is not None and (isinstance(given, bool) or not isinstance(given, int) or given < 0):
        # -1 would purge from step 0: every event already logged in the folder would disappear.
        raise IntegrationError(f"start must be what resume() returned (a step of 0 or more) or None, got {start!r}.")
    purge = int(start) + 1 if start is not None else None
    failed: IntegrationError | None = None
    try:
        return SummaryWriter(log_dir, purge_step=purge, **options)
    except Exception as exc:  # the folder cannot be made, an unknown protocol, a refused bucket
        failed = IntegrationError(
            f"cannot write TensorBoard events to {log_dir}: {type(exc).__name__}: "
            f"{without_credentials(str(exc), str(log_dir))}. Pass a folder this process can write, e.g. under "
            "rt.paths.output, and keep credentials out of the URL.")
    # Raised here, not in the ``except``: the library's error may quote a credential.
    raise failed
