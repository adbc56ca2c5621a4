"""PyTorch Lightning: ``Trainer`` arguments and a checkpoint callback from the runtime.

>>> import lightning as L
>>> from portarun.integrations.lightning import checkpoint_callback, trainer_kwargs
>>> trainer = L.Trainer(max_epochs=3, callbacks=[checkpoint_callback(rt)], **trainer_kwargs(rt))
>>> trainer.fit(model, ckpt_path="last")   # resumes from last.ckpt when there is one

``monitor_callback(rt)`` adds portarun's run monitor (docs/monitor.md).

For the ``lightning`` package (2.x), imported only by :func:`checkpoint_callback`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..paths import join
from . import AMP_NAMES

if TYPE_CHECKING:
    from ..runtime import Runtime

#: ``rt.device.kind`` → Lightning's accelerator name (lightning.fabric.accelerators registry).
ACCELERATORS = {"cuda": "cuda", "xla": "tpu", "mps": "mps", "cpu": "cpu"}


def trainer_kwargs(rt: Runtime) -> dict[str, Any]:
    """Keyword arguments for ``lightning.Trainer``: ``accelerator`` from ``rt.device.kind``;
    ``devices`` (and ``num_nodes``) from the launcher's processes per node when a launcher
    started this process (``rt.dist``), else every device of that kind (one process on CPU);
    ``precision`` from ``rt.device.amp_dtype`` (``bf16-mixed``, ``16-mixed`` or ``32-true``);
    ``default_root_dir`` = ``rt.paths.output`` (logs and Lightning's own files). Your own
    keyword arguments passed after these win."""
    device, dist = rt.device, rt.dist
    out: dict[str, Any] = {
        "accelerator": ACCELERATORS[device.kind],
        "precision": AMP_NAMES[device.amp_dtype]["lightning"],
        "default_root_dir": str(rt.paths.output),
    }
    if dist.launcher is not None and dist.world_size > 1:
        out["devices"] = dist.local_world_size
        out["num_nodes"] = max(1, dist.world_size // max(1, dist.local_world_size))
    else:
        out["devices"] = 1 if device.kind == "cpu" else max(1, device.count)
    return out


def checkpoint_callback(rt: Runtime, **options: Any) -> Any:
    """A ``ModelCheckpoint`` writing to ``rt.paths.checkpoints/lightning`` (storage that
    outlives the session; a folder of its own, next to :class:`~portarun.checkpoint.Checkpointer`'s)
    with ``save_last=True``, so ``trainer.fit(model, ckpt_path="last")`` resumes. ``options``
    are passed to ``ModelCheckpoint`` and win (``every_n_train_steps``, ``monitor``, ...)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    settings: dict[str, Any] = {"dirpath": str(join(rt.paths.checkpoints, "lightning")), "save_last": True}
    settings.update(options)
    return ModelCheckpoint(**settings)


def monitor_callback(rt: Runtime, **options: Any) -> Any:
    """A Lightning ``Callback`` running ``rt.monitor(**options)`` for the length of
    ``trainer.fit``: started at ``on_fit_start`` (noting the train loader's ``num_workers``),
    each training batch timed from ``on_train_batch_start`` to ``on_train_batch_end`` (the time
    between batches is the wait for data), stopped at ``on_fit_end`` or on an exception. The
    monitor is the callback's ``monitor`` attribute: ``callback.monitor.report()``. See
    docs/monitor.md."""
    from lightning.pytorch.callbacks import Callback

    from ..monitor import Monitor

    class MonitorCallback(Callback):  # type: ignore[misc,unused-ignore]  # Any without Lightning's types
        """Run portarun's monitor while the trainer fits."""

        def __init__(self) -> None:
            self.monitor: Monitor = rt.monitor(**options)

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self.monitor.start()

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.monitor.note_loader(trainer.train_dataloader)
            self.monitor.expect_batch()

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.monitor.begin_step()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.monitor.end_step()

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self.monitor.stop()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            self.monitor.stop()

    return MonitorCallback()


def rng_callback() -> Any:
    """A Lightning ``Callback`` that makes ``fit(ckpt_path=...)`` resume exactly where Lightning
    itself does not: Lightning's checkpoints restore the model, optimizers, schedulers, loop
    progress and the ``state_dict()`` of stateful train loaders (a loader from
    ``rt.dataloader``), but not Python's, numpy's and torch's global random states, so dropout
    and other random operations differ after a resume. This callback stores them in each
    checkpoint (``on_save_checkpoint``, at the step boundary the checkpoint is taken at) and
    puts them back at ``on_train_start``, after Lightning's restore and before the first batch.
    See docs/checkpoints.md ("Exact resume")."""
    from lightning.pytorch.callbacks import Callback

    from ..checkpoint.training import rng_state, set_rng_state

    class RNGCallback(Callback):  # type: ignore[misc,unused-ignore]  # Any without Lightning's types
        """Save the global random states with each checkpoint; restore them on resume."""

        def __init__(self) -> None:
            self.pending: dict[str, Any] | None = None

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            checkpoint["portarun_rng"] = rng_state()

        def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            self.pending = checkpoint.get("portarun_rng")

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            if self.pending is not None:
                set_rng_state(self.pending)
                self.pending = None

    return RNGCallback()
