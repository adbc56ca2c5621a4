"""Crash-safe, asynchronous checkpoints with resume-from-latest (``rt.checkpoints``).

>>> ckpt = portarun.detect().checkpoints
>>> start = ckpt.resume(model, optimizer)          # an int: 0 when there is nothing to resume
>>> for step in range(start, total_steps):
...     train_step()
...     ckpt.maybe_save(lambda: training_state(model, optimizer), step + 1)

Importing this package does not import torch; saving and loading do. See docs/checkpoints.md.
"""
from __future__ import annotations

from .checkpointer import Checkpointer, CheckpointInfo
from .drive import DriveSync
from .manifest import Manifest
from .policy import SavePolicy
from .training import ResumeResult, restore, rng_state, set_rng_state, training_state

__all__ = ["Checkpointer", "CheckpointInfo", "DriveSync", "Manifest", "ResumeResult", "SavePolicy", "restore",
           "rng_state", "set_rng_state", "training_state"]
