"""portarun.integrations against the real libraries: a Lightning fit writing into
rt.paths.checkpoints, TrainingArguments and a Trainer stopped by the deadline callback, an
Accelerator saving state, and the cache variables."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from portarun.errors import IntegrationError, PortarunWarning
from portarun.testing import simulate

CACHE_VARS = ("HF_HOME", "HF_DATASETS_CACHE", "TORCH_HOME", "KAGGLEHUB_CACHE")


def test_importing_the_integrations_imports_no_library() -> None:
    code = ("import sys, portarun, portarun.integrations, portarun.integrations.lightning, "
            "portarun.integrations.huggingface, portarun.integrations.accelerate, portarun.integrations.caches\n"
            "heavy = [m for m in ('torch', 'lightning', 'pytorch_lightning', 'transformers', 'accelerate', "
            "'huggingface_hub') if m in sys.modules]\nassert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- Lightning --------------------------------------------------------------------------------
def test_lightning_kwargs_follow_device_and_launcher() -> None:
    from portarun.integrations.lightning import trainer_kwargs

    with simulate("kaggle", gpus=["Tesla T4"] * 2) as rt:
        kw = trainer_kwargs(rt)
        assert kw == {"accelerator": "cuda", "devices": 2, "precision": "16-mixed",
                      "default_root_dir": str(rt.paths.output)}
    with simulate("local", gpus=["NVIDIA A100-SXM4-80GB"] * 8,
                  env={"TORCHELASTIC_RUN_ID": "x", "RANK": "9", "LOCAL_RANK": "1", "WORLD_SIZE": "16",
                       "LOCAL_WORLD_SIZE": "8", "GROUP_RANK": "1", "MASTER_ADDR": "n0", "MASTER_PORT": "29500"}) as rt:
        assert rt.dist.launcher is not None
        kw = trainer_kwargs(rt)
        assert (kw["devices"], kw["num_nodes"], kw["precision"]) == (8, 2, "bf16-mixed")
    with simulate("local") as rt:
        assert trainer_kwargs(rt)["accelerator"] == "cpu" and trainer_kwargs(rt)["devices"] == 1


@pytest.mark.slow
def test_lightning_fit_checkpoints_into_rt_paths_and_resumes(tmp_path: Path) -> None:
    L = pytest.importorskip("lightning")
    import torch

    from portarun.integrations.lightning import checkpoint_callback, trainer_kwargs

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

    def fit(epochs: int) -> L.Trainer:
        with simulate("local", root=tmp_path) as rt:
            trainer = L.Trainer(max_epochs=epochs, callbacks=[checkpoint_callback(rt)], logger=False,
                                enable_progress_bar=False, enable_model_summary=False, **trainer_kwargs(rt))
            trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8), ckpt_path="last")
            folder = Path(rt.paths.checkpoints) / "lightning"
            assert (folder / "last.ckpt").is_file()
            assert Path(trainer.default_root_dir) == Path(rt.paths.output)
            return trainer

    with pytest.warns(UserWarning):  # Lightning: "no last checkpoint available" on the first fit
        first = fit(1)
    assert first.global_step == 4
    second = fit(2)  # resumes from last.ckpt: one more epoch, not two
    assert second.global_step == 8 and second.current_epoch == 2


# -- Hugging Face -----------------------------------------------------------------------------
def test_training_arguments_from_runtime() -> None:
    transformers = pytest.importorskip("transformers")
    from portarun.integrations.huggingface import training_arguments_kwargs

    with simulate("local", cpus=4) as rt:
        kw = training_arguments_kwargs(rt)
        args = transformers.TrainingArguments(**kw)
        assert Path(args.output_dir) == Path(rt.paths.checkpoints) / "huggingface"
        assert args.dataloader_num_workers == rt.loader.num_workers == 4
        assert args.dataloader_persistent_workers and args.dataloader_prefetch_factor == 2
        assert not args.bf16 and not args.fp16 and args.save_strategy == "steps"
    with simulate("kaggle", gpus=["Tesla T4"]) as rt:
        kw = training_arguments_kwargs(rt)
        assert kw["fp16"] and not kw["bf16"] and kw["dataloader_pin_memory"]  # T4: float16 autocast


def test_remote_checkpoints_are_refused_with_advice() -> None:
    pytest.importorskip("transformers")
    from portarun.integrations.huggingface import training_arguments_kwargs

    with simulate("local", env={"PORTARUN_CHECKPOINTS_DIR": "memory://bucket/ckpt"}) as rt:
        with pytest.raises(IntegrationError, match="PORTARUN_CHECKPOINTS_DIR"):
            training_arguments_kwargs(rt)


@pytest.mark.slow
def test_deadline_callback_saves_and_stops_the_trainer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    import torch

    from portarun.integrations.huggingface import deadline_callback, has_checkpoint, training_arguments_kwargs

    class Regressor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": torch.nn.functional.mse_loss(self.layer(x), labels)}

    rows = [{"x": torch.randn(4), "labels": torch.randn(1)} for _ in range(64)]
    # The session began 12 h 55 min ago with a 13 h limit: 5 minutes left, inside the 10-minute margin.
    started = datetime.now(timezone.utc) - timedelta(hours=12, minutes=55)
    with simulate("local", root=tmp_path, env={"PORTARUN_SESSION_LIMIT": "13h"}, started_at=started) as rt:
        assert not has_checkpoint(rt)
        args = transformers.TrainingArguments(max_steps=50, save_steps=1000, per_device_train_batch_size=4,
                                              report_to=[], **training_arguments_kwargs(rt))
        trainer = transformers.Trainer(model=Regressor(), args=args, train_dataset=rows,
                                       callbacks=[deadline_callback(rt)])
        trainer.train()
        assert trainer.state.global_step == 1  # stopped after the first step ...
        assert has_checkpoint(rt)               # ... having saved it
        assert (Path(rt.paths.checkpoints) / "huggingface" / "checkpoint-1").is_dir()


def test_deadline_callback_is_quiet_without_a_limit() -> None:
    pytest.importorskip("transformers")
    from transformers import TrainerControl

    from portarun.integrations.huggingface import deadline_callback

    with simulate("local") as rt:
        control = deadline_callback(rt).on_step_end(None, None, TrainerControl())
        assert not control.should_save and not control.should_training_stop


# -- accelerate -------------------------------------------------------------------------------
def test_accelerator_from_runtime_saves_state_into_checkpoints(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    import torch
    from accelerate import Accelerator

    from portarun.integrations.accelerate import accelerator_kwargs

    with simulate("local", root=tmp_path) as rt:
        kw = accelerator_kwargs(rt)
        accelerator = Accelerator(**kw)
        assert accelerator.mixed_precision == "no"
        assert Path(accelerator.project_dir) == Path(rt.paths.checkpoints) / "accelerate"
        model = accelerator.prepare(torch.nn.Linear(2, 2))
        accelerator.save_state()
        assert (Path(rt.paths.checkpoints) / "accelerate" / "checkpoints" / "checkpoint_0").is_dir()
        assert model is not None
    with simulate("kaggle", gpus=["NVIDIA A100-SXM4-40GB"]) as rt:
        assert accelerator_kwargs(rt)["mixed_precision"] == "bf16"


_ACCELERATE_SESSION = """
import sys, torch
from accelerate import Accelerator
import portarun
from portarun.integrations.accelerate import accelerator_kwargs, resume_state

