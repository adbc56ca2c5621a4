"""resume(): its result object, refusing a checkpoint of another shape without touching the
model, refusing at save() what could never be resumed, falling back past what cannot be
loaded, and what a mid-epoch resume restores (real torch, real files, real DataLoader workers)."""
from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer, training_state  # noqa: E402
from portarun.checkpoint.manifest import STATE_FILE  # noqa: E402
from portarun.errors import CheckpointError, PortarunWarning  # noqa: E402
from portarun.testing import simulate  # noqa: E402


@dataclasses.dataclass
class Config:
    """A user's class: torch.load(weights_only=True) refuses it unless allowed."""

    lr: float = 0.1


class Tagged(torch.Tensor):
    """A tensor subclass: refused by weights_only loading unless allowed, then loaded as itself."""


def _trained(seed: int = 0, width: int = 4) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(3, 6)).sum().backward()
    opt.step()
    return model, opt


def test_resume_returns_a_result_that_compares_like_the_step(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking")
    model, opt = _trained()
    nothing = ck.resume(model, opt)
    assert nothing == 0 and not nothing and not nothing.resumed and nothing.checkpoint is None
    assert nothing.extra == {} and nothing.epoch is None and list(range(nothing, 2)) == [0, 1]
    ck.save(training_state(model, opt, extra={"epoch": 2, "best": 0.25}), step=5)
    start = Checkpointer(tmp_path, mode="blocking").resume(model, opt)
    assert start == 5 and start > 0 and int(start) == 5 and bool(start) and start.step == 5
    assert list(range(start, 7)) == [5, 6] and divmod(start, 2) == (2, 1) and f"{start}" == "5"
    assert start.epoch == 2 and start.extra == {"epoch": 2, "best": 0.25}
    assert start.resumed and start.checkpoint is not None
    assert start.checkpoint.name == "step-000000005" and start.checkpoint.location == str(tmp_path / "step-000000005")
    assert start.checkpoint.saved_at.tzinfo is not None
    assert "step=5, epoch=2, from 'step-000000005'" in repr(start)


def _snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[object, object, object]:
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), torch.get_rng_state()


def _assert_untouched(before: tuple[object, object, object], model: torch.nn.Module,
                      opt: torch.optim.Optimizer) -> None:
    weights, opt_state, rng = before
    after = model.state_dict()
    assert isinstance(weights, dict) and weights.keys() == after.keys()
    for key, value in weights.items():  # bit-identical, not merely close
        assert torch.equal(value, after[key]) and value.dtype == after[key].dtype, key
    assert isinstance(opt_state, dict)
    now = opt.state_dict()
    assert opt_state["param_groups"] == now["param_groups"]
    for index, values in opt_state["state"].items():
        for name, value in values.items():
            assert torch.equal(value, now["state"][index][name]), (index, name)
    assert isinstance(rng, torch.Tensor) and torch.equal(rng, torch.get_rng_state())


def test_resume_into_another_shape_names_folder_step_and_keys_and_touches_nothing(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking")
    ck.save(training_state(*_trained(width=4)), step=7)
    model, opt = _trained(seed=1, width=8)  # another run's model: same names, other shapes
    before = _snapshot(model, opt)
    with pytest.raises(CheckpointError) as caught:
        ck.resume(model, opt)
    message = str(caught.value)
    assert str(tmp_path / "step-000000007") in message and "step 7" in message
    assert "shape differs: 0.weight: saved [4, 6], model [8, 6]" in message
    assert "optimizer parameter shape differs: group 0 param 0: saved [4, 6], optimizer [8, 6]" in message
    assert "Nothing was restored" in message
    _assert_untouched(before, model, opt)


def test_resume_into_other_keys_or_param_groups_touches_nothing(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking")
    ck.save(training_state(*_trained()), step=3)
    torch.manual_seed(2)
    other = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2), torch.nn.Linear(2, 2))
    opt = torch.optim.Adam(other.parameters())
    before = _snapshot(other, opt)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: 3\.weight, 3\.bias.*"
                                              r"optimizer param group sizes differ: saved \[4\], optimizer \[6\]"):
        ck.resume(other, opt)
    _assert_untouched(before, other, opt)
    # The model fits but the optimizer has its parameters in two groups: refused before the model is touched.
    model, _ = _trained(seed=3)
    split = torch.optim.Adam([{"params": list(model.parameters())[:2]}, {"params": list(model.parameters())[2:]}])
    before = _snapshot(model, split)
    with pytest.raises(CheckpointError, match=r"saved \[4\], optimizer \[2, 2\]"):
        ck.resume(model, split)
    _assert_untouched(before, model, split)
    # strict=False skips missing and unexpected keys, as torch's load_state_dict does, and loads the rest.
    assert ck.resume(other, strict=False) == 3
    assert torch.equal(other[0].weight, ck.load()["model"]["0.weight"])


