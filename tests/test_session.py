"""The session clock: local runs start it with the process, hosted sessions with their container."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from portarun.probe import _proc_start
from portarun.testing import simulate

_REPORT = ("import json, portarun\nrt = portarun.detect()\n"
           "print(json.dumps([rt.session.started_at.timestamp(), rt.session.time_left().total_seconds(), "
           "rt.session.start_source]))\n")


def test_a_local_two_minute_limit_starts_with_the_script(tmp_path) -> None:
    """A real process on this machine, whose PID 1 started long before: the 2 minutes are all left."""
    script = tmp_path / "train.py"
    script.write_text(_REPORT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    launched = time.time()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**env, "PORTARUN_HOST": "local", "PORTARUN_SESSION_LIMIT": "2m"})
    assert proc.returncode == 0, proc.stderr
    started, left, source = json.loads(proc.stdout)
    assert launched - 2 <= started <= time.time()
    assert 100 < left <= 120
    assert source == "this process's start"


def _plant_proc(root, *, btime: int, ticks: str) -> None:
    (root / "proc/1").mkdir(parents=True)
    (root / "proc/1/stat").write_text(f"1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {ticks} 1 1\n")
    (root / "proc/stat").write_text(f"cpu  1 2 3\nbtime {btime}\nprocesses 9\n")


def test_hosted_sessions_start_with_their_container(tmp_path) -> None:
    container_start = int(time.time()) - 3600
    _plant_proc(tmp_path, btime=container_start - 10, ticks=str(10 * os.sysconf("SC_CLK_TCK")))
    with simulate("kaggle", root=tmp_path) as rt:
        assert rt.session.started_at.timestamp() == pytest.approx(container_start)
        assert rt.session.start_source == "the host container's start (PID 1)"
        assert rt.session.time_left() <= timedelta(hours=11)
    with simulate("local", root=tmp_path) as rt:  # same PID 1, but a laptop's PID 1 is its boot
        assert rt.session.started_at.timestamp() == pytest.approx(_proc_start(Path("/"), "self"))
        assert rt.session.start_source == "this process's start"


@pytest.mark.parametrize("ticks", ["99999999999999999999999", "-5", "nan", "x"])
def test_a_malformed_proc_never_breaks_detection(tmp_path, ticks: str) -> None:
    _plant_proc(tmp_path, btime=int(time.time()), ticks=ticks)
    with simulate("kaggle", root=tmp_path) as rt:
        assert abs(rt.session.started_at.timestamp() - time.time()) < 24 * 3600
        assert rt.session.time_left() is not None
