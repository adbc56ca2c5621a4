"""SageMaker training jobs: detected from the service's own files, never from local mode or a
laptop's SM_* variables and AWS credentials. Runs with the distribution installed, so the
provider arrives through the ``portarun`` entry point like any third-party plugin."""
from __future__ import annotations

import json
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime
from portarun.testing import simulate
from portarun_sagemaker.training_job import TrainingJobProvider

CONFIG = "/opt/ml/input/config"
# As the training toolkit exports them for the user's script (ENVIRONMENT_VARIABLES.md).
SM_ENV = {
    "SM_MODEL_DIR": "/opt/ml/model", "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
    "SM_CHANNEL_TRAINING": "/opt/ml/input/data/training", "SM_NUM_GPUS": "1", "SM_NUM_CPUS": "8",
    "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1",
}
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1"}
# resourceconfig.json of a real ml.g5.2xlarge job (shape from job logs and the toolkit docstring).
SERVICE_RESOURCES = {
    "current_host": "algo-1", "hosts": ["algo-1"], "current_group_name": "homogeneousCluster",
    "current_instance_type": "ml.g5.2xlarge", "network_interface_name": "eth0",
    "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.g5.2xlarge",
                         "hosts": ["algo-1"]}],
}
JOB_FOLDERS = ["/opt/ml/input/data/training", "/opt/ml/input/data/validation", "/opt/ml/model", "/opt/ml/output/data"]


def write_json(root: Path, host_path: str, data: Any) -> str:
    """Write ``data`` where ``host_path`` lives under ``root``; returns ``host_path``."""
    target = root / host_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data), encoding="utf-8")
    return host_path


def service_job(root: Path, *, max_run: int | None = 172800, checkpoints: bool = True) -> list[str]:
    """The config files the SageMaker service writes into a job's container."""
    job_config: dict[str, Any] = {"TrainingJobName": "llm-ft-2024", "ResourceConfig": {"InstanceType": "ml.g5.2xlarge"}}
    if max_run is not None:
        job_config["StoppingCondition"] = {"MaxRuntimeInSeconds": max_run}
    files = [
        write_json(root, f"{CONFIG}/trainingjobconfig.json", job_config),
        write_json(root, f"{CONFIG}/resourceconfig.json", SERVICE_RESOURCES),
        write_json(root, f"{CONFIG}/hyperparameters.json", {"epochs": "3"}),
        write_json(root, f"{CONFIG}/inputdataconfig.json", {"training": {"TrainingInputMode": "File"}}),
    ]
    if checkpoints:
        files.append(write_json(root, f"{CONFIG}/checkpointconfig.json",
                                {"LocalPath": "/opt/ml/checkpoints", "S3Uri": "s3://bucket/checkpoints/llm-ft"}))
    return files


def verdict_confidence(rt: Runtime, provider: str) -> float:
    return next(v.confidence for v in rt.verdicts if v.provider == provider)


def test_service_job_is_detected_with_the_sm_contract_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    files = service_job(root)
    env = {**SM_ENV, **AWS_CREDENTIALS, "TRAINING_JOB_NAME": "llm-ft-2024", "HOME": "/root"}
    with simulate(env=env, paths=[*JOB_FOLDERS, "/opt/ml/checkpoints"], files=files, root=root, project="llm") as rt:
        assert rt.host.name == "sagemaker"
        assert rt.host.confidence >= 0.9
        assert (rt.host.plugin, rt.host.version) == ("sagemaker", version("portarun-sagemaker"))
        assert rt.paths.input == root / "opt/ml/input/data"
        assert rt.paths.output == root / "opt/ml/model"
        assert rt.paths.persist == root / "opt/ml/checkpoints/llm"
        assert rt.paths.checkpoints == root / "opt/ml/checkpoints/llm/checkpoints"
        assert rt.paths.checkpoints.is_dir()
        for role, value in rt.paths.as_dict().items():
            assert Path(value).is_relative_to(root), (role, value)
        assert rt.session.limit == timedelta(hours=48)
        assert "MaxRuntimeInSeconds" in rt.session.source
        provider = rt.provider
        assert isinstance(provider, TrainingJobProvider)
        assert provider.channels() == {"training": root / "opt/ml/input/data/training",
                                       "validation": root / "opt/ml/input/data/validation"}
        assert any("AWS credentials" in line for line in rt.host.evidence)