def test_checkpoints_record_origin_and_shapes(tmp_path: Path) -> None:
    with simulate("local", root=tmp_path / "host") as rt:
        ck = rt.checkpoints
        model, opt = _trained()
        ck.save(training_state(model, opt), step=1)
        ck.wait()
        meta = ck.load(map_location="cpu")["meta"]
        assert meta["origin"] == {"project": rt.project, "origin": rt.project_origin, "host": "local"}
        assert rt.project_origin  # where the project's name came from: something to tell two runs apart by
        assert meta["model"] == {"0.weight": [4, 6], "0.bias": [4], "2.weight": [2, 4], "2.bias": [2]}
        assert meta["optimizer"] == [[[4, 6], [4], [2, 4], [2]]]
        wider, wider_opt = _trained(width=5)
        with pytest.raises(CheckpointError, match=f"saved by project {rt.project}.*host local"):
            ck.resume(wider, wider_opt)


def test_save_refuses_what_weights_only_loading_refuses(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path / "ck", mode="thread")
    model, opt = _trained()
    with pytest.raises(CheckpointError) as caught:
        ck.save(training_state(model, opt, extra={"config": Config()}), step=1)
    message = str(caught.value)
    assert "state['extra']['config'] is a test_checkpoint_resume.Config" in message
    assert "weights_only=True" in message and "add_safe_globals" in message and "dataclasses.asdict" in message
    with pytest.raises(CheckpointError, match=r"state\['opts'\]\[1\] is a numpy.ndarray"):
        np = pytest.importorskip("numpy")
        ck.save({"opts": [1, np.zeros(3)]}, step=1)
    with pytest.raises(CheckpointError, match=r"state\['hook'\] is a builtins.function, which cannot be pickled"):
        ck.save({"hook": lambda: None}, step=1)
    ck.wait()
    assert ck.list() == [] and not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())
    # Knowingly: written, and read back only without weights_only.
    ck.save({"config": Config(lr=0.5)}, step=2, weights_only=False)
    ck.wait()
    assert ck.load(weights_only=False)["config"] == Config(lr=0.5)
    # Allowed globals pass, as they load; an allowed tensor subclass too, rebuilt on its own data.
    tagged = torch.arange(4.0).as_subclass(Tagged)
    with pytest.raises(CheckpointError, match=r"state\['t'\] is a test_checkpoint_resume.Tagged"):
        ck.save({"t": tagged}, step=3)
    with torch.serialization.safe_globals([Config, Tagged]):
        ck.save({"config": Config(lr=0.7), "t": tagged}, step=3)
        ck.wait()
        loaded = ck.load()
        assert loaded["config"] == Config(lr=0.7)
        assert type(loaded["t"]) is Tagged and torch.equal(loaded["t"], tagged)