rt = portarun.detect(project="acc")
accelerator = Accelerator(**accelerator_kwargs(rt))
torch.manual_seed(0)
model = accelerator.prepare(torch.nn.Linear(2, 2))
resumed = resume_state(accelerator)
if resumed is not None:
    assert torch.equal(model.weight, torch.load(sys.argv[1])), "load_state did not restore the weights"
with torch.no_grad():
    model.weight.add_(1.0)
torch.save(model.weight.detach().clone(), sys.argv[1])
accelerator.save_state()
print("resumed", resumed, "saved", accelerator.save_iteration - 1)
"""


@pytest.mark.slow
def test_accelerate_recipe_resumes_across_two_processes(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    script = tmp_path / "session.py"
    script.write_text(_ACCELERATE_SESSION)
    (tmp_path / "ckpt").mkdir()
    env = {**os.environ, "PORTARUN_CHECKPOINTS_DIR": str(tmp_path / "ckpt"), "PORTARUN_HOST": "local"}
    outputs = []
    for _ in range(3):
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "weight.pt")], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout.strip().splitlines()[-1])
    assert outputs == ["resumed None saved 0", "resumed 0 saved 1", "resumed 1 saved 2"]


# -- caches -----------------------------------------------------------------------------------
@pytest.fixture
def clean_cache_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CACHE_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_configure_caches_points_at_rt_paths_cache(clean_cache_env: pytest.MonkeyPatch) -> None:
    # torch is imported, but reads TORCH_HOME at each call: no warning. The Hugging Face modules
    # that read their variables at import are kept out of sys.modules for this test.
    for module in ("huggingface_hub", "datasets"):
        clean_cache_env.delitem(sys.modules, module, raising=False)
    with simulate("kaggle") as rt:
        values = rt.configure_caches()
        cache = Path(rt.paths.cache)
        assert values == {"HF_HOME": str(cache / "huggingface"),
                          "HF_DATASETS_CACHE": str(cache / "huggingface" / "datasets"),
                          "TORCH_HOME": str(cache / "torch"), "KAGGLEHUB_CACHE": str(cache / "kagglehub")}
        assert all(os.environ[k] == v and Path(v).is_dir() for k, v in values.items())
        import torch.hub

        assert torch.hub.get_dir() == str(cache / "torch" / "hub")


def test_configure_caches_keeps_what_the_user_set(clean_cache_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in ("huggingface_hub", "datasets"):
        clean_cache_env.delitem(sys.modules, module, raising=False)
    clean_cache_env.setenv("HF_HOME", str(tmp_path / "mine"))
    with simulate("local") as rt:
        values = rt.configure_caches()
    assert values["HF_HOME"] == str(tmp_path / "mine")
    assert "HF_DATASETS_CACHE" not in values  # follows the user's HF_HOME
    assert values["TORCH_HOME"].startswith(str(rt.paths.cache))


def test_configure_caches_after_import_warns_in_a_fresh_process(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    code = ("import warnings, huggingface_hub, portarun\n"
            "from portarun.testing import simulate\n"
            "with simulate('local') as rt, warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    rt.configure_caches()\n"
            "print('|'.join(str(w.message) for w in caught))\n")
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "HF_HOME was set to" in out and "huggingface_hub is already imported" in out
    assert "TORCH_HOME" not in out


def test_configure_caches_refuses_a_remote_cache(clean_cache_env: pytest.MonkeyPatch) -> None:
    with simulate("local", env={"PORTARUN_CACHE_DIR": "memory://bucket/cache"}) as rt:
        with pytest.warns(PortarunWarning, match="no cache variable was set"):
            assert rt.configure_caches() == {}
    assert not any(name in os.environ for name in CACHE_VARS)
