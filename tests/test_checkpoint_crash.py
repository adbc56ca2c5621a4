"""A process saving in a loop, killed with SIGKILL at random moments: latest() always loads,
no checkpoint is ever corrupt, and at most the save in flight is lost.

Each round forks a child of this (torch-importing) process, so rounds cost milliseconds
instead of a fresh interpreter each; the child is its own process group, and the whole group
(the child and any forked writer) is killed, as when a VM disappears.
"""
from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer  # noqa: E402

ROUNDS = 50


def _save_forever(root: Path, acked: Path, mode: str) -> None:
    """Child: save steps after the latest one forever; after save(n) returns, save(n-1) is
    published (saves run one at a time), so record n-1 as acknowledged."""
    os.setsid()
    torch.set_num_threads(1)  # OpenMP's pool does not survive fork (the parent has used it)
    ck = Checkpointer(root, keep_last=2, mode=mode, handle_signals=False)  # type: ignore[arg-type]
    fd = os.open(acked, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    previous = None
    while True:
        step = (ck.latest().step + 1) if previous is None and ck.latest() else (previous or 0) + 1
        ck.save({"w": torch.full((300_000,), float(step)), "step": step}, step=step)
        if previous is not None:
            os.write(fd, f"{previous}\n".encode())
        previous = step


def _kill_round(root: Path, acked: Path, mode: str, delay: float) -> None:
    acked.write_text("")
    pid = os.fork()
    if pid == 0:
        try:
            _save_forever(root, acked, mode)
        finally:
            os._exit(0)
    time.sleep(delay)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_corrupts(tmp_path: Path) -> None:
    rng = random.Random(1234)
    root = tmp_path / "ck"
    acked = tmp_path / "acked"
    best_ever = -1
    for round_no in range(ROUNDS):
        mode = ("fork", "thread")[round_no % 2]
        _kill_round(root, acked, mode, rng.uniform(0.1, 0.45))
        time.sleep(0.05)  # let the kernel finish reaping the forked writer of the group
        ck = Checkpointer(root, mode="blocking", handle_signals=False)
        steps = [int(s) for s in acked.read_text().split()]
        latest = ck.latest()
        if latest is None:
            assert not steps and best_ever < 0, f"round {round_no}: acknowledged {steps} but nothing published"
            continue
        # PortarunWarning is an error here: a fallback to an older checkpoint would fail the test.
        state = ck.load(map_location="cpu")
        assert state["step"] == latest.step
        assert torch.equal(state["w"], torch.full((300_000,), float(latest.step)))
        assert latest.step >= max(steps, default=-1), f"round {round_no}: acknowledged step lost"
        assert latest.step >= best_ever, f"round {round_no}: went back from {best_ever} to {latest.step}"
        best_ever = latest.step
        for info in ck.list():  # every published checkpoint is intact, not only the newest
            assert ck.load(step=info.step, map_location="cpu")["step"] == info.step
    assert best_ever > ROUNDS // 2  # the rounds made progress
    ck = Checkpointer(root, mode="blocking", handle_signals=False)
    ck.save({"step": -1}, step=best_ever + 1)  # the next save cleans what the killed ones left
    assert not [p for p in os.listdir(root) if p.startswith(".tmp-")]
