"""Hugging Face accelerate: ``Accelerator`` arguments from the runtime, and a resume that
continues accelerate's checkpoint numbering.

>>> from accelerate import Accelerator
>>> from portarun.integrations.accelerate import accelerator_kwargs, resume_state
>>> accelerator = Accelerator(**accelerator_kwargs(rt))
>>> model, optimizer = accelerator.prepare(model, optimizer)
>>> resume_state(accelerator)  # the newest checkpoint_<n>, if any; the next save is checkpoint_<n+1>
>>> accelerator.save_state()   # into rt.paths.checkpoints/accelerate/checkpoints/checkpoint_<n>

accelerate is imported only by the function that needs it.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import IntegrationError, warn
from ..paths import is_remote, join
from . import AMP_NAMES

if TYPE_CHECKING:
    from ..runtime import Runtime

# accelerate names its automatic checkpoints checkpoint_<iteration> (accelerate 1.x
# ``Accelerator.save_state``), under <project_dir>/checkpoints.
_CHECKPOINT = re.compile(r"checkpoint_([0-9]+)")


def _checkpoints(project_dir: str) -> list[tuple[int, str]]:
    """``(iteration, folder)`` of each ``checkpoint_<n>`` folder, oldest first; the folder is
    kept as found (a planted ``checkpoint_0007`` is not ``checkpoint_7``)."""
    folder = os.path.join(project_dir, "checkpoints")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted((int(m.group(1)), os.path.join(folder, name)) for name in names
                  if (m := _CHECKPOINT.fullmatch(name)) and os.path.isdir(os.path.join(folder, name)))


def _iterations(project_dir: str) -> list[int]:
    return [n for n, _ in _checkpoints(project_dir)]


def accelerator_kwargs(rt: Runtime, *, automatic_checkpoint_naming: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``accelerate.Accelerator``: ``mixed_precision`` from
    ``rt.device.amp_dtype`` (``bf16``, ``fp16`` or ``no``) and a ``project_config`` whose
    ``project_dir`` is ``rt.paths.checkpoints/accelerate`` with automatic checkpoint naming, so
    ``accelerator.save_state()`` writes numbered checkpoints on storage that outlives the session.

    The configuration's ``iteration`` starts after the newest ``checkpoint_<n>`` already there:
    accelerate itself starts at 0 in every new process, so its second session's first
    ``save_state()`` would fail with "checkpoint_0 already exists". Raises
    :class:`~portarun.errors.IntegrationError` when the checkpoints role is a bucket URL
    (accelerate writes local files only)."""
    from accelerate.utils import ProjectConfiguration

    if is_remote(rt.paths.checkpoints):
        raise IntegrationError(
            f"accelerate saves to a local folder, and rt.paths.checkpoints is {rt.paths.checkpoints}. Set "
            "PORTARUN_CHECKPOINTS_DIR to a local or mounted folder, or build the Accelerator with your own "
            "project_dir and copy the checkpoints with rt.stage_out(...).")
    project_dir = str(join(rt.paths.checkpoints, "accelerate"))
    done = _iterations(project_dir)
    return {
        "mixed_precision": AMP_NAMES[rt.device.amp_dtype]["accelerate"],
        "project_config": ProjectConfiguration(project_dir=project_dir,
                                               automatic_checkpoint_naming=automatic_checkpoint_naming,
                                               iteration=done[-1] + 1 if done else 0),
    }


def resume_state(accelerator: Any) -> int | None:
    """Load the newest automatic checkpoint into ``accelerator`` (after ``prepare``) and return
    its iteration, or return ``None`` when there is none yet (the first session): accelerate's
    own ``load_state()`` raises then. A checkpoint accelerate cannot load (left empty or half
    written by a process killed inside ``save_state()``) is skipped for the one before it with a
    :class:`~portarun.errors.PortarunWarning` naming it; when none loads,
    :class:`~portarun.errors.IntegrationError`. The next ``save_state()`` writes the iteration
    after the newest folder, so a skipped one is never written into.
    Raises :class:`~portarun.errors.IntegrationError` when the accelerator does not use
    automatic checkpoint naming (pass the folder to ``load_state`` yourself then)."""
    config = accelerator.project_configuration
    if not config.automatic_checkpoint_naming:
        raise IntegrationError("resume_state() finds checkpoints by accelerate's automatic naming, which this "
                               "Accelerator does not use; call accelerator.load_state(<folder>) instead.")
    found = _checkpoints(config.project_dir)
    if not found:
        return None
    config.iteration = max(config.iteration, found[-1][0] + 1)  # never reuse a folder, even a torn one
    skipped: list[str] = []
    for iteration, folder in reversed(found):
        try:
            accelerator.load_state(folder)
        except Exception as exc:  # torn by a kill inside save_state(), or not accelerate's
            skipped.append(f"{folder} ({type(exc).__name__}: {exc})")
            continue
        if skipped:
            warn(f"resume_state() skipped {len(skipped)} newer checkpoint(s) accelerate cannot load: "
                 f"{'; '.join(skipped)}. Resumed from {folder} instead; move the skipped ones away once you have "
                 "looked at them.")
        return iteration
    raise IntegrationError(f"no accelerate checkpoint in {os.path.join(config.project_dir, 'checkpoints')} can be "
                           f"loaded: {'; '.join(skipped[:5])}. Move them away to start fresh, or fix what each "
                           "message says.")
