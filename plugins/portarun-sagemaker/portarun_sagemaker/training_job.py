"""Amazon SageMaker training jobs: the container SageMaker starts for ``Estimator.fit()``, and the
same container run by SageMaker *local mode* under docker compose.

Evidence (toolkit = aws/sagemaker-training-toolkit @33839372, SDK = aws/sagemaker-python-sdk
@a2481266 ``sagemaker-core/src/sagemaker/core/local/image.py``):

- **The training toolkit's contract**: before it runs the user's entry point, the toolkit
  exports its whole training environment as ``SM_*`` variables (toolkit
  ``src/sagemaker_training/environment.py`` ``Environment.to_env_vars``, prefixed ``SM_`` by
  ``mapping.py`` ``to_env_vars``): the paths (``SM_MODEL_DIR=/opt/ml/model``,
  ``SM_INPUT_CONFIG_DIR=/opt/ml/input/config``, ...) and plumbing nobody types by hand
  (``SM_TRAINING_ENV``, ``SM_RESOURCE_CONFIG``, ``SM_INPUT_DATA_CONFIG``, ``SM_USER_ARGS``,
  ``SM_MODULE_DIR``, ``SM_FRAMEWORK_MODULE``, ...). Real job logs print the full set
  (philschmid/llm-sagemaker-sample@780d7d95 ``notebooks/train-evalaute-llms-2024-trl.ipynb``;
  aws/sagemaker-python-sdk issues #1225, #1422). Counted when it is *complete*: at least
  :data:`CONTRACT_MIN` of the toolkit's names, :data:`PLUMBING_MIN` of them plumbing, and every
  path among them under ``/opt/ml``. +0.35. A few ``SM_*`` variables (the argparse defaults
  of the toolkit's README: ``SM_MODEL_DIR``, ``SM_CHANNEL_*``, ``SM_NUM_GPUS``, ...) are what
  people copy into laptop shells: noted, never counted.
- **The /opt/ml layout**: the folder ``/opt/ml/input/config`` (+0.10) holding the files the
  platform writes before the container starts, ``resourceconfig.json``,
  ``inputdataconfig.json`` and ``hyperparameters.json`` (+0.15 for two or more). The service
  writes them, and so does local mode (SDK ``image.py`` ``write_config_files``). A lone folder
  is weak.
- **The service, not local mode**: ``trainingjobconfig.json`` (+0.45) is written by the service
  only; local mode writes just the three files above (``write_config_files``). An ``ml.*``
  instance type in ``resourceconfig.json`` (+0.30) is the service's too: local mode writes
  ``"current_instance_type": "local"`` or ``"local_gpu"`` (the Estimator's ``instance_type``),
  and the toolkit's off-SageMaker fallback ``"instance_type": "local"`` (toolkit
  ``environment.py`` ``_create_training_directories``). With the contract complete, the
  toolkit's own copy of the instance type (``SM_CURRENT_INSTANCE_TYPE``, or
  ``current_instance_type`` in ``SM_RESOURCE_CONFIG``/``SM_TRAINING_ENV``) counts the same.
- ``TRAINING_JOB_NAME``: set by the service, and by local mode (SDK ``image.py``
  ``TRAINING_JOB_NAME_ENV_NAME``). +0.10.
- **Local mode** is told apart, not scored down: its containers are named
  ``algo-<n>-<5 random [a-z0-9]>`` (SDK ``image.py``: ``CONTAINER_PREFIX`` plus a random
  ``suffix``; issues show ``SM_HOSTS=["algo-1-5a4wc"]``, aws/aws-step-functions-data-science-sdk-python
  #138) or ``sagemaker-local`` in SageMaker Studio (``STUDIO_HOST_NAME``, with
  ``SM_STUDIO_LOCAL_MODE=True``), and its instance type is ``local``/``local_gpu``. The
  service names hosts ``algo-1``, ``algo-2``, ... (toolkit ``ENVIRONMENT_VARIABLES.md``).
  Local mode gets the same ``/opt/ml`` paths (the SDK mounts them from the laptop) and says so
  in the evidence; it has no ``max_run``, instance type or billing.
- ``SAGEMAKER_BASE_DIR``: set by the toolkit's off-SageMaker fallback, which builds the tree
  under ``~/sagemaker_local`` on a laptop (toolkit ``environment.py`` ``_set_base_path_env``).
  Noted; its ``SM_*`` paths are not under ``/opt/ml``, so the contract does not count.
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
Local mode has no limit.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from portarun.probe import Probe
from portarun.provider import Detection, DeviceKind, Evidence, HostLocations, Provider, SessionLimits

from ._config import CONFIG_DIR, read_json

TRAINING_JOB_CONFIG = f"{CONFIG_DIR}/trainingjobconfig.json"
RESOURCE_CONFIG = f"{CONFIG_DIR}/resourceconfig.json"
CHECKPOINT_CONFIG = f"{CONFIG_DIR}/checkpointconfig.json"
#: What the service and local mode both write before the container starts (SDK ``image.py``
#: ``write_config_files``; toolkit ``environment.py`` reads them).
PLATFORM_CONFIGS = ("resourceconfig.json", "inputdataconfig.json", "hyperparameters.json")
#: Fixed by the SM contract (toolkit ENVIRONMENT_VARIABLES.md: SM_MODEL_DIR, SM_OUTPUT_DATA_DIR).
BASE_DIR = "/opt/ml"
DATA_DIR = "/opt/ml/input/data"
MODEL_DIR = "/opt/ml/model"
OUTPUT_DATA_DIR = "/opt/ml/output/data"
#: The SageMaker Python SDK's default ``checkpoint_local_path``.
DEFAULT_CHECKPOINT_DIR = "/opt/ml/checkpoints"

#: Every name the toolkit exports (``Environment.to_env_vars`` keys, ``SM_`` + upper case), except
#: the per-channel ``SM_CHANNEL_<NAME>`` and per-hyperparameter ``SM_HP_<NAME>`` families.
TOOLKIT_VARS = frozenset({
    "SM_HOSTS", "SM_NETWORK_INTERFACE_NAME", "SM_HPS", "SM_USER_ENTRY_POINT", "SM_FRAMEWORK_PARAMS",
    "SM_RESOURCE_CONFIG", "SM_INPUT_DATA_CONFIG", "SM_OUTPUT_DATA_DIR", "SM_CHANNELS", "SM_CURRENT_HOST",
    "SM_CURRENT_INSTANCE_TYPE", "SM_CURRENT_INSTANCE_GROUP", "SM_CURRENT_INSTANCE_GROUP_HOSTS",
    "SM_INSTANCE_GROUPS", "SM_INSTANCE_GROUPS_DICT", "SM_DISTRIBUTION_INSTANCE_GROUPS", "SM_IS_HETERO",
    "SM_MODULE_NAME", "SM_LOG_LEVEL", "SM_FRAMEWORK_MODULE", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR",
    "SM_OUTPUT_DIR", "SM_NUM_CPUS", "SM_NUM_GPUS", "SM_NUM_NEURONS", "SM_MODEL_DIR", "SM_MODULE_DIR",
    "SM_TRAINING_ENV", "SM_USER_ARGS", "SM_OUTPUT_INTERMEDIATE_DIR",
})
#: The toolkit's plumbing: serialised configuration and launcher details, never an argparse
#: default in a user's script (the toolkit README's examples use SM_MODEL_DIR, SM_CHANNEL_*,
#: SM_NUM_GPUS, SM_HOSTS, SM_CURRENT_HOST, SM_OUTPUT_DATA_DIR).
PLUMBING_VARS = frozenset({
    "SM_TRAINING_ENV", "SM_RESOURCE_CONFIG", "SM_INPUT_DATA_CONFIG", "SM_FRAMEWORK_PARAMS", "SM_HPS",
    "SM_USER_ARGS", "SM_USER_ENTRY_POINT", "SM_FRAMEWORK_MODULE", "SM_MODULE_DIR", "SM_MODULE_NAME",
    "SM_INPUT_CONFIG_DIR", "SM_OUTPUT_INTERMEDIATE_DIR", "SM_LOG_LEVEL", "SM_NETWORK_INTERFACE_NAME",
    "SM_INSTANCE_GROUPS_DICT", "SM_DISTRIBUTION_INSTANCE_GROUPS", "SM_IS_HETERO",
})
_PATH_VARS = ("SM_MODEL_DIR", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_OUTPUT_DIR", "SM_OUTPUT_DATA_DIR",
              "SM_OUTPUT_INTERMEDIATE_DIR")
#: A complete contract: this many toolkit names, this many of them plumbing (a real job exports
#: about 30; the shortest public dumps we use show 7).
CONTRACT_MIN = 6
PLUMBING_MIN = 3
#: Local mode's container names (SDK image.py: "{CONTAINER_PREFIX}-{i}-{suffix}", 5 characters
#: from ascii_lowercase + digits; STUDIO_HOST_NAME in SageMaker Studio).
_LOCAL_HOST = re.compile(r"^(algo-\d+-[a-z0-9]{5}|sagemaker-local)$")
_LOCAL_INSTANCE_TYPES = ("local", "local_gpu")
_AWS_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_SESSION_TOKEN")


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _contract(probe: Probe) -> tuple[list[str], list[str], list[str]]:
    """The toolkit names present, the plumbing among them, and the path variables that point
    outside ``/opt/ml`` (the toolkit's laptop fallback)."""
    names = sorted(v for v in TOOLKIT_VARS if probe.getenv(v))
    plumbing = [v for v in names if v in PLUMBING_VARS]
    outside = [v for v in _PATH_VARS if (probe.getenv(v) or "").startswith("/")
               and not (probe.getenv(v) or "").startswith(BASE_DIR + "/")]
    return names, plumbing, outside


def _hosts(probe: Probe, resources: dict[str, Any] | None) -> list[str]:
    """Container host names from ``resourceconfig.json`` and the toolkit's variables."""
    found: list[str] = []
    sources: list[Any] = [resources or {}, _json(probe.getenv("SM_RESOURCE_CONFIG")) or {},
                          _json(probe.getenv("SM_TRAINING_ENV")) or {}]
    for src in sources:
        if isinstance(src, dict):
            found += [h for h in [src.get("current_host"), *(src.get("hosts") or [])] if isinstance(h, str)]
    hosts = _json(probe.getenv("SM_HOSTS"))
    if isinstance(hosts, list):
        found += [h for h in hosts if isinstance(h, str)]
    if probe.getenv("SM_CURRENT_HOST"):
        found.append(str(probe.getenv("SM_CURRENT_HOST")))
    return list(dict.fromkeys(found))


def _instance_type(probe: Probe, resources: dict[str, Any] | None, trust_env: bool) -> tuple[str, str] | None:
    """``(instance type, where it was read)``: ``resourceconfig.json`` first, then (only when
    ``trust_env``, i.e. the toolkit's contract is complete) the toolkit's exported copies."""
    if resources is not None and isinstance(resources.get("current_instance_type"), str):
        return resources["current_instance_type"], RESOURCE_CONFIG
    if not trust_env:
        return None
    if probe.getenv("SM_CURRENT_INSTANCE_TYPE"):
        return str(probe.getenv("SM_CURRENT_INSTANCE_TYPE")), "env SM_CURRENT_INSTANCE_TYPE"
    for name in ("SM_RESOURCE_CONFIG", "SM_TRAINING_ENV"):
        data = _json(probe.getenv(name))
        if isinstance(data, dict) and isinstance(data.get("current_instance_type"), str):
            return data["current_instance_type"], f"env {name}"
    return None


def local_mode_markers(probe: Probe) -> list[str]:
    """What says this container was started by SageMaker *local mode* (empty on the service)."""
    resources = read_json(probe, RESOURCE_CONFIG)
    markers = [f"host {h}" for h in _hosts(probe, resources) if _LOCAL_HOST.match(h)]
    if (probe.getenv("SM_STUDIO_LOCAL_MODE") or "").lower() == "true":
        markers.append("env SM_STUDIO_LOCAL_MODE=True")
    found = _instance_type(probe, resources, trust_env=True)
    if found is not None and found[0] in _LOCAL_INSTANCE_TYPES:
        markers.append(f"instance type {found[0]} ({found[1]})")
    return markers


class TrainingJobProvider(Provider):
    """A SageMaker training job's container, on the service or in local mode (not a notebook)."""

    name = "sagemaker"
    display_name = "Amazon SageMaker training job"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        names, plumbing, outside = _contract(probe)
        complete = len(names) >= CONTRACT_MIN and len(plumbing) >= PLUMBING_MIN and not outside
        if complete:
            ev.add(0.35, f"env: the training toolkit's contract ({len(names)} SM_* variables, incl. "
                   + ", ".join(plumbing[:4]) + ")",
                   "exported by sagemaker-training-toolkit to the entry point it starts (environment.py to_env_vars)")
        else:
            ev.missing("the training toolkit's SM_* contract (SM_TRAINING_ENV, SM_RESOURCE_CONFIG, "
                       "SM_INPUT_CONFIG_DIR, SM_MODEL_DIR=/opt/ml/model, ...), which it exports to the entry point")
        if names and not complete:
            why = (f"{', '.join(outside)} outside {BASE_DIR}: the toolkit's off-SageMaker fallback" if outside else
                   "too few of the toolkit's plumbing variables for its full contract; people set SM_* by hand on "
                   "laptops")
            ev.note("env " + ", ".join(names), why + "; not counted")
        if probe.is_dir(CONFIG_DIR):
            ev.add(0.1, f"folder {CONFIG_DIR}", "SageMaker's container layout (service and local mode)")
        configs = [f for f in PLATFORM_CONFIGS if probe.is_file(f"{CONFIG_DIR}/{f}")]
        if len(configs) >= 2:
            ev.add(0.15, f"files {', '.join(configs)} in {CONFIG_DIR}",
                   "written by SageMaker before the container starts (service, and local mode's write_config_files)")
        else:
            ev.missing(f"the config files SageMaker writes into {CONFIG_DIR} ({', '.join(PLATFORM_CONFIGS)})")
        if probe.is_file(TRAINING_JOB_CONFIG):
            ev.add(0.45, f"file {TRAINING_JOB_CONFIG}", "written by the training service only; local mode does not")
        resources = read_json(probe, RESOURCE_CONFIG)
        found = _instance_type(probe, resources, trust_env=complete)
        if found is not None and found[0].startswith("ml."):
            ev.add(0.3, f"instance type {found[0]} ({found[1]})",
                   "an ml.* instance: only the SageMaker service has one")
        if probe.getenv("TRAINING_JOB_NAME"):
            ev.add(0.1, "env TRAINING_JOB_NAME", "set for the job's container by the service and by local mode")
        local = local_mode_markers(probe)
        if local:
            ev.note("SageMaker local mode: " + ", ".join(local),
                    "docker compose on the user's machine (sagemaker-python-sdk local/image.py): /opt/ml paths, "
                    "no max_run, no instance type, no billing")
        if probe.getenv("SAGEMAKER_BASE_DIR"):
            ev.note("env SAGEMAKER_BASE_DIR", "set by the training toolkit's off-SageMaker fallback; not evidence")
        aws_vars = [v for v in _AWS_CREDENTIAL_VARS if probe.getenv(v)]
        if aws_vars:
            ev.note("env " + ", ".join(aws_vars) + " set", "AWS credentials, present on laptops and CI; not evidence")
        return ev.detection()

    @property
    def local_mode(self) -> bool:
        """Whether SageMaker *local mode* started this container (docker compose on the user's
        machine) rather than the training service."""
        return bool(local_mode_markers(self.probe))

    def instance_type(self) -> str | None:
        """The ``ml.*`` instance the job runs on, or ``None`` in local mode or when unknown."""
        if self.local_mode:
            return None
        found = _instance_type(self.probe, read_json(self.probe, RESOURCE_CONFIG), trust_env=True)
        return found[0] if found is not None and found[0].startswith("ml.") else None

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
        # and model.tar.gz stays clean for deployment. Local mode copies the same folders to
        # its output_path when the container exits.
        warning = None
        if self.probe.is_file(TRAINING_JOB_CONFIG) and not self.local_mode:
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
        if self.local_mode:
            return SessionLimits(None, "SageMaker local mode: the container runs on this machine under docker compose, "
                                       "with no max_run, no instance type and no SageMaker billing")
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
