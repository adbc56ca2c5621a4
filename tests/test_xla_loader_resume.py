"""Exact resume through ``rt.wrap_loader`` on TPU: torch_xla's ``MpDeviceLoader`` reads batches
ahead on a thread, so the loader's own position is past what the loop has trained. torch_xla
cannot run here; its ``MpDeviceLoader`` is stood in by one that reads ahead on a real thread,
the most it can (the whole pass) before the loop receives the first batch."""
from __future__ import annotations

import queue
import sys
import threading
import types
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdata.stateful_dataloader")

from portarun.checkpoint import Checkpointer, training_state  # noqa: E402
from portarun.loader import loader_state  # noqa: E402
from portarun.testing import simulate  # noqa: E402


class ReadAheadMpDeviceLoader:
    """``MpDeviceLoader(loader, device)`` as torch_xla runs it: a thread iterates ``loader`` into
    a queue while the loop takes batches out. Here the thread reads the whole pass first."""

    def __init__(self, loader: Any, device: Any) -> None:
        self.loader = loader

    def __iter__(self) -> Any:
        batches: queue.Queue[Any] = queue.Queue()
        done = object()

        def read() -> None:
            for batch in self.loader:
                batches.put(batch)
            batches.put(done)

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()  # everything read ahead before the loop sees a batch
        while (batch := batches.get()) is not done:
            yield batch

    def __len__(self) -> int:
        return len(self.loader)


@pytest.fixture
def tpu(monkeypatch: pytest.MonkeyPatch) -> Any:
    pkg = types.ModuleType("torch_xla")
    pkg.__path__ = []  # type: ignore[attr-defined]
    pkg.device = lambda: torch.device("cpu")  # type: ignore[attr-defined]  # batches stay real CPU tensors
    distributed = types.ModuleType("torch_xla.distributed")
    distributed.__path__ = []  # type: ignore[attr-defined]
    parallel_loader = types.ModuleType("torch_xla.distributed.parallel_loader")
    parallel_loader.MpDeviceLoader = ReadAheadMpDeviceLoader  # type: ignore[attr-defined]
    for name, module in (("torch_xla", pkg), ("torch_xla.distributed", distributed),
                         ("torch_xla.distributed.parallel_loader", parallel_loader)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    with simulate(tpu="v5e-8") as rt:
        assert rt.device.kind == "xla"
        yield rt


def _loader(rt: Any) -> Any:
    return rt.dataloader(list(range(40)), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3),
                         num_workers=0)


def _values(batches: Any) -> list[list[int]]:
    return [batch.tolist() for batch in batches]


def test_the_saved_state_is_the_last_batch_the_loop_received(tpu: Any) -> None:
    reference = _values(_loader(tpu))
    loader = _loader(tpu)
    seen = []
    for batch in tpu.wrap_loader(loader):
        seen.append(batch.tolist())
        if len(seen) == 3:
            state = training_state(torch.nn.Linear(1, 1), loader=loader)
            break
    assert seen == reference[:3]
    resumed = _loader(tpu)
    resumed.load_state_dict(state["loader"])
    assert _values(resumed) == reference[3:], "a resume must continue after the third batch, not after the read-ahead"


def test_a_save_after_the_first_batch_and_after_the_whole_pass(tpu: Any) -> None:
    reference = _loader(tpu)
    first_pass, second_pass = _values(reference), _values(reference)
    loader = _loader(tpu)
    batches = iter(tpu.wrap_loader(loader))
    assert next(batches).tolist() == first_pass[0]
    after_one = loader_state(loader)
    rest = _values(batches)
    assert rest == first_pass[1:]
    after_all = loader_state(loader)

    resumed = _loader(tpu)
    resumed.load_state_dict(after_one)
    assert _values(resumed) == first_pass[1:]
    resumed = _loader(tpu)
    resumed.load_state_dict(after_all)
    # A state saved at the end of a pass resumes with an empty pass, then the next pass, as
    # torchdata's StatefulDataLoader does for a loader read without rt.wrap_loader.
    assert [_values(resumed), _values(resumed)] == [[], second_pass]


def test_the_wrapper_answers_for_its_loader(tpu: Any) -> None:
    """``training_state(loader=rt.wrap_loader(loader))`` works as well as with the loader."""
    loader = _loader(tpu)
    wrapped = tpu.wrap_loader(loader)
    batches = iter(wrapped)
    next(batches), next(batches)
    assert torch.equal(torch.tensor(_flat(wrapped.state_dict())), torch.tensor(_flat(loader_state(loader))))
    other = _loader(tpu)
    tpu.wrap_loader(other).load_state_dict(wrapped.state_dict())  # type: ignore[attr-defined]
    assert _values(other) == _values(_loader(tpu))[2:]


def _flat(state: Any) -> list[float]:
    """Every number in a nested state, in order, to compare states holding tensors."""
    if isinstance(state, dict):
        return [x for key in sorted(state, key=str) for x in _flat(state[key])]
    if isinstance(state, (list, tuple)):
        return [x for item in state for x in _flat(item)]
    if isinstance(state, torch.Tensor):
        return [float(x) for x in state.flatten().tolist()]
    return [float(state)] if isinstance(state, (int, float)) else []


def test_resume_replaces_what_an_earlier_pass_recorded(tpu: Any, tmp_path: Any) -> None:
    """A loader read through the wrapper, then given a checkpoint's place by resume(): the next
    save holds the resumed place, not the batch the earlier pass had reached."""
    reference = _values(_loader(tpu))
    saved = _loader(tpu)
    batches = iter(tpu.wrap_loader(saved))
    for _ in range(3):
        next(batches)
    ck = Checkpointer(tmp_path, mode="blocking", handle_signals=False)
    model = torch.nn.Linear(1, 1)
    ck.save(training_state(model, loader=saved), step=3)
    loader = _loader(tpu)
    next(iter(tpu.wrap_loader(loader)))  # one batch of an earlier pass
    assert ck.resume(model, loader=loader) == 3
    again = _loader(tpu)
    again.load_state_dict(loader_state(loader))
    assert _values(again) == reference[3:]
