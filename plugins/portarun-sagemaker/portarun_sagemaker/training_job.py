"""Amazon SageMaker training jobs: the container SageMaker starts for ``Estimator.fit()``.

Markers, weighed because SageMaker *local mode* (the same image run by docker-compose on a
laptop) and laptops with ``SM_*`` variables or AWS credentials look alike:

- ``/opt/ml/input/config/trainingjobconfig.json``: written by the training service only ("training
  jobs only", in the /opt/ml tree of a real job); local mode's ``write_config_files`` writes just
  ``hyperparameters.json``, ``resourceconfig.json`` and ``inputdataconfig.json``
  (aws/sagemaker-python-sdk ``src/sagemaker/local/image.py`` @e487a037). Strong.
- ``resourceconfig.json`` with ``current_instance_type`` = ``ml.*`` or a
  ``network_interface_name``: the service writes both (sagemaker-training-toolkit
  ``environment.py`` ``read_resource_config`` lists them; job logs show
  ``"current_instance_type":"ml.c5.xlarge"``, ``"network_interface_name":"eth0"``). Local mode
  writes only ``current_host`` and ``hosts`` (``algo-1-<5 random chars>``), and the toolkit's
  off-SageMaker fallback writes ``"instance_type": "local"`` under ``~/sagemaker_local``.
- ``TRAINING_JOB_NAME``: set by the service, and by local mode too (``image.py``
  ``TRAINING_JOB_NAME_ENV_NAME``). Weak.
- ``/opt/ml/input/config`` folder: present in both. Weak.
- ``SM_MODEL_DIR``, ``SM_CHANNEL_*``, ``SM_HOSTS``, ``SM_CURRENT_HOST``, ``SM_NUM_GPUS``, ...:
  exported by the training toolkit for the user's script in local mode too, and copied into
  laptop shells by people testing scripts (toolkit ``ENVIRONMENT_VARIABLES.md``). Never evidence.
- ``AWS_ACCESS_KEY_ID`` / ``AWS_PROFILE``: credentials on every AWS user's laptop. Never evidence.

Paths follow the SM contract (toolkit ``ENVIRONMENT_VARIABLES.md``): channels under
``/opt/ml/input/data/<channel>`` (``SM_CHANNEL_<NAME>``), the model in ``/opt/ml/model``
(``SM_MODEL_DIR``), other outputs in ``/opt/ml/output/data`` (``SM_OUTPUT_DATA_DIR``). When the
job ends "the container will be deleted including its file system with exception of the
/opt/ml/model and /opt/ml/output folders", which are uploaded to S3 (HOSTS.md [S3]).
``/opt/ml/checkpoints`` is synced with ``checkpoint_s3_uri`` and restored on restart when
checkpointing is configured; the service then writes ``checkpointconfig.json`` with its
``LocalPath`` (awslabs/sagemaker-debugger ``smdebug/core/config_constants.py``:
``DEFAULT_CHECKPOINT_CONFIG_FILE``, ``CHECKPOINT_DIR_KEY = "LocalPath"``; jobs without it log
"The checkpoint config file ... does not exist").

Session: the job is stopped at ``max_run`` (``StoppingCondition.MaxRuntimeInSeconds``, set by
the user; HOSTS.md [S3]); read from ``trainingjobconfig.json`` when it carries it, else unknown.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from portarun.probe import Probe
from portarun.provider import Detection, DeviceKind, Evidence, HostLocations, Provider, SessionLimits

from ._config import CONFIG_DIR, read_json

TRAINING_JOB_CONFIG = f"{CONFIG_DIR}/trainingjobconfig.json"
RESOURCE_CONFIG = f"{CONFIG_DIR}/resourceconfig.json"
CHECKPOINT_CONFIG = f"{CONFIG_DIR}/checkpointconfig.json"
#: Fixed by the SM contract (toolkit ENVIRONMENT_VARIABLES.md: SM_MODEL_DIR, SM_OUTPUT_DATA_DIR).
DATA_DIR = "/opt/ml/input/data"
MODEL_DIR = "/opt/ml/model"
OUTPUT_DATA_DIR = "/opt/ml/output/data"
#: The SageMaker Python SDK's default ``checkpoint_local_path``.
DEFAULT_CHECKPOINT_DIR = "/opt/ml/checkpoints"

_SM_VARS = ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_CURRENT_HOST", "SM_HOSTS", "SM_NUM_GPUS", "SM_NUM_CPUS")
_AWS_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_SESSION_TOKEN")


class TrainingJobProvider(Provider):
    """A SageMaker training job's container (not local mode, not a notebook)."""

    name = "sagemaker"
    display_name = "Amazon SageMaker training job"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.is_file(TRAINING_JOB_CONFIG):
            ev.add(0.45, f"file {TRAINING_JOB_CONFIG}", "written by the training service only; local mode does not")
        resources = read_json(probe, RESOURCE_CONFIG)
        if resources is not None:
            instance_type = resources.get("current_instance_type")
            if isinstance(instance_type, str) and instance_type.startswith("ml."):
                ev.add(0.3, f"{RESOURCE_CONFIG} current_instance_type={instance_type}",
                       "an ml.* instance: only the SageMaker service writes one")
            elif resources.get("network_interface_name"):
                ev.add(0.3, f"{RESOURCE_CONFIG} network_interface_name={resources['network_interface_name']}",
                       "written by the SageMaker service; local mode omits it")
            else:
                ev.note(f"{RESOURCE_CONFIG} has no ml.* instance type and no network interface",
                        "the shape SageMaker local mode writes on a laptop; not counted")
        if probe.getenv("TRAINING_JOB_NAME"):
            ev.add(0.1, "env TRAINING_JOB_NAME", "set for the job's container; local mode sets it too")
        if probe.is_dir(CONFIG_DIR):
            ev.add(0.1, f"folder {CONFIG_DIR}", "SageMaker's container layout; local mode mounts it too")
        sm_vars = [v for v in _SM_VARS if probe.getenv(v)]
        if sm_vars:
            ev.note("env " + ", ".join(sm_vars), "exported by the training toolkit in local mode too and set by hand "
                    "on laptops; not evidence")
        aws_vars = [v for v in _AWS_CREDENTIAL_VARS if probe.getenv(v)]
        if aws_vars:
            ev.note("env " + ", ".join(aws_vars) + " set", "AWS credentials, present on laptops and CI; not evidence")
        return ev.detection()

    def _job_config(self) -> dict[str, Any] | None:
        return read_json(self.probe, TRAINING_JOB_CONFIG)

    def checkpoint_dir(self) -> Path | None:
        """The folder SageMaker syncs with ``checkpoint_s3_uri`` (``LocalPath`` of
        ``checkpointconfig.json``, default ``/opt/ml/checkpoints``), or ``None`` when the job
        was started without checkpointing."""
        config = read_json(self.probe, CHECKPOINT_CONFIG)
        if config is None:
            return None
        local = config.get("LocalPath")
        return self.probe.path(local if isinstance(local, str) and local.startswith("/") else DEFAULT_CHECKPOINT_DIR)

    def channels(self) -> dict[str, Path]:
        """Input channels by name: the folders under ``/opt/ml/input/data`` (what
        ``SM_CHANNEL_<NAME>`` points at)."""
        data = self.probe.path(DATA_DIR)
        if not data.is_dir():
            return {}
        return {child.name: child for child in sorted(data.iterdir()) if child.is_dir()}

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        checkpoints = self.checkpoint_dir()
        if checkpoints is not None:
            return HostLocations(
                input=p(DATA_DIR), scratch=p("/tmp") / "portarun-scratch", output=p(MODEL_DIR),
                persist=checkpoints, cache=self.probe.home / ".cache",
            )
        # Without checkpointing, /opt/ml/output reaches S3 (as output.tar.gz) when the job ends,
        # and model.tar.gz stays clean for deployment.
        warning = None
        if self.probe.is_file(TRAINING_JOB_CONFIG):
            warning = (
                "This SageMaker training job was started without checkpoint_s3_uri, so portarun's persist and "
                f"checkpoints folders are under {OUTPUT_DATA_DIR}/portarun: they reach S3 only when the job ends, and "
                "a restarted or spot-interrupted job cannot resume from them. Pass checkpoint_s3_uri=... to the "
                "Estimator (SageMaker then syncs /opt/ml/checkpoints with S3 and restores it on restart), or set "
                "PORTARUN_PERSIST_DIR to an s3:// URL."
            )
        return HostLocations(
            input=p(DATA_DIR), scratch=p("/tmp") / "portarun-scratch", output=p(MODEL_DIR),
            persist=p(OUTPUT_DATA_DIR) / "portarun", cache=self.probe.home / ".cache", persist_warning=warning,
        )

    def session_limits(self) -> SessionLimits:
        config = self._job_config() or {}
        stopping = config.get("StoppingCondition")
        seconds = stopping.get("MaxRuntimeInSeconds") if isinstance(stopping, dict) else None
        if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
            return SessionLimits(timedelta(seconds=seconds),
                                 "SageMaker max_run (StoppingCondition.MaxRuntimeInSeconds in trainingjobconfig.json)")
        return SessionLimits(None, "SageMaker stops the job at max_run, which trainingjobconfig.json does not show "
                                   "here; set PORTARUN_SESSION_LIMIT to the Estimator's max_run")

    def device_order(self) -> tuple[DeviceKind, ...]:
        return ("cuda", "cpu")