def test_job_without_checkpointing_warns_and_keeps_checkpoints_in_the_uploaded_output(tmp_path: Path) -> None:
    root = tmp_path / "root"
    files = service_job(root, max_run=None, checkpoints=False)
    with pytest.warns(PortarunWarning, match="checkpoint_s3_uri"):
        with simulate(env={"TRAINING_JOB_NAME": "j"}, paths=JOB_FOLDERS, files=files, root=root, project="p") as rt:
            assert rt.host.name == "sagemaker"
            assert rt.paths.persist == root / "opt/ml/output/data/portarun/p"
            assert rt.paths.output == root / "opt/ml/model"
            assert rt.session.limit is None and "PORTARUN_SESSION_LIMIT" in rt.session.source


def test_checkpoint_local_path_is_taken_from_checkpointconfig(tmp_path: Path) -> None:
    root = tmp_path / "root"
    files = [*service_job(root, checkpoints=False),
             write_json(root, f"{CONFIG}/checkpointconfig.json", {"LocalPath": "/mnt/ckpt", "S3Uri": "s3://b/c"})]
    with simulate(env={}, paths=JOB_FOLDERS, files=files, root=root, project="p") as rt:
        assert rt.paths.persist == root / "mnt/ckpt/p"


def test_local_mode_is_not_a_training_job(tmp_path: Path) -> None:
    """sagemaker-python-sdk local mode: same image and /opt/ml layout under docker-compose on a
    laptop; resourceconfig.json has only current_host/hosts, no trainingjobconfig.json."""
    root = tmp_path / "root"
    hosts = ["algo-1-x7k2p", "algo-2-x7k2p"]
    files = [
        write_json(root, f"{CONFIG}/resourceconfig.json", {"current_host": hosts[0], "hosts": hosts}),
        write_json(root, f"{CONFIG}/hyperparameters.json", {"epochs": "1"}),
        write_json(root, f"{CONFIG}/inputdataconfig.json", {"training": {"TrainingInputMode": "File"}}),
    ]
    env = {**SM_ENV, **AWS_CREDENTIALS, "TRAINING_JOB_NAME": "local-cifar-2024", "SM_CURRENT_HOST": hosts[0]}
    with simulate(env=env, paths=JOB_FOLDERS, files=files, root=root) as rt:
        assert rt.host.name == "local"
        assert verdict_confidence(rt, "sagemaker") < 0.5
        detection = TrainingJobProvider.detect(rt.probe)
        assert detection is not None
        assert any("local mode" in line for line in detection.evidence)


def test_laptop_with_sm_variables_and_aws_credentials_is_not_a_training_job() -> None:
    with simulate(env={**SM_ENV, **AWS_CREDENTIALS, "AWS_PROFILE": "dev", "HOME": "/home/me"}) as rt:
        assert rt.host.name == "local"
        assert verdict_confidence(rt, "sagemaker") == 0.0


def test_training_toolkit_fallback_on_a_laptop_is_not_a_training_job(tmp_path: Path) -> None:
    """Importing sagemaker_training off SageMaker writes a resourceconfig with instance_type
    "local" under ~/sagemaker_local and sets SAGEMAKER_BASE_DIR (toolkit environment.py)."""
    root = tmp_path / "root"
    base = "/home/me/sagemaker_local/jobs/1700000000.0/opt/ml"
    files = [write_json(root, f"{base}/input/config/resourceconfig.json", {
        "current_host": "laptop", "hosts": ["laptop"], "current_instance_group": "homogeneousCluster",
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "local", "hosts": ["laptop"]}],
    })]
    with simulate(env={"HOME": "/home/me", "SAGEMAKER_BASE_DIR": base, **SM_ENV}, files=files, root=root) as rt:
        assert rt.host.name == "local"


def test_unreadable_config_files_do_not_break_detection(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / CONFIG.lstrip("/")).mkdir(parents=True)
    (root / CONFIG.lstrip("/") / "resourceconfig.json").write_text("{not json", encoding="utf-8")
    (root / CONFIG.lstrip("/") / "trainingjobconfig.json").write_bytes(b"\xff\xfe")
    with pytest.warns(PortarunWarning, match="checkpoint_s3_uri"):
        with simulate(env={"TRAINING_JOB_NAME": "j"}, root=root) as rt:
            assert rt.host.name == "sagemaker"  # the service's file is there, whatever it holds
            assert rt.session.limit is None
