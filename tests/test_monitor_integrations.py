"""The monitor started by the Lightning and Hugging Face integrations, around real fits on CPU."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portarun.monitor import read_timeline
from portarun.monitor.advice import summarize
from portarun.testing import simulate


def test_lightning_callback_times_every_training_batch(tmp_path: Path) -> None:
    L = pytest.importorskip("lightning")
    import torch

    from portarun.integrations.lightning import monitor_callback, trainer_kwargs

    class Tiny(L.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    with simulate("local", root=tmp_path) as rt:
        callback = monitor_callback(rt, interval=0.05)
        trainer = L.Trainer(max_epochs=2, callbacks=[callback], logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, **trainer_kwargs(rt))
        trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
        timeline = read_timeline(callback.monitor.path)
    assert not timeline.running
    assert summarize(timeline).steps == trainer.global_step == 8
    assert [r["num_workers"] for r in timeline.loaders] == [0, 0]  # one per epoch


@pytest.mark.slow
def test_hugging_face_callback_times_every_optimizer_step(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    import torch

    from portarun.integrations.huggingface import monitor_callback, training_arguments_kwargs

    class Regressor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
            return {"loss": torch.nn.functional.mse_loss(self.layer(x), labels)}

    rows = [{"x": torch.randn(4), "labels": torch.randn(1)} for _ in range(24)]
    with simulate("local", root=tmp_path) as rt:
        kwargs = {**training_arguments_kwargs(rt), "dataloader_num_workers": 0}
        kwargs.pop("dataloader_persistent_workers", None)
        kwargs.pop("dataloader_prefetch_factor", None)
        args = transformers.TrainingArguments(max_steps=6, save_strategy="no", per_device_train_batch_size=4,
                                              report_to=[], **{k: v for k, v in kwargs.items() if k != "save_strategy"})
        callback = monitor_callback(rt, interval=0.05)
        trainer = transformers.Trainer(model=Regressor(), args=args, train_dataset=rows, callbacks=[callback])
        trainer.train()
        timeline = read_timeline(callback.monitor.path)
    assert not timeline.running
    assert summarize(timeline).steps == trainer.state.global_step == 6
    assert timeline.loaders[0]["num_workers"] == 0
