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


# The toolkit's exported contract as a real ml.g5.2xlarge job printed it (philschmid/llm-sagemaker-sample
# @780d7d957194860a01544bdf758c7b6e49121316 notebooks/train-evalaute-llms-2024-trl.ipynb), trimmed.
TOOLKIT_ENV = {
    "SM_HOSTS": '["algo-1"]', "SM_NETWORK_INTERFACE_NAME": "eth0", "SM_USER_ENTRY_POINT": "run_sft.py",
    "SM_FRAMEWORK_PARAMS": "{}", "SM_INPUT_DATA_CONFIG": '{"training":{"TrainingInputMode":"File"}}',
    "SM_RESOURCE_CONFIG": '{"current_host":"algo-1","current_instance_type":"ml.g5.2xlarge","hosts":["algo-1"]}',
    "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data", "SM_CHANNELS": '["training"]', "SM_CURRENT_HOST": "algo-1",
    "SM_CURRENT_INSTANCE_TYPE": "ml.g5.2xlarge", "SM_MODULE_NAME": "run_sft", "SM_LOG_LEVEL": "20",
    "SM_FRAMEWORK_MODULE": "sagemaker_pytorch_container.training:main", "SM_INPUT_DIR": "/opt/ml/input",
    "SM_INPUT_CONFIG_DIR": "/opt/ml/input/config", "SM_OUTPUT_DIR": "/opt/ml/output", "SM_NUM_CPUS": "8",
    "SM_NUM_GPUS": "1", "SM_MODEL_DIR": "/opt/ml/model", "SM_USER_ARGS": '["--bf16","True"]',
    "SM_CHANNEL_TRAINING": "/opt/ml/input/data/training",
}
CONFIG_FILES = [f"{CONFIG}/resourceconfig.json", f"{CONFIG}/inputdataconfig.json", f"{CONFIG}/hyperparameters.json"]


def local_mode_env(host: str) -> dict[str, str]:
    """The toolkit's contract inside a local-mode container named ``host`` (sagemaker-python-sdk
    local/image.py: algo-<n>-<5 random chars>, instance type "local")."""
    return {**TOOLKIT_ENV, "SM_HOSTS": json.dumps([host]), "SM_CURRENT_HOST": host, "SM_CURRENT_INSTANCE_TYPE": "local",
            "SM_RESOURCE_CONFIG": json.dumps({"current_host": host, "hosts": [host], "current_instance_type": "local"}),
            "TRAINING_JOB_NAME": "local-cifar-2024"}


def test_toolkit_contract_with_the_opt_ml_layout_is_a_training_job(tmp_path: Path) -> None:
    """A child process of the toolkit sees its SM_* contract and the config files (which the
    fixture-style probe only knows to exist); no trainingjobconfig.json needs to be readable."""
    with simulate(env={**TOOLKIT_ENV, "HOME": "/root"}, paths=JOB_FOLDERS, files=CONFIG_FILES, root=tmp_path) as rt:
        assert rt.host.name == "sagemaker"
        assert rt.host.confidence >= 0.9
        provider = rt.provider
        assert isinstance(provider, TrainingJobProvider)
        assert not provider.local_mode and provider.instance_type() == "ml.g5.2xlarge"
        assert rt.paths.output == tmp_path / "opt/ml/model"
        assert any("toolkit's contract" in line for line in rt.host.evidence)


def test_contract_alone_or_layout_alone_is_not_enough(tmp_path: Path) -> None:
    env = {k: v for k, v in TOOLKIT_ENV.items() if k not in ("SM_CURRENT_INSTANCE_TYPE", "SM_RESOURCE_CONFIG")}
    with simulate(env={**env, "TRAINING_JOB_NAME": "j"}, root=tmp_path / "a") as rt:
        assert rt.host.name == "local"
    with simulate(env={"HOME": "/home/me"}, paths=JOB_FOLDERS, files=CONFIG_FILES, root=tmp_path / "b") as rt:
        assert rt.host.name == "local"
    with simulate(env={"SM_MODEL_DIR": "/opt/ml/model"}, paths=["/opt/ml/model"], root=tmp_path / "c") as rt:
        assert rt.host.name == "local"


def test_a_near_miss_says_what_was_missing(tmp_path: Path) -> None:
    """The toolkit's contract seen without the /opt/ml layout comes close; explain() names the
    config files it lacked, so a user on a real job sees why it answered local."""
    env = {k: v for k, v in TOOLKIT_ENV.items() if k not in ("SM_CURRENT_INSTANCE_TYPE", "SM_RESOURCE_CONFIG")}
    with simulate(env=env, root=tmp_path) as rt:
        assert rt.host.name == "local"
        verdict = next(v for v in rt.verdicts if v.provider == "sagemaker")
        assert verdict.detection is not None
        assert any("resourceconfig.json" in m for m in verdict.detection.missing)
        assert "missing:" in rt.explain()


def test_local_mode_gets_the_opt_ml_paths_and_says_it_is_local_mode(tmp_path: Path) -> None:
    """sagemaker-python-sdk local mode: the same image and /opt/ml layout under docker compose on
    a laptop; no trainingjobconfig.json, hosts algo-<n>-<suffix>, instance type "local"."""
    root = tmp_path / "root"
    hosts = ["algo-1-x7k2p", "algo-2-x7k2p"]
    files = [
        write_json(root, f"{CONFIG}/resourceconfig.json", {"current_host": hosts[0], "hosts": hosts,
                                                           "network_interface_name": "eth0",
                                                           "current_instance_type": "local"}),
        write_json(root, f"{CONFIG}/hyperparameters.json", {"epochs": "1"}),
        write_json(root, f"{CONFIG}/inputdataconfig.json", {"training": {"TrainingInputMode": "File"}}),
    ]
    env = {**local_mode_env(hosts[0]), **AWS_CREDENTIALS}
    with simulate(env=env, paths=JOB_FOLDERS, files=files, root=root, project="p") as rt:
        assert rt.host.name == "sagemaker"
        provider = rt.provider
        assert isinstance(provider, TrainingJobProvider)
        assert provider.local_mode and provider.instance_type() is None
        assert rt.paths.output == root / "opt/ml/model"
        assert rt.paths.persist == root / "opt/ml/output/data/portarun/p"
        assert rt.session.limit is None and "local mode" in rt.session.source
        assert any(line.startswith("note SageMaker local mode") for line in rt.host.evidence)
        assert "SageMaker local mode" in rt.explain()


def test_local_mode_in_sagemaker_studio_and_older_sdks_is_local_mode_too(tmp_path: Path) -> None:
    env = {**local_mode_env("sagemaker-local"), "SM_STUDIO_LOCAL_MODE": "True"}
    with simulate(env=env, files=CONFIG_FILES, root=tmp_path / "studio") as rt:
        assert isinstance(rt.provider, TrainingJobProvider) and rt.provider.local_mode
    # Before 2025 local mode wrote no instance type; the container name alone tells it apart.
    env = {k: v for k, v in local_mode_env("algo-1-wi5k2").items() if k != "SM_CURRENT_INSTANCE_TYPE"}
    env["SM_RESOURCE_CONFIG"] = '{"current_host":"algo-1-wi5k2","hosts":["algo-1-wi5k2"]}'
    with simulate(env=env, files=CONFIG_FILES, root=tmp_path / "old") as rt:
        assert isinstance(rt.provider, TrainingJobProvider) and rt.provider.local_mode
        assert rt.session.limit is None


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
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "local",
                             "hosts": ["laptop"]}],
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
