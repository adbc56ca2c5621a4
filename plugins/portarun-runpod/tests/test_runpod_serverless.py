"""RunPod serverless workers: detected from the job webhooks RunPod gives every worker (or the
platform's data-centre id with the worker's volume), with the network volume at /runpod-volume
as persistent storage, and never fooled by endpoint clients or worker images run locally."""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime
from portarun.testing import simulate
from portarun_runpod.serverless import RunPodServerlessProvider

# runpod-python's own WorkerAdapter test environment (tests of runpod.serverless.core).
WORKER_ENV = {
    "RUNPOD_POD_ID": "test-pod-123", "RUNPOD_GPU_TYPE_ID": "RTX4090",
    "RUNPOD_WEBHOOK_GET_JOB": "https://api.runpod.ai/fetch/$RUNPOD_POD_ID?gpu=$RUNPOD_GPU_TYPE_ID",
    "RUNPOD_WEBHOOK_POST_OUTPUT": "https://api.runpod.ai/result/$RUNPOD_POD_ID/$ID?gpu=$RUNPOD_GPU_TYPE_ID",
    "RUNPOD_WEBHOOK_PING": "https://api.runpod.ai/ping/$RUNPOD_POD_ID?gpu=$RUNPOD_GPU_TYPE_ID",
    "RUNPOD_ENDPOINT_ID": "ep", "RUNPOD_AI_API_KEY": "worker-key",
}


def confidence(rt: Runtime, provider: str = "runpod-serverless") -> float:
    return next(v.confidence for v in rt.verdicts if v.provider == provider)


def test_worker_with_a_network_volume_persists_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate("runpod-serverless", root=root, project="sdxl") as rt:
        assert rt.host.name == "runpod-serverless"
        assert (rt.host.plugin, rt.host.version) == ("runpod", version("portarun-runpod"))
        assert isinstance(rt.provider, RunPodServerlessProvider)
        volume = root / "runpod-volume"
        assert rt.paths.persist == volume / "portarun/sdxl"
        assert rt.paths.checkpoints == volume / "portarun/sdxl/checkpoints"
        assert rt.paths.cache == volume / ".cache"
        assert rt.paths.scratch == root / "tmp/portarun-scratch"
        assert confidence(rt, "runpod") < 0.5  # the worker's RUNPOD_POD_ID does not make it a pod
        assert any("RUNPOD_AI_API_KEY" in line and "not evidence" in line for line in rt.host.evidence)


def test_worker_without_a_volume_warns_that_persist_dies_with_the_worker(tmp_path: Path) -> None:
    with pytest.warns(PortarunWarning, match="no network volume at /runpod-volume"):
        with simulate(env=WORKER_ENV, root=tmp_path / "root", project="p") as rt:
            assert rt.host.name == "runpod-serverless"
            assert rt.paths.persist == tmp_path / "root/tmp/portarun/p"


def test_data_centre_with_the_worker_volume_is_a_worker(tmp_path: Path) -> None:
    """What a live multi-region worker reported: its data centre, its volume, /runpod-volume."""
    env = {"RUNPOD_DC_ID": "EU-CZ-1", "RUNPOD_VOLUME_ID": "redacted"}
    with simulate(env=env, paths=["/runpod-volume/ha-data"], root=tmp_path / "root") as rt:
        assert rt.host.name == "runpod-serverless"
    with simulate(env={"RUNPOD_DC_ID": "EU-CZ-1"}, root=tmp_path / "dc-only") as rt:
        assert rt.host.name == "local"
        assert "RUNPOD_WEBHOOK_GET_JOB" in rt.explain()


@pytest.mark.parametrize("env, paths", [
    ({"RUNPOD_API_KEY": "redacted", "RUNPOD_ENDPOINT_ID": "q3arg0kg6iadou"}, []),  # an endpoint's client
    ({"RUNPOD_WEBHOOK_GET_JOB": '{"input": {}}'}, []),  # the webhook typed by hand for a local test
    ({"CUDA_VISIBLE_DEVICES": "-1"}, ["/runpod-volume/ComfyUI"]),  # a worker image run locally
    ({"RUNPOD_VOLUME_ID": "4w2m8hek66"}, []),  # a laptop that launches pods on a volume
])
def test_look_alikes_are_not_workers(env: dict[str, str], paths: list[str], tmp_path: Path) -> None:
    with simulate(env=env, paths=paths, modules=["runpod"], root=tmp_path / "root") as rt:
        assert rt.host.name == "local"
        assert confidence(rt) < 0.5


def test_a_pod_stays_a_pod(tmp_path: Path) -> None:
    env = {"RUNPOD_POD_ID": "0rice6j5w1okh9", "RUNPOD_POD_HOSTNAME": "0rice6j5w1okh9-64411b",
           "RUNPOD_DC_ID": "EU-RO-1", "RUNPOD_VOLUME_ID": "vol", "RUNPOD_CPU_COUNT": "6"}
    with simulate(env=env, paths=["/workspace"], root=tmp_path / "root") as rt:
        assert rt.host.name == "runpod"
        assert confidence(rt) < 0.5
