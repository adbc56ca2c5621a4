"""SkyPilot: detected from the variables SkyPilot sets for a task (its documented examples and a
managed job's log), never from hand-exported look-alikes; a managed job's run folder named
after SKYPILOT_TASK_ID, inside its mounted bucket; and a real SIGTERM preemption that saves and
a recovery that resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime
from portarun.testing import simulate
from portarun_skypilot.cluster import SkyPilotProvider

# A task's run environment as SkyPilot's environment-variable reference shows it
# (skypilot-org/skypilot@0a6e887621103c9424dea951fd86c9f7c5586bb9:docs/source/running-jobs/environment-variables.rst).
CLUSTER_TASK = {"SKYPILOT_NODE_RANK": "0", "SKYPILOT_NODE_IPS": "1.2.3.4", "SKYPILOT_NUM_GPUS_PER_NODE": "0",
                "SKYPILOT_TASK_ID": "sky-2023-07-06-21-18-31-563597_myclus_1"}
MANAGED = {**CLUSTER_TASK, "SKYPILOT_TASK_ID": "sky-managed-2023-07-06-21-18-31-563597_my-job-name_1-0"}
# SKYPILOT_CLUSTER_INFO's fields as pull request 3426 (which added it) builds them.
INFO = json.dumps({"cluster_name": "train-a100", "cloud": "GCP", "region": "us-central1", "zone": "us-central1-a",
                   "spot": 1})


def confidence(rt: Runtime) -> float:
    return next(v.confidence for v in rt.verdicts if v.provider == "skypilot")


def test_cluster_task_is_detected_and_keeps_the_script_project() -> None:
    with simulate(env=CLUSTER_TASK, project="train") as rt:
        assert rt.host.name == "skypilot" and confidence(rt) == pytest.approx(0.75)
        assert isinstance(rt.provider, SkyPilotProvider) and not rt.provider.managed
        assert rt.paths.persist == rt.probe.home / "portarun" / "train"
        assert rt.paths.input == rt.probe.home / "sky_workdir"
    with simulate(env={**CLUSTER_TASK, "SKYPILOT_CLUSTER_INFO": INFO}) as rt:
        assert confidence(rt) > 0.95  # capped below 1


@pytest.mark.parametrize("env", [
    {"SKYPILOT_TASK_ID": "my-run-1"},                                               # exported by hand
    {"SKYPILOT_NUM_NODES": "1", "SKYPILOT_NODE_RANK": "0", "SKYPILOT_NUM_GPUS_PER_NODE": "8",
     "SKYPILOT_NODE_IPS": "10.66.0.11"},                                              # a SLURM wrapper's shims
    {"SKYPILOT_API_SERVER_ENDPOINT": "http://127.0.0.1:46580", "SKYPILOT_DEBUG": "1"},  # the `sky` client
    {"SKYPILOT_CLUSTER_INFO": "{not json"},
])
def test_look_alikes_are_not_skypilot(env: dict[str, str]) -> None:
    with simulate(env=env) as rt:
        assert rt.host.name == "local"


def test_managed_job_without_a_bucket_warns_and_uses_its_task_id() -> None:
    with pytest.warns(PortarunWarning, match="recovery after a preemption does not keep"):
        with simulate(env=MANAGED, project="train") as rt:
            assert rt.provider.managed  # type: ignore[attr-defined]
            run = Path(rt.paths.persist)
    assert run.name.startswith("sky-managed-2023-07-06-21-18-31-563597_my")
    assert run.parent == rt.probe.home / "portarun"


def test_managed_job_in_its_bucket_resumes_its_own_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    bucket = root / "checkpoints-bucket"  # the task's file_mounts: /checkpoints-bucket, mode: MOUNT
    bucket.mkdir(parents=True)
    env = {**MANAGED, "PORTARUN_PERSIST_DIR": "/checkpoints-bucket"}
    with simulate(env=env, root=root) as rt:
        first = Path(rt.paths.checkpoints)
    with simulate(env={**env, "SKYPILOT_NODE_IPS": "5.6.7.8"}, root=root) as rt:  # a recovery: new VM, same id
        assert rt.paths.checkpoints == first
    other_job = {**env, "SKYPILOT_TASK_ID": "sky-managed-2023-07-07-08-00-00-000001_my-job-name_2-0"}
    with simulate(env=other_job, root=root) as rt:
        other = Path(rt.paths.checkpoints)  # another job of the same script
    assert first.parent.parent == bucket == other.parent.parent and first != other
    assert first.name == "checkpoints"
    with simulate(env={**env, "PORTARUN_PROJECT": "mine"}, root=root) as rt:  # an explicit project wins
        assert rt.paths.checkpoints == bucket / "checkpoints"


TRAIN = '''
import os, sys, time
import torch
import portarun
from portarun.checkpoint import training_state

rt = portarun.detect()
torch.manual_seed(0)
model = torch.nn.Linear(2, 1)
ckpt = rt.checkpoints
start = ckpt.resume(model)
print("start", int(start), rt.host.name, rt.paths.checkpoints, flush=True)
for step in range(int(start), 30):
    with torch.no_grad():
        model.weight += 1.0
    ckpt.maybe_save(lambda: training_state(model), step + 1)
    if step + 1 == 3 and int(start) == 0:
        print("ready", flush=True)
    time.sleep(0.1)
print("done", model.weight[0, 0].item(), flush=True)
'''


@pytest.mark.slow
def test_preemption_sigterm_saves_and_the_recovery_resumes(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="checkpoints are written with torch (installed in tox's plugins env)")
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "SKYPILOT_"))}
    env.update(MANAGED, PORTARUN_PERSIST_DIR=str(bucket), PORTARUN_DEVICE="cpu")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("ready") or not line:
            break
    assert lines[-1].startswith("ready"), "".join(lines)
    proc.send_signal(signal.SIGTERM)  # what the VM's shutdown sends the task on a spot preemption
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == -signal.SIGTERM, out  # saved, then the signal took its course
    assert lines[0].startswith("start 0 skypilot") and str(bucket) in lines[0]
    recovered = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=180)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    start = int(recovered.stdout.split()[1])
    assert start >= 3  # resumed from the save made on SIGTERM, not from scratch
    # another job of the same script starts from scratch in its own folder, and ends the same
    fresh = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                           env={**env, "SKYPILOT_TASK_ID": "sky-managed-2023-07-07-08-00-00-000001_my-job-name_2-0"})
    assert fresh.returncode == 0 and fresh.stdout.startswith("start 0 "), fresh.stdout + fresh.stderr
    assert recovered.stdout.split()[-1] == fresh.stdout.split()[-1]
