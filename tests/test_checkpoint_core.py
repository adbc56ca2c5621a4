"""Checkpointer basics on real files: save/list/load/resume, rotation, corruption fallback,
save policies, non-main ranks, the report section and rt.checkpoints."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer, training_state  # noqa: E402
from portarun.checkpoint.manifest import MANIFEST, STATE_FILE  # noqa: E402
from portarun.checkpoint.policy import SavePolicy  # noqa: E402
from portarun.errors import CheckpointError, CorruptCheckpointError, PortarunWarning  # noqa: E402
from portarun.testing import simulate  # noqa: E402

MODES = ["fork", "thread", "blocking"]


def _state(step: int) -> dict[str, object]:
    return {"w": torch.full((1000,), float(step)), "nested": {"b": torch.arange(step + 1), "lr": 0.1 * step},
            "names": ["a", "b"], "step": step}


@pytest.mark.parametrize("mode", MODES)
def test_save_list_load_roundtrip(tmp_path: Path, mode: str) -> None:
    ck = Checkpointer(tmp_path / "ck", mode=mode, keep_last=10)
    for step in (5, 10, 15):
        assert ck.save(_state(step), step=step) == f"step-{step:09d}"
    ck.wait()
    assert [i.step for i in ck.list()] == [5, 10, 15]
    latest = ck.latest()
    assert latest is not None and latest.step == 15 and latest.size > 4000
    state = ck.load()
    assert state["step"] == 15 and torch.equal(state["w"], torch.full((1000,), 15.0))
    assert state["nested"]["lr"] == pytest.approx(1.5) and state["names"] == ["a", "b"]
    assert ck.load(step=5)["step"] == 5
    ck.close()  # releases the writer lease (its file sits in the folder while this checkpointer may save)
    assert sorted(os.listdir(tmp_path / "ck")) == ["step-000000005", "step-000000010", "step-000000015"]
    manifest = json.loads((tmp_path / "ck" / "step-000000015" / MANIFEST).read_text())
    assert manifest["files"][STATE_FILE]["size"] == (tmp_path / "ck" / "step-000000015" / STATE_FILE).stat().st_size


def test_async_save_snapshots_state_at_call_time(tmp_path: Path) -> None:
    for mode in ("fork", "thread"):
        ck = Checkpointer(tmp_path / mode, mode=mode)
        state = {"w": torch.zeros(2_000_000)}
        ck.save(state, step=1)
        state["w"].add_(7.0)  # training goes on while the save runs
        ck.wait()
        assert torch.count_nonzero(ck.load()["w"]) == 0, mode


def test_default_step_continues_after_latest(tmp_path: Path) -> None:
    Checkpointer(tmp_path, mode="blocking").save(_state(41), step=41)
    ck = Checkpointer(tmp_path, mode="blocking")
    assert ck.save(_state(0)) == "step-000000042"
    assert ck.save(_state(0)) == "step-000000043"
    assert ck.save(_state(0), step=43) == "step-000000043.1"  # same step again: a new folder
    assert [i.name for i in ck.list()][-2:] == ["step-000000043", "step-000000043.1"]


def test_rotation_keeps_last_and_best(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, keep_last=2, keep_best=1, best_metric="loss", mode="thread")
    losses = {1: 0.9, 2: 0.2, 3: 0.5, 4: 0.7, 5: 0.6}
    for step, loss in losses.items():
        ck.save(_state(step), step=step, metrics={"loss": loss})
    ck.wait()
    assert [i.step for i in ck.list()] == [2, 4, 5]
    assert ck.list()[0].metrics == {"loss": 0.2}


def test_incomplete_and_corrupt_checkpoints(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking", keep_last=5)
    for step in (1, 2, 3):
        ck.save(_state(step), step=step)
    # a torn save: data without manifest is not a checkpoint
    torn = tmp_path / "step-000000004"
    torn.mkdir()
    (torn / STATE_FILE).write_bytes(b"partial")
    assert ck.latest().step == 3
    # flip one byte of the newest: same size, bad CRC -> fall back with a warning
    data = bytearray((tmp_path / "step-000000003" / STATE_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "step-000000003" / STATE_FILE).write_bytes(bytes(data))
    with pytest.warns(PortarunWarning, match="step-000000003.*CRC-32"):
        assert ck.load()["step"] == 2
    with pytest.raises(CorruptCheckpointError, match="CRC-32"):
        ck.load(step=3)
    # truncate step 2: size check catches it before torch sees it; latest() skips it too
    (tmp_path / "step-000000002" / STATE_FILE).write_bytes(b"x")
    assert ck.latest().step == 3  # sizes of 3 are fine; only its content is bad
    with pytest.warns(PortarunWarning, match="torn write"):
        assert ck.load()["step"] == 1
    # the next save removes the torn folder
    ck.save(_state(5), step=5)
    assert not torn.exists()
    with pytest.raises(CheckpointError, match="no checkpoint of step 9"):
        ck.load(step=9)


def test_load_errors_are_clear(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, mode="blocking")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        ck.load()
    ck.save({"obj": Path("/x")}, step=1, weights_only=False)  # knowingly not weights_only-loadable
    with pytest.raises(CheckpointError, match="weights_only=False"):
        ck.load()
    assert ck.load(weights_only=False)["obj"] == Path("/x")
    with pytest.raises(CheckpointError, match="keep_last"):
        Checkpointer(tmp_path, keep_last=0)
    with pytest.raises(CheckpointError, match="best_metric"):
        Checkpointer(tmp_path, keep_best=2)


def test_resume_restores_model_optimizer_scheduler_and_rng(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    ck = Checkpointer(tmp_path, mode="fork")
    assert ck.resume(model, opt, sched) == 0  # nothing there: start fresh
    for step in range(3):
        opt.zero_grad()
        model(torch.randn(4, 8)).sum().backward()
        opt.step()
        sched.step()
    ck.save(training_state(model, opt, sched, extra={"epoch": 1}), step=3)
    ck.wait()
    expected = (torch.rand(3), np.random.rand(), random.random())
    model2 = torch.nn.Linear(8, 2)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.01)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2)
    torch.manual_seed(123), np.random.seed(5), random.seed(9)
    assert ck.resume(model2, opt2, sched2) == 3
    assert torch.equal(model2.weight, model.weight)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert sched2.last_epoch == 3
    assert (torch.equal(torch.rand(3), expected[0]) and np.random.rand() == expected[1]
            and random.random() == expected[2])
    assert ck.load()["extra"] == {"epoch": 1}


def test_non_main_process_never_writes(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path / "ck", is_main=lambda: False)
    assert ck.save(_state(1), step=1) is None
    ck.wait()
    assert not (tmp_path / "ck").exists()


def test_save_policy_rules() -> None:
    now = [0.0]
    left: list[float | None] = [None]
    policy = SavePolicy(every_steps=10, every_minutes=1, before_deadline=timedelta(minutes=5),
                        time_left=lambda: left[0], clock=lambda: now[0])
    assert policy.reason(3) is None
    assert policy.reason(10) == "every_steps"
    now[0] = 61
    assert policy.reason(11) == "every_minutes"
    policy.saved()
    assert policy.reason(12) is None
    left[0] = 299
    assert policy.reason(13) == "before_deadline"
    assert policy.reason(14) is None  # fires once
    with pytest.raises(CheckpointError):
        SavePolicy(every_steps=0)


def test_maybe_save_before_session_deadline(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    started = datetime.now(timezone.utc) - timedelta(hours=1, minutes=59)
    with simulate("local", env={"PORTARUN_SESSION_LIMIT": "2h"}, started_at=started) as rt:
        ck = Checkpointer.from_runtime(rt, every_steps=100, before_deadline=120, handle_signals=False)
        assert ck.session is rt.session and rt.session.time_left() <= timedelta(minutes=1)
        calls = []
        assert ck.maybe_save(lambda: calls.append(1) or _state(1), 1)  # deadline save, waited for
        assert ck.latest().step == 1 and calls == [1]
        assert not ck.maybe_save(lambda: calls.append(2) or _state(2), 2)
        assert ck.maybe_save(lambda: _state(100), 100)
        ck.wait()
        assert [i.step for i in ck.list()] == [1, 100]


def test_rt_checkpoints_on_simulated_hosts(tmp_path: Path) -> None:
    with simulate("kaggle", root=tmp_path / "k") as rt:
        ck = rt.checkpoints
        assert ck is rt.checkpoints
        assert Path(ck.root) == Path(rt.paths.checkpoints) and ck.staging is None
        ck.save(_state(3), step=3)
        ck.wait()
        assert ck.load(map_location="cpu")["step"] == 3
        assert ck.session.limit == timedelta(hours=12)


def test_colab_drive_staging_promotion_and_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timezone

    started = datetime.now(timezone.utc) - timedelta(hours=11, minutes=59)
    with simulate("colab", modules=["google.colab"], root=tmp_path / "c", started_at=started) as rt:
        calls: list[object] = []

        class FakeDrive:  # stands in for google.colab.drive, which exists only on Colab
            @staticmethod
            def flush_and_unmount() -> None:
                calls.append("flush_and_unmount")

            @staticmethod
            def mount(mountpoint: str) -> None:
                calls.append(("mount", mountpoint))

        monkeypatch.setattr(sys.modules["google.colab"], "drive", FakeDrive, raising=False)
        ck = Checkpointer.from_runtime(rt, before_deadline=300, handle_signals=False)
        drive_root = rt.probe.path("/content/drive")
        assert Path(ck.root).is_relative_to(drive_root)
        assert ck.staging is not None and not Path(ck.staging.root).is_relative_to(drive_root)
        assert ck.maybe_save(lambda: _state(7), 7)  # the deadline save: promoted, then flushed
        assert calls == ["flush_and_unmount"]
        assert ck.latest().step == 7 and os.listdir(ck.staging.root) == []
        ck.save(_state(8), step=8)  # saving after a flush mounts Drive again first
        ck.close()
        assert calls == ["flush_and_unmount", ("mount", str(drive_root)), "flush_and_unmount"]
        assert [i.step for i in ck.list()] == [7, 8]

        def broken() -> None:
            raise TimeoutError("flush timed out")

        monkeypatch.setattr(FakeDrive, "flush_and_unmount", staticmethod(broken))
        ck.save(_state(9), step=9)
        with pytest.warns(PortarunWarning, match="could not flush Google Drive.*flush timed out"):
            ck.close()
        monkeypatch.undo()  # Drive works again: the flush still owed is done as the simulation ends


def test_report_lists_checkpoints_without_importing_torch(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    ck = Checkpointer(root, mode="blocking")
    ck.save(_state(12), step=12, metrics={"loss": 0.5})
    code = ("import json, sys, portarun; from portarun._cli.report import build; rt = portarun.detect();"
            "data = build(rt); print(json.dumps({'torch': 'torch' in sys.modules, 'ck': data['checkpoints']}))")
    env = {**os.environ, "PORTARUN_CHECKPOINTS_DIR": str(root), "PORTARUN_HOST": "local"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["torch"] is False
    assert data["ck"]["count"] == 1
    entry = data["ck"]["checkpoints"][0]
    assert entry["step"] == 12 and entry["size_bytes"] == ck.latest().size and entry["metrics"] == {"loss": 0.5}


def test_rt_checkpoints_saves_before_a_host_deadline_by_default():
    from datetime import datetime, timedelta, timezone

    from portarun.checkpoint.checkpointer import DEFAULT_DEADLINE_MARGIN

    started = datetime.now(timezone.utc) - timedelta(hours=12) + DEFAULT_DEADLINE_MARGIN / 2
    with simulate("kaggle", started_at=started) as rt:  # 12 h session, 7.5 minutes left
        ckpt = rt.checkpoints
        assert ckpt.maybe_save(lambda: {"w": 1}, step=5)
        ckpt.wait()
        assert [c.step for c in ckpt.list()] == [5]
    with simulate("local") as rt:  # no limit: no deadline rule
        assert not rt.checkpoints.maybe_save(lambda: {"w": 1}, step=5)
