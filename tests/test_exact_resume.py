"""Exact resume: a loader from rt.dataloader continues where it was saved (order, workers' random
augmentation, the epochs after), gradients of a half-done accumulation come back, what cannot
be exact is named once, and a run SIGKILLed at several steps ends bit-identical to an
uninterrupted one (real torch, real DataLoader workers, real checkpoints and signals)."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.hosts  # rt.dataloader and rt.checkpoints come from portarun.detect() on the session's host

torch = pytest.importorskip("torch")
pytest.importorskip("torchdata.stateful_dataloader")
numpy = pytest.importorskip("numpy")

import portarun  # noqa: E402
from portarun.checkpoint import Checkpointer, training_state  # noqa: E402
from portarun.errors import LoaderError, PortarunWarning  # noqa: E402
from portarun.loader import WorkerRNG  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_resume  # noqa: E402


class Noisy(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Samples with random augmentation from torch, Python and numpy, drawn where loaded."""

    def __len__(self) -> int:
        return 22

    def __getitem__(self, i: int) -> Any:
        return torch.tensor([float(i)]) + torch.rand(1) + random.random() + float(numpy.random.rand())


class Stream(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        return iter(range(10))

    def __repr__(self) -> str:
        return "Stream()"


def _loader(rt: portarun.Runtime, workers: int, persistent: bool, **kw: Any) -> Any:
    rt.seed(0)
    order = kw.pop("order")
    if order == "own generator":
        kw["generator"] = torch.Generator().manual_seed(11)
    return rt.dataloader(Noisy(), batch_size=4, shuffle=order != "sequential", num_workers=workers,
                         persistent_workers=persistent if workers else None, **kw)


def _draw(loader: Any, n: int, it: Any = None) -> tuple[list[Any], Any]:
    """The next ``n`` batches, starting new epochs as a training loop does."""
    out: list[Any] = []
    it = iter(loader) if it is None else it
    while len(out) < n:
        try:
            out.append(next(it))
        except StopIteration:
            it = iter(loader)
    return out, it


@pytest.mark.parametrize(("workers", "persistent", "cut", "order"),
                         [(2, True, 3, "shuffled"), (2, True, 6, "shuffled"), (2, False, 8, "shuffled"),
                          (0, False, 4, "shuffled"), (2, True, 9, "own generator"), (2, False, 12, "own generator"),
                          (2, False, 4, "sequential")])
def test_a_restored_loader_continues_exactly(tmp_path: Path, workers: int, persistent: bool, cut: int,
                                             order: str) -> None:
    """6 batches an epoch (the last one short): cut mid-epoch, at an epoch's end and later,
    shuffled with portarun's generator or the user's, or in order (where the loader's generator
    only seeds each epoch's workers); the training loop's own RNG draws between batches must
    come out the same after the resume."""
    rt = portarun.detect()
    # Uninterrupted: cut batches, then (after the training loop used the global RNG) 15 more.
    straight = _loader(rt, workers, persistent, order=order)
    first, it = _draw(straight, cut)
    torch.rand(3)
    rest, _ = _draw(straight, 15, it)
    after = torch.rand(2)

    ck = Checkpointer(tmp_path, mode="blocking")
    interrupted = _loader(rt, workers, persistent, order=order)
    done, it = _draw(interrupted, cut)
    torch.rand(3)
    ck.save(training_state(loader=interrupted), step=cut)
    del it, interrupted

    torch.manual_seed(123)  # a new process: other states until resume() restores them
    resumed = _loader(rt, workers, persistent, order=order)
    start = Checkpointer(tmp_path).resume(loader=resumed)
    assert start == cut
    again, _ = _draw(resumed, 15)
    assert all(torch.equal(a, b) for a, b in zip(first, done))
    assert len(again) == len(rest) and all(torch.equal(a, b) for a, b in zip(rest, again))
    assert torch.equal(torch.rand(2), after)  # resuming the loader drew nothing from the loop's RNG


def test_rt_dataloader_is_stateful_and_keeps_the_dataset_reachable() -> None:
    rt = portarun.detect()
    loader = rt.dataloader(Noisy(), batch_size=4, num_workers=2)
    assert callable(loader.state_dict) and isinstance(loader, torch.utils.data.DataLoader)
    assert isinstance(loader.dataset, WorkerRNG) and isinstance(loader.dataset.dataset, Noisy)
    assert len(loader.dataset) == 22
    plain = rt.dataloader(Noisy(), batch_size=4, num_workers=2, stateful=False)
    assert not hasattr(plain, "state_dict") and isinstance(plain.dataset, Noisy)


def test_building_a_stateful_loader_warns_nothing() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        portarun.detect().dataloader(Noisy(), batch_size=4, num_workers=2)
    assert [str(w.message) for w in caught] == []


def test_stateful_without_torchdata_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchdata.stateful_dataloader", None)  # import fails as if absent
    rt = portarun.detect()
    with pytest.raises(LoaderError, match=r"portarun\[resume\]"):
        rt.dataloader(Noisy(), batch_size=4, stateful=True)
    assert not hasattr(rt.dataloader(Noisy(), batch_size=4), "state_dict")  # the default falls back


def _warnings_for(loader: Any, tmp_path: Path) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2):
            Checkpointer(tmp_path, mode="blocking").save(training_state(loader=loader), step=step)
    return [str(w.message) for w in caught if issubclass(w.category, PortarunWarning)]


