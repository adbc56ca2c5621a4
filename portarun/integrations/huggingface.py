"""Hugging Face ``Trainer``: ``TrainingArguments`` from the runtime, and a save before the deadline.

>>> from transformers import Trainer, TrainingArguments
>>> from portarun.integrations.huggingface import deadline_callback, has_checkpoint, training_arguments_kwargs
>>> args = TrainingArguments(num_train_epochs=3, **training_arguments_kwargs(rt))
>>> trainer = Trainer(model, args, train_dataset=ds, callbacks=[deadline_callback(rt)])
>>> trainer.train(resume_from_checkpoint=has_checkpoint(rt))

transformers is imported only by the functions that need it.
"""
from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IntegrationError
from ..paths import is_remote, join
from . import DEADLINE_MARGIN

if TYPE_CHECKING:
    from ..runtime import Runtime


def output_dir(rt: Runtime) -> Path:
    """Where the ``Trainer`` writes its ``checkpoint-<step>`` folders:
    ``rt.paths.checkpoints/huggingface``, on storage that outlives the session. Raises
    :class:`~portarun.errors.IntegrationError` when the checkpoints role is a bucket URL."""
    if is_remote(rt.paths.checkpoints):
        raise IntegrationError(
            f"the Hugging Face Trainer saves to a local folder, and rt.paths.checkpoints is {rt.paths.checkpoints}. "
            "Set PORTARUN_CHECKPOINTS_DIR to a local or mounted folder, or pass your own output_dir and copy the "
            "checkpoints with rt.stage_out(...).")
    return Path(join(rt.paths.checkpoints, "huggingface"))


#: The folders the Trainer resumes from, as transformers matches them: ``_re_checkpoint`` used by
#: ``get_last_checkpoint`` (huggingface/transformers@007360d654f36b1f4bc0c701c7b1b69273a7c4ed:
#: src/transformers/trainer_utils.py). ``checkpoint-junk`` would count for a prefix test, and
#: ``resume_from_checkpoint=True`` would then find no checkpoint and raise.
_TRAINER_CHECKPOINT = re.compile(r"^checkpoint\-(\d+)$")


def has_checkpoint(rt: Runtime) -> bool:
    """Whether :func:`output_dir` holds a ``checkpoint-<step>`` folder to resume from: pass it
    as ``trainer.train(resume_from_checkpoint=has_checkpoint(rt))`` (``True`` with no
    checkpoint is an error in transformers)."""
    folder = output_dir(rt)
    return folder.is_dir() and any(p.is_dir() and _TRAINER_CHECKPOINT.match(p.name) for p in folder.iterdir())


def training_arguments_kwargs(rt: Runtime) -> dict[str, Any]:
    """Keyword arguments for ``transformers.TrainingArguments``: ``output_dir`` (see
    :func:`output_dir`); ``dataloader_num_workers``, ``dataloader_pin_memory``,
    ``dataloader_persistent_workers`` and ``dataloader_prefetch_factor`` from ``rt.loader``
    (the last two only where the installed transformers has them); ``bf16``/``fp16`` from
    ``rt.device.amp_dtype``; ``save_strategy="steps"``. The deadline save comes from
    :func:`deadline_callback`, which needs the ``Trainer``. Your keyword arguments win."""
    from transformers import TrainingArguments

    loader = rt.loader
    out: dict[str, Any] = {
        "output_dir": str(output_dir(rt)),
        "dataloader_num_workers": loader.num_workers,
        "dataloader_pin_memory": loader.pin_memory,
        "bf16": rt.device.amp_dtype == "bfloat16",
        "fp16": rt.device.amp_dtype == "float16",
        "save_strategy": "steps",
    }
    if loader.num_workers:
        out["dataloader_persistent_workers"] = loader.persistent_workers
        out["dataloader_prefetch_factor"] = loader.prefetch_factor
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {key: value for key, value in out.items() if key in known}


def deadline_callback(rt: Runtime, margin: timedelta = DEADLINE_MARGIN, *, stop: bool = True) -> Any:
    """A ``transformers.TrainerCallback`` that, once the session's time left
    (``rt.session.time_left()``) falls to ``margin``, makes the ``Trainer`` save a checkpoint at
    the end of that step and (with ``stop``) end training, so the next session resumes from it.
    Does nothing on hosts without a session limit."""
    from transformers import TrainerCallback

    class DeadlineCallback(TrainerCallback):  # type: ignore[misc,unused-ignore]  # Any without transformers' types
        """Save (and stop) once the session's time left falls to the margin."""

        def __init__(self) -> None:
            self.fired = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            left = rt.session.time_left()
            if not self.fired and left is not None and left <= margin:
                self.fired = True
                control.should_save = True
                if stop:
                    control.should_training_stop = True
            return control

    return DeadlineCallback()


def monitor_callback(rt: Runtime, **options: Any) -> Any:
    """A ``transformers.TrainerCallback`` running ``rt.monitor(**options)`` while the
    ``Trainer`` trains: started at ``on_train_begin`` (noting the train loader's
    ``num_workers``), each optimizer step timed from ``on_step_begin`` (called once the step's
    batches are fetched) to ``on_step_end`` (the time between steps is the wait for data),
    stopped at ``on_train_end``. The monitor is the callback's ``monitor`` attribute. See
    docs/monitor.md."""
    from transformers import TrainerCallback

    from ..monitor import Monitor

    class MonitorCallback(TrainerCallback):  # type: ignore[misc,unused-ignore]  # Any without transformers' types
        """Run portarun's monitor while the Trainer trains."""

        def __init__(self) -> None:
            self.monitor: Monitor = rt.monitor(**options)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.monitor.start()
            self.monitor.note_loader(kwargs.get("train_dataloader"))
            self.monitor.expect_batch()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.monitor.begin_step()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.monitor.end_step()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.monitor.stop()

    return MonitorCallback()
