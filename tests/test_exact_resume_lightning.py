"""Lightning resumes exactly with a loader from rt.dataloader and portarun's RNG callback (and
not without the callback): real Lightning fits on CPU, stopped mid-epoch after a checkpoint and
resumed from last.ckpt by a new Trainer, with 2 workers adding random noise, dropout,
gradient accumulation and a step scheduler."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")
pytest.importorskip("torchdata.stateful_dataloader")
numpy = pytest.importorskip("numpy")

import portarun  # noqa: E402
from portarun.integrations.lightning import rng_callback  # noqa: E402


class Noisy(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 22

    def __getitem__(self, i: int) -> Any:
        g = torch.Generator().manual_seed(i)
        noise = torch.rand(8) * 0.1 + random.random() * 0.01 + float(numpy.random.rand()) * 0.01
        return torch.randn(8, generator=g) + noise, torch.randn(1, generator=g)


class Model(L.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                       torch.nn.Linear(16, 1))

    def training_step(self, batch: Any, index: int) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=0.01)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 2, 0.7), "interval": "step"}}


def _fit(folder: Path, max_steps: int, resume: bool, with_rng: bool) -> dict[str, Any]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    torch.use_deterministic_algorithms(True)
    rt = portarun.detect()
    L.seed_everything(0, verbose=False)
    loader = rt.dataloader(Noisy(), batch_size=4, shuffle=True, num_workers=2, persistent_workers=True)
    model = Model()
    callbacks = [ModelCheckpoint(dirpath=folder, every_n_train_steps=1, save_last=True)]
    callbacks += [rng_callback()] if with_rng else []
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=2, callbacks=callbacks, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                        default_root_dir=folder, num_sanity_val_steps=0)
    trainer.fit(model, loader, ckpt_path="last" if resume else None)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.hosts  # the Trainer's folders come from portarun.detect() on the session's host
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("with_rng", [True, False])
def test_lightning_resumes_mid_epoch_bit_identical_with_the_rng_callback(tmp_path: Path, with_rng: bool) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight = _fit(tmp_path / "straight", 9, False, with_rng)
        _fit(tmp_path / "cut", 4, False, with_rng)  # 8 of the 6-batch epochs' batches: mid-epoch 2
        resumed = _fit(tmp_path / "cut", 9, True, with_rng)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight) is with_rng