class MySampler(torch.utils.data.Sampler):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        return iter(random.sample(range(22), 22))

    def __len__(self) -> int:
        return 22

    def __repr__(self) -> str:
        return "MySampler()"


@pytest.mark.parametrize(("build", "named"), [
    (lambda rt: rt.dataloader(Noisy(), batch_size=4, stateful=False), "keeps no position"),
    (lambda rt: rt.dataloader(Stream(), batch_size=2), "IterableDataset Stream()"),
    (lambda rt: rt.dataloader(Noisy(), batch_size=4, sampler=MySampler()), "sampler MySampler()"),
])
def test_what_cannot_be_exact_is_named_once(tmp_path: Path, build: Any, named: str) -> None:
    messages = _warnings_for(build(portarun.detect()), tmp_path)
    assert len(messages) == 1 and named in messages[0]


def test_exact_loaders_save_without_a_warning(tmp_path: Path) -> None:
    rt = portarun.detect()
    for i, loader in enumerate((rt.dataloader(Noisy(), batch_size=4, shuffle=True, num_workers=2),
                                rt.dataloader(Noisy(), batch_size=4))):
        assert _warnings_for(loader, tmp_path / str(i)) == []  # a folder each: steps never go back in one


def test_half_done_accumulation_comes_back(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    ck = Checkpointer(tmp_path, mode="blocking")
    ck.save(training_state(model, optimizer, accumulated=1), step=7)
    fresh = torch.nn.Linear(3, 2)
    start = Checkpointer(tmp_path).resume(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1))
    assert start == 7 and start.accumulated == 1
    assert all(p.grad is not None and torch.equal(p.grad, g) for p, g in zip(fresh.parameters(), grads))
    ck.save(training_state(model, optimizer), step=8)  # at a boundary: no gradients stored
    assert Checkpointer(tmp_path).resume(fresh).accumulated == 0 and "grads" not in ck.load(8)


def test_resuming_a_checkpoint_without_loader_state_says_so(tmp_path: Path) -> None:
    Checkpointer(tmp_path, mode="blocking").save(training_state(), step=3)
    loader = portarun.detect().dataloader(Noisy(), batch_size=4)
    with pytest.warns(PortarunWarning, match="holds no DataLoader state"):
        Checkpointer(tmp_path).resume(loader=loader)


