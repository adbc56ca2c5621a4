"""SIGTERM/SIGUSR1 during training: one final checkpoint, then the signal's default action;
the next run resumes from it. Real subprocesses, real signals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer  # noqa: E402

SCRIPT = Path(__file__).parent / "scripts" / "checkpoint_train.py"


def _start(root: Path, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PORTARUN_CHECKPOINTS_DIR": str(root), "PORTARUN_HOST": "local", "PORTARUN_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _read_until(proc: subprocess.Popen[str], line: str) -> list[str]:
    seen = []
    assert proc.stdout is not None
    for text in proc.stdout:
        seen.append(text.strip())
        if text.strip() == line:
            return seen
    raise AssertionError(f"{line!r} never printed; got {seen}; stderr: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_saves_final_checkpoint_then_resume(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "ck"
    root.mkdir()
    proc = _start(root, 100_000)
    _read_until(proc, "step 5")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -sig, err  # the default action ran after the save
    last = [int(line.split()[1]) for line in out.split() and out.strip().splitlines() if line.startswith("step")]
    latest = Checkpointer(root).latest()
    assert latest is not None and latest.step == max(last, default=5)
    if sig == signal.SIGTERM:  # the next session resumes where the signal struck
        again = _start(root, latest.step + 3)
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        lines = out.strip().splitlines()
        assert lines[0] == f"start {latest.step}" and lines[-1] == "done"
        assert lines[1:-1] == [f"step {s}" for s in range(latest.step + 1, latest.step + 4)]


@pytest.mark.slow
def test_stuck_step_ends_after_grace_with_pending_save_finished(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    root.mkdir()
    proc = _start(root, 100_000, 2, 7, 1.0)  # saves every 2 steps, step 7 hangs, 1 s grace
    _read_until(proc, "step 6")
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert time.monotonic() - started < 30  # the grace period, not the stuck step, decided
    assert Checkpointer(root).latest().step == 6
