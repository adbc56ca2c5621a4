"""The portable example (examples/train.py) and its notebook, run for real in subprocesses.

Each run gets its own persist, output and scratch folders through ``PORTARUN_*_DIR``, as a user
would point them, so nothing lands in the real user folders. The runs stopped at the deadline,
SIGKILLed or SIGTERMed, then resumed, must end with the uninterrupted run's weights, bit for bit.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "train.py"
NOTEBOOK = ROOT / "examples" / "train.ipynb"


def _env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    for role in ("persist", "output", "scratch", "cache"):
        (base / role).mkdir(parents=True, exist_ok=True)
        env[f"PORTARUN_{role.upper()}_DIR"] = str(base / role)
    env.update(PORTARUN_PROGRESS="0", PORTARUN_HOST="local", **extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    done = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def _submission(base: Path) -> list[list[str]]:
    with open(base / "output" / "submission.csv", newline="") as f:
        return list(csv.reader(f))


def _weights(base: Path, step: int) -> dict[str, Any]:
    """The model's parameters in the example's checkpoint of ``step``."""
    from portarun.checkpoint import Checkpointer

    return dict(Checkpointer(base / "persist" / "checkpoints").load(step, map_location="cpu")["model"])


def _assert_same_weights(a: dict[str, Any], b: dict[str, Any]) -> None:
    import torch

    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"weights differ from the uninterrupted run's: {differ}"


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], env={**env, "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str], died_of: signal.Signals) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == -died_of, f"exit {proc.returncode}, expected death by {died_of.name}:\n{out}"
    return out


@pytest.mark.slow
def test_second_run_resumes_and_skips_finished_work(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = _run([str(SCRIPT), "--epochs", "1"], env)
    assert "starting fresh" in first
    assert "epoch 1/1" in first and "(128 steps" in first
    assert (tmp_path / "persist" / "checkpoints" / "step-000000128" / "manifest.json").is_file()
    rows = _submission(tmp_path)
    assert rows[0] == ["id", "label"] and len(rows) == 1001

    second = _run([str(SCRIPT), "--epochs", "1"], env)
    assert "resumed from step 128 (end of epoch 1)" in second
    assert "training already finished" in second
    assert "epoch 1/1" not in second  # nothing was trained again
    assert _submission(tmp_path) == rows  # the restored model predicts what the trained one did

    third = _run([str(SCRIPT), "--epochs", "2"], env)  # more epochs: only the new one is trained
    assert "resumed from step 128" in third and "epoch 2/2" in third and "epoch 1/2" not in third
    assert (tmp_path / "persist" / "checkpoints" / "step-000000256").is_dir()


@pytest.mark.slow
def test_deadline_save_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    # A 1-second session limit counted from the machine's start: the deadline has passed, so the
    # example saves after its first step and stops, as it would five minutes before a real one.
    interrupted = tmp_path / "interrupted"
    out = _run([str(SCRIPT), "--epochs", "1"], _env(interrupted, PORTARUN_SESSION_LIMIT="1s"))
    assert "saved step 1; run again" in out
    assert (interrupted / "output" / "submission.csv").is_file()

    resumed = _run([str(SCRIPT), "--epochs", "1"], _env(interrupted))
    assert "resumed from step 1 (epoch 1, 1/128 steps done)" in resumed
    assert "(127 steps" in resumed

    straight = tmp_path / "straight"
    _run([str(SCRIPT), "--epochs", "1"], _env(straight))
    _assert_same_weights(_weights(interrupted, 128), _weights(straight, 128))
    assert _submission(interrupted) == _submission(straight)


@pytest.mark.slow
def test_sigkill_then_sigterm_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """Three epochs: killed (SIGKILL) in epoch 2 once epoch 1's checkpoint is written, resumed and
    stopped by SIGTERM in epoch 3 (the example saves where it is and dies of the signal), resumed
    again to the end. Each resume goes on with the loader where it was saved, never re-reading
    the batches already trained."""
    straight = tmp_path / "straight"
    _run([str(SCRIPT), "--epochs", "3"], _env(straight))

    broken = tmp_path / "broken"
    env = _env(broken)
    first = _start([str(SCRIPT), "--epochs", "3"], env)
    epoch_one = broken / "persist" / "checkpoints" / "step-000000128" / "manifest.json"
    deadline = time.monotonic() + 240
    while not epoch_one.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert epoch_one.is_file(), "epoch 1's checkpoint was not written"
    first.send_signal(signal.SIGKILL)
    out = _finish(first, signal.SIGKILL)  # killed while still training, not after it
    assert "epoch 2/3" not in out

    second = _start([str(SCRIPT), "--epochs", "3"], env)
    lines = []
    assert second.stdout is not None
    for line in second.stdout:
        lines.append(line)
        if line.startswith("epoch 2/3"):
            second.send_signal(signal.SIGTERM)  # epoch 3 has begun: its next step saves and the run ends
            break
    out = "".join(lines) + _finish(second, signal.SIGTERM)
    assert "resumed from step 128 (end of epoch 1)" in out
    assert "epoch 1/3" not in out and "epoch 2/3: " in out and "(128 steps" in out

    third = _run([str(SCRIPT), "--epochs", "3"], env)
    resumed = re.search(r"resumed from step (\d+) \(epoch 3, (\d+)/128 steps done\)", third)
    assert resumed, third  # mid-epoch: SIGTERM saved at the step it reached
    assert "epoch 3/3: " in third and f"({384 - int(resumed[1])} steps" in third
    _assert_same_weights(_weights(broken, 384), _weights(straight, 384))
    assert _submission(broken) == _submission(straight)


def test_notebook_is_valid_nbformat_4() -> None:
    data = json.loads(NOTEBOOK.read_text())
    assert data["nbformat"] == 4
    assert {"cells", "metadata", "nbformat", "nbformat_minor"} <= data.keys()
    for cell in data["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        assert {"cell_type", "metadata", "source"} <= cell.keys()
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None  # shipped without outputs
    try:
        import nbformat
    except ImportError:
        return
    nbformat.validate(nbformat.reads(NOTEBOOK.read_text(), as_version=4))


def _code(cell: dict[str, object]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def test_notebook_has_install_detect_drive_and_training_cells() -> None:
    code = [_code(c) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    assert code[0].lstrip().startswith("#") and "%pip install" in code[0] and "portarun[torch]" not in code[0]
    assert any("portarun.detect()" in c for c in code)
    assert any("rt.mount_drive()" in c for c in code)
    assert any("ckpt.resume(" in c and "ckpt.maybe_save(" in c for c in code)
    assert any("rt.submit(" in c for c in code)


@pytest.mark.slow
def test_notebook_code_runs_twice_and_resumes(tmp_path: Path) -> None:
    cells = [_code(c) for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    # Run the cells as a script, without the install magic (portarun is installed here).
    script = "\n\n".join("\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))
                         for cell in cells)
    (tmp_path / "notebook.py").write_text(script.replace("EPOCHS, BATCH_SIZE = 3, 64", "EPOCHS, BATCH_SIZE = 1, 64"))
    straight = tmp_path / "straight"
    first = _run([str(tmp_path / "notebook.py")], _env(straight), cwd=tmp_path)
    assert "starting fresh" in first and "epoch 1/1" in first and "submission:" in first
    second = _run([str(tmp_path / "notebook.py")], _env(straight), cwd=tmp_path)
    assert "resumed from step 128" in second and "epoch 1/1" not in second

    # Stopped at the deadline after one step, resumed mid-epoch: the uninterrupted run's weights.
    stopped = tmp_path / "stopped"
    out = _run([str(tmp_path / "notebook.py")], _env(stopped, PORTARUN_SESSION_LIMIT="1s"), cwd=tmp_path)
    assert "saved step 1; run again" in out
    resumed = _run([str(tmp_path / "notebook.py")], _env(stopped), cwd=tmp_path)
    assert "resumed from step 1:" in resumed and "(127 steps" in resumed
    _assert_same_weights(_weights(stopped, 128), _weights(straight, 128))
    assert _submission(stopped) == _submission(straight)


@pytest.mark.slow
def test_without_torchdata_a_resumed_epoch_starts_over_and_says_so(tmp_path: Path) -> None:
    """What CI's fresh install (``portarun[torch]``, no torchdata) runs: a plain DataLoader, whose
    place is not saved, so the resumed epoch draws its batches anew but still ends on time."""
    shadow = tmp_path / "shadow" / "torchdata"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('torchdata is not installed here')\n")
    env = _env(tmp_path, PYTHONPATH=str(tmp_path / "shadow"))
    out = _run([str(SCRIPT), "--epochs", "2"], {**env, "PORTARUN_SESSION_LIMIT": "1s"})
    assert "resume: a resumed epoch starts its batches over; pip install 'portarun[resume]'" in out
    assert "saved step 1; run again" in out
    out = _run([str(SCRIPT), "--epochs", "2"], env)
    assert "resumed from step 1 (epoch 1, 1/128 steps done)" in out
    assert "epoch 1/2: " in out and "(127 steps" in out and "epoch 2/2: " in out and "(128 steps" in out
    assert (tmp_path / "persist" / "checkpoints" / "step-000000256").is_dir()