@pytest.mark.slow
def test_killed_five_times_ends_bit_identical(tmp_path: Path) -> None:
    """bench_resume's training (2 workers, accumulation over 3, a scheduler, deterministic
    algorithms), SIGKILLed at 5 random micro-batches, mid-epoch and mid-accumulation included."""
    steps = 60
    plain, killed = tmp_path / "plain", tmp_path / "killed"
    plain.mkdir()
    killed.mkdir()
    assert bench_resume.run(plain, steps, None) == 0
    points = bench_resume.kill_points(steps, 5, seed=3)
    assert any(k % bench_resume.ACCUMULATE for k in points) and any(k % 9 for k in points)
    assert [bench_resume.run(killed, steps, k) for k in points] == [-signal.SIGKILL] * 5
    assert bench_resume.run(killed, steps, None) == 0
    result = bench_resume.compare(plain, killed)
    assert result["weights_identical"] and result["loss_log_identical"] and result["steps_each_once"], result


@pytest.mark.slow
def test_two_ranks_under_torchrun_killed_three_times_end_bit_identical(tmp_path: Path) -> None:
    """The same training as 2 gloo ranks under torchrun, each with its own shard
    (DistributedSampler), its own random streams and 2 workers, gradients all-reduced at each
    optimizer step; rank 0 kills the whole job 3 times. Both ranks' weights and loss logs match
    the uninterrupted job's, so each rank got its own random states and loader place back."""
    steps = 30
    plain, killed = tmp_path / "plain", tmp_path / "killed"
    plain.mkdir()
    killed.mkdir()
    assert bench_resume.run_distributed(plain, steps, None) == 0
    for k in (10, 17, 22):  # 4 batches an epoch per rank: 10 and 22 mid-epoch, 17 and 22 mid-accumulation
        assert bench_resume.run_distributed(killed, steps, k) != 0
    assert bench_resume.run_distributed(killed, steps, None) == 0
    result = bench_resume.compare(plain, killed)
    assert result["weights_identical"] and result["loss_log_identical"] and result["steps_each_once"], result
    assert (plain / "loss.rank1.log").read_text() == (killed / "loss.rank1.log").read_text()
    assert torch.equal(torch.load(plain / "weights.rank1.pt")["0.weight"],
                       torch.load(killed / "weights.rank1.pt")["0.weight"])
    with pytest.warns(PortarunWarning, match="saved by 2 ranks and is resumed by 1"):
        assert Checkpointer(killed / "ckpt").resume() == steps  # one process: rank 0's parts, said so


_DIVERGING = """
import json, os, sys
import torch.distributed as dist
from portarun.checkpoint import Checkpointer, training_state

dist.init_process_group("gloo")
rank = dist.get_rank()
# Only rank 0's clock rule fires (every step); rank 1 has no rule at all.
ck = Checkpointer(sys.argv[1], every_minutes=1e-9 if rank == 0 else None, mode="blocking", handle_signals=False)
saved = [ck.maybe_save(lambda: training_state(), step) for step in range(1, 4)]
print(json.dumps({"rank": rank, "saved": saved}))
ck.close()
dist.barrier()  # both ranks out of their last collective before gloo is torn down (else exit -6)
dist.destroy_process_group()
# The work is written. Gloo's threads can abort interpreter finalization (SIGABRT, "terminate called
# without an active exception"): a torch teardown race (pytorch/pytorch#179291). Leave without it.
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.slow
def test_ranks_agree_to_save_when_only_one_ranks_rule_fires(tmp_path: Path) -> None:
    """A time rule fires on rank 0 only: without agreement rank 0 would wait forever in
    training_state's gather for rank 1, which never saves (the timeout fails the test)."""
    script = tmp_path / "diverging.py"
    script.write_text(_DIVERGING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          "--master_addr=127.0.0.1", f"--master_port={free}", str(script), str(tmp_path / "ck")],
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    results = sorted((json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")),
                     key=lambda r: r["rank"])
    assert [r["saved"] for r in results] == [[True, True, True], [True, True, True]]
    assert len(Checkpointer(tmp_path / "ck").list()) == 3