def test_resume_falls_back_past_a_checkpoint_it_cannot_load(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking", keep_last=5)
    model, opt = _trained()
    ck.save(training_state(model, opt, extra={"epoch": 1}), step=10)
    ck.save(training_state(model, opt, extra={"config": Config()}), step=20, weights_only=False)
    fresh, fresh_opt = _trained(seed=9)
    with pytest.warns(PortarunWarning, match=r"(?s)skipped 1 newer checkpoint.*step-000000020.*weights_only.*"
                                             r"Resumed from step 10 "):
        start = ck.resume(fresh, fresh_opt)
    assert start == 10 and start.epoch == 1 and torch.equal(fresh[0].weight, model[0].weight)
    # A torn newest one is skipped the same way.
    state = tmp_path / "step-000000020" / STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    with pytest.warns(PortarunWarning, match="torn write"):
        assert ck.resume(fresh, fresh_opt) == 10
    # When none loads: an error naming each, never a silent fresh start.
    (tmp_path / "step-000000010" / STATE_FILE).write_bytes(b"x")
    with pytest.raises(CheckpointError, match="(?s)can be resumed.*step-000000020.*step-000000010"):
        ck.resume(fresh, fresh_opt)


def test_resume_weights_only_false_reads_a_trusted_checkpoint(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking")
    model, opt = _trained()
    ck.save(training_state(model, opt, extra={"config": Config(lr=0.3)}), step=4, weights_only=False)
    fresh, fresh_opt = _trained(seed=5)
    start = ck.resume(fresh, fresh_opt, weights_only=False)
    assert start == 4 and start.extra["config"] == Config(lr=0.3)


class Noisy(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random augmentation in the workers: each item draws from its worker's torch RNG."""

    def __len__(self) -> int:
        return 48

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return torch.randn(6, generator=g) + 0.1 * torch.randn(6), torch.tensor(i % 2)


def _train(steps: range, model: torch.nn.Module, opt: torch.optim.Optimizer, *, seeded_loader: bool,
           ck: Checkpointer | None = None, stop_after: int | None = None) -> None:
    """The recipe of docs/checkpoints.md: per-epoch seeded loader generator, skip done batches."""
    generator = torch.Generator() if seeded_loader else None
    loader = torch.utils.data.DataLoader(Noisy(), batch_size=8, shuffle=True, num_workers=2, generator=generator)
    per_epoch = len(loader)
    step = steps.start
    while step < steps.stop:
        epoch, skip = divmod(step, per_epoch)
        if generator is not None:
            generator.manual_seed(1000 + epoch)
        for i, (x, y) in enumerate(loader):
            if i < skip:
                continue
            loss = torch.nn.functional.cross_entropy(torch.nn.functional.dropout(model(x), 0.3), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if ck is not None and step == stop_after:
                ck.save(training_state(model, opt, extra={"epoch": epoch}), step=step, blocking=True)
                return
            if step == steps.stop:
                return


@pytest.mark.parametrize("seeded_loader", [True, False])
def test_mid_epoch_resume_is_exact_only_with_a_seeded_loader(tmp_path: Path, seeded_loader: bool) -> None:
    """What docs/checkpoints.md states: RNG states are restored, the DataLoader's order and
    worker seeds are not (they are drawn when the epoch's iterator starts); a loader generator
    seeded per epoch makes the resumed run bit-identical to the uninterrupted one."""
    total, cut = 14, 9  # 6 batches per epoch: the cut is in the middle of the second epoch
    torch.manual_seed(0), random.seed(0)
    straight, straight_opt = _trained(seed=0)
    torch.manual_seed(42)
    _train(range(0, total), straight, straight_opt, seeded_loader=seeded_loader)

    ck = Checkpointer(tmp_path / ("seeded" if seeded_loader else "global"), mode="blocking")
    first, first_opt = _trained(seed=0)
    torch.manual_seed(42)
    _train(range(0, total), first, first_opt, seeded_loader=seeded_loader, ck=ck, stop_after=cut)
    resumed, resumed_opt = _trained(seed=7)
    torch.manual_seed(123)  # a new process: other RNG states until resume() restores them
    start = ck.resume(resumed, resumed_opt)
    assert start == cut
    _train(range(start, total), resumed, resumed_opt, seeded_loader=seeded_loader)
    same = all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert same is seeded_loader
