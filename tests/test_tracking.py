"""Tracker continuity across a resume, for real: W&B in offline mode (two sessions, two
processes, one run id) and TensorBoard event files read back with TensorBoard's own reader."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer, training_state  # noqa: E402
from portarun.integrations import tracking  # noqa: E402


@pytest.fixture(autouse=True)
def _no_remembered_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "_IDS", {})


def test_a_run_id_goes_into_the_checkpoints_and_comes_back(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking")
    fresh = ck.resume()
    first = tracking.tracker_run_id("mine", fresh)
    assert first == tracking.tracker_run_id("mine") and len(first) == 8
    ck.save(training_state(), step=4)
    tracking._IDS.clear()  # a new process
    start = Checkpointer(tmp_path).resume()
    assert start.extra["trackers"] == {"mine": first}
    assert tracking.tracker_run_id("mine", start) == first
    assert tracking.tracker_run_id("other", start) != first


def _scalars(log_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars("loss")]


@pytest.mark.parametrize("purge", [True, False])
def test_tensorboard_continues_without_duplicated_steps(tmp_path: Path, purge: bool) -> None:
    """Session 1 logs steps 1-10 and dies after its checkpoint at 6; session 2 resumes at 6 and
    logs 7-12. Without the purge (the control) steps 7-10 appear twice."""
    pytest.importorskip("tensorboard")
    ck = Checkpointer(tmp_path / "ck", mode="blocking")
    logs = tmp_path / "tb"
    writer = tracking.tensorboard_writer(str(logs), ck.resume())
    for step in range(1, 11):
        writer.add_scalar("loss", float(step), step)
        if step == 6:
            ck.save(training_state(), step=6)
    writer.close()
    start = Checkpointer(tmp_path / "ck").resume()
    writer = tracking.tensorboard_writer(str(logs), start if purge else None)
    for step in range(start + 1, 13):
        writer.add_scalar("loss", step + 100.0, step)
    writer.close()
    scalars = _scalars(logs)
    steps = [s for s, _ in scalars]
    if purge:
        assert steps == list(range(1, 13))
        assert dict(scalars) == {**{s: float(s) for s in range(1, 7)}, **{s: s + 100.0 for s in range(7, 13)}}
    else:
        assert sorted(steps) != list(range(1, 13))


_SESSION = """
import json, sys
from pathlib import Path
from portarun.checkpoint import Checkpointer, training_state
import portarun.integrations.wandb as pw

ck = Checkpointer(sys.argv[1], mode="blocking")
start = ck.resume()
run = pw.init(start, project="exact-resume-test", dir=sys.argv[2])
for step in range(int(start) + 1, int(start) + 4):
    run.log({"loss": 1.0 / step}, step=step)
ck.save(training_state(), step=int(start) + 3)
print(json.dumps({"id": run.id, "start": int(start), "offline": run.settings._offline}))
run.finish()
"""


def _session(tmp_path: Path) -> dict[str, Any]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"), "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
           "WANDB_DATA_DIR": str(tmp_path / "wandb-data")}
    out = subprocess.run([sys.executable, "-c", _SESSION, str(tmp_path / "ck"), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_wandb_offline_resumed_session_logs_into_the_same_run(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    first, second = _session(tmp_path), _session(tmp_path)
    assert first["offline"] and second["offline"]
    assert (first["start"], second["start"]) == (0, 3)
    assert second["id"] == first["id"]
    runs = sorted(p.name for p in (tmp_path / "wandb").iterdir() if p.name.startswith("offline-run-"))
    assert len(runs) == 2 and all(name.endswith(f"-{first['id']}") for name in runs)
    third_ck = tmp_path / "elsewhere"
    os.rename(tmp_path / "ck", third_ck)  # no checkpoint: a fresh start is a new run
    assert _session(tmp_path)["id"] != first["id"]
