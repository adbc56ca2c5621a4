"""The background writer forks only a process where forking is proven safe, else uses a thread.

Real processes: each case runs in a fresh interpreter in its own process group, killed as a
group when it outlives its timeout, so a deadlocked writer fails the test instead of hanging it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer  # noqa: E402
from portarun.checkpoint.writer import fork_safety  # noqa: E402
from portarun.errors import CheckpointError  # noqa: E402

BUSY = Path(__file__).parent / "scripts" / "checkpoint_busy_process.py"


def _run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run a Python child in its own process group; kill the group and fail past ``timeout``."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and any forked writer stuck with it
        proc.communicate()
        pytest.fail(f"{args[0]} still ran after {timeout} s: a save deadlocked")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.slow  # real subprocesses: run once, not in the host matrix
def test_many_saves_in_a_busy_process_never_deadlock_and_use_a_thread(tmp_path: Path) -> None:
    result = _run([str(BUSY), str(tmp_path), "25"], timeout=240)
    assert result["modes"] == ["thread"] * 25
    reasons = result["reasons"]
    assert isinstance(reasons, list)
    assert all("threads run in this process" in r for r in reasons), reasons[0]
    assert result["steps"] == [23, 24] and result["last"] == 24


@pytest.mark.slow  # real subprocesses: run once, not in the host matrix
def test_a_single_threaded_process_forks(tmp_path: Path) -> None:
    code = (
        "import json, os, sys, threading, time, torch\n"
        "from portarun.checkpoint import Checkpointer\n"
        "ck = Checkpointer(sys.argv[1], handle_signals=False)\n"
        "ck.save({'w': torch.zeros(1000)}, step=1); ck.wait()\n"
        "first = ck.writer.last\n"
        "stop = threading.Event(); t = threading.Thread(target=stop.wait); t.start()\n"
        "ck.save({'w': torch.ones(1000)}, step=2); ck.wait(); second = ck.writer.last\n"
        "stop.set(); t.join()\n"
        "deadline = time.monotonic() + 10\n"  # join returns a moment before the kernel thread exits
        "while len(os.listdir('/proc/self/task')) > 1 and time.monotonic() < deadline: time.sleep(0.001)\n"
        "ck.save({'w': torch.ones(1000)}, step=3); ck.wait(); third = ck.writer.last\n"
        "print(json.dumps({'first': first, 'second': second, 'third': third, 'repr': repr(ck),\n"
        "                  'w': ck.load(map_location='cpu')['w'].sum().item()}))\n"
    )
    # No BLAS or OpenMP pool: importing torch (numpy's OpenBLAS) would otherwise start a thread.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = _run(["-c", code, str(tmp_path / "ck")], timeout=120, env=env)
    assert result["first"] == ["fork", "auto: this process has one thread and no accelerator context"]
    second = result["second"]
    assert isinstance(second, list) and second[0] == "thread" and "2 threads run in this process" in second[1]
    assert result["third"] == result["first"]  # decided at each save: one thread again, so a fork
    assert "mode='auto' (last save: fork, auto: this process has one thread" in str(result["repr"])
    assert result["w"] == 1000.0


def test_this_test_process_is_not_proven_safe_to_fork(tmp_path: Path) -> None:
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        reason = fork_safety()
        assert reason is not None and "threads run in this process" in reason
        ck = Checkpointer(tmp_path, handle_signals=False)
        ck.save({"w": torch.ones(10)}, step=1)
        ck.wait()
        assert ck.writer.last is not None and ck.writer.last.mode == "thread"
        ck.save({"w": torch.ones(10)}, step=2, blocking=True)
        assert ck.writer.last.mode == "blocking"
    finally:
        stop.set()
        helper.join()


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="mode must be 'auto', 'fork', 'thread' or 'blocking'"):
        Checkpointer(tmp_path, mode="forkserver")  # type: ignore[arg-type]


def test_thread_snapshots_copy_every_kind_of_tensor_exactly() -> None:
    from portarun.checkpoint.writer import host_copy

    x = torch.randn(4, 5)
    state = {"plain": x, "transposed": x.t(), "slice": torch.arange(10)[2:7], "empty": torch.empty(0),
             "conj": torch.randn(3, dtype=torch.complex64).conj(), "bf16": torch.randn(3).to(torch.bfloat16),
             "param": torch.nn.Parameter(torch.ones(2)), "sparse": torch.eye(3).to_sparse(), "n": [torch.ones(2), 3]}
    first = host_copy(state)
    second_source = {**state, "plain": x + 1, "slice": torch.arange(10)[3:8]}
    second = host_copy(second_source, first)  # into the first snapshot's buffers where they fit
    assert second["plain"] is first["plain"]
    for snapshot, source in ((second, second_source),):
        for key in ("plain", "transposed", "slice", "empty", "bf16", "param"):
            assert torch.equal(snapshot[key], source[key]) and snapshot[key].dtype == source[key].dtype, key
            assert snapshot[key].numel() == 0 or snapshot[key].data_ptr() != source[key].data_ptr(), key
        assert torch.equal(snapshot["conj"].resolve_conj(), source["conj"].resolve_conj())
        assert torch.equal(snapshot["sparse"].to_dense(), torch.eye(3)) and snapshot["n"][1] == 3
    expected = x.t().clone()
    x.add_(5)  # the snapshot does not follow the live tensor
    assert torch.equal(second["transposed"], expected)
