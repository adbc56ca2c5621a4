"""SkyPilot: a task's ``run`` commands on a cluster SkyPilot launched (``sky launch``/``sky exec``),
or on the cluster of a managed job (``sky jobs launch``), which SkyPilot recovers onto a new
cluster after a preemption.

Markers, as SkyPilot sets them for a task's ``run`` (docs/source/running-jobs/environment-variables.rst,
skypilot-org/skypilot@0a6e887621103c9424dea951fd86c9f7c5586bb9; names in sky/skylet/constants.py,
skypilot-org/skypilot@0015e8ecf7387add6114d98bd9b38cbb480d605f):

- ``SKYPILOT_TASK_ID``: "A unique ID assigned to each task in the format
  ``sky-<timestamp>_<cluster-name>_<task-id>``"; for a managed job
  ``sky-managed-<timestamp>_<job-name>(_<task-name>)_<job-id>-<task-id>``, and "all recoveries of
  that job will have the same ID value" (constants.py: "This will stay the same across multiple
  recoveries of the same managed task"; built by ``get_global_job_id`` in sky/utils/common_utils.py,
  skypilot-org/skypilot@0022406100bb1cfd634fb9603641eaed481d2404; 2023 releases wrote ``_id-<n>``).
  Strong when it has that shape; tools and tests also export it by hand, so any other value is a
  note only.
- ``SKYPILOT_MANAGED_JOB_ID``: "The integer managed job ID assigned by the jobs controller"
  (constants.py).
- ``SKYPILOT_CLUSTER_INFO``: JSON with ``cluster_name``, ``cloud``, ``region``, ``zone``
  (skypilot-org/skypilot pull request 3426, which added it).
- ``SKYPILOT_NODE_RANK``, ``SKYPILOT_NUM_NODES``, ``SKYPILOT_NODE_IPS`` (one per line) and
  ``SKYPILOT_NUM_GPUS_PER_NODE``: the node's place. Weak: SLURM wrappers export them by hand to
  run SkyPilot-style scripts outside SkyPilot.
- ``SKYPILOT_API_SERVER_ENDPOINT``/``SKYPILOT_DEBUG``: set on the *client* (a laptop running
  ``sky``). Never evidence.

Storage: a task's disk is the cluster's. A managed job's recovery runs on a new cluster, so its
disk is lost; only a bucket in the task's ``file_mounts`` (``mode: MOUNT``) survives. SkyPilot
tells the task nothing about its mounts (no variable names them), so the task says where with
``PORTARUN_PERSIST_DIR`` in its ``envs``; the provider warns when a managed job has none.

Identity: in a managed job (and unless ``PORTARUN_PROJECT`` names one), the run's folder under the
persistent storage is named after ``SKYPILOT_TASK_ID``, the same in every recovery, so a recovered
job resumes its own checkpoints and two jobs of one script never share them.

Preemption: SkyPilot sends the task no signal of its own. The cloud shuts the VM down (or the
kubelet stops the pod), which sends the task's processes SIGTERM before killing them; the
``preemption`` lifecycle hook runs at the same time
(https://docs.skypilot.co/en/latest/reference/lifecycle-hooks.html). ``rt.checkpoints.maybe_save``
saves on SIGTERM by default (:mod:`portarun.checkpoint.signals`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace

from portarun.hookspecs import hookimpl
from portarun.paths import Paths, join, project_folder, resolve
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

TASK_ID = "SKYPILOT_TASK_ID"
#: ``sky-[managed-]<YYYY-MM-DD-hh-mm-ss-micro>_<name>_[id-]<job>[-<task>]`` (get_global_job_id).
_TASK_ID = re.compile(r"sky-(managed-)?\d{4}(?:-\d{2}){5}-\d{6}_.+_(?:id-)?\d+(?:-\d+)?")
_NODE_VARS = ("SKYPILOT_NODE_RANK", "SKYPILOT_NUM_NODES", "SKYPILOT_NODE_IPS")
_CLIENT_VARS = ("SKYPILOT_API_SERVER_ENDPOINT", "SKYPILOT_DEBUG")


def _count(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,6}", text) else None


class SkyPilotProvider(Provider):
    """A task run by SkyPilot on a cluster it launched, or in a managed job."""

    name = "skypilot"
    display_name = "SkyPilot cluster or managed job"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        task = probe.getenv(TASK_ID)
        if task is not None and _TASK_ID.fullmatch(task.strip()):
            managed = task.strip().startswith("sky-managed-")
            kind = "a managed job's (stable across recoveries)" if managed else "a task's"
            ev.add(0.5, "env " + probe.env_fact(TASK_ID), f"SkyPilot's id of {kind} run, in its own format")
        elif task is not None:
            ev.note("env " + probe.env_fact(TASK_ID), "not in SkyPilot's sky-<timestamp>_<name>_<id> format; "
                    "exported by hand")
        if _count(probe.getenv("SKYPILOT_MANAGED_JOB_ID")) is not None:
            ev.add(0.1, "env " + probe.env_fact("SKYPILOT_MANAGED_JOB_ID"), "the jobs controller's job id")
        info = cls._cluster_info(probe)
        if info is not None:
            ev.add(0.3, f"env SKYPILOT_CLUSTER_INFO (cluster {info.get('cluster_name')!r} on {info.get('cloud')!r})",
                   "SkyPilot describes the cluster the task runs on")
        elif probe.getenv("SKYPILOT_CLUSTER_INFO") is not None:
            ev.note("env SKYPILOT_CLUSTER_INFO", "not SkyPilot's JSON with cluster_name and cloud")
        if cls._node_place(probe) is not None:
            ev.add(0.2, "env " + ", ".join(probe.env_fact(v) for v in _NODE_VARS[:2]) + ", SKYPILOT_NODE_IPS",
                   "the node's rank among the task's nodes (SLURM wrappers export these by hand too)")
        if _count(probe.getenv("SKYPILOT_NUM_GPUS_PER_NODE")) is not None:
            ev.add(0.05, "env " + probe.env_fact("SKYPILOT_NUM_GPUS_PER_NODE"), "GPUs SkyPilot reserved per node")
        for name in _CLIENT_VARS:
            if probe.getenv(name) is not None:
                ev.note(f"env {name}", "set where the `sky` client runs (a laptop), not on a cluster")
        return ev.detection()

    @staticmethod
    def _cluster_info(probe: Probe) -> dict[str, object] | None:
        try:
            info = json.loads(probe.getenv("SKYPILOT_CLUSTER_INFO") or "")
        except ValueError:
            return None
        if isinstance(info, dict) and isinstance(info.get("cluster_name"), str) and "cloud" in info:
            return info
        return None

    @staticmethod
    def _node_place(probe: Probe) -> tuple[int, int] | None:
        """``(rank, nodes)`` when SKYPILOT_NODE_RANK, the node list (and SKYPILOT_NUM_NODES,
        which releases before mid-2024 lack) agree."""
        rank = _count(probe.getenv("SKYPILOT_NODE_RANK"))
        ips = [line for line in (probe.getenv("SKYPILOT_NODE_IPS") or "").splitlines() if line.strip()]
        nodes = _count(probe.getenv("SKYPILOT_NUM_NODES"))
        if rank is None or not ips or (nodes is not None and nodes != len(ips)) or rank >= len(ips):
            return None
        return rank, len(ips)

    @property
    def managed(self) -> bool:
        """Whether this task belongs to a managed job (recovered onto a new cluster after a
        preemption): its task id says ``sky-managed-`` or the controller set its job id."""
        task = (self.probe.getenv(TASK_ID) or "").strip()
        return task.startswith("sky-managed-") or _count(self.probe.getenv("SKYPILOT_MANAGED_JOB_ID")) is not None

    def run_folder(self) -> str | None:
        """The folder of this run under the persistent storage: named after ``SKYPILOT_TASK_ID``
        in a managed job, unless ``PORTARUN_PROJECT`` names the project; else ``None``."""
        task = (self.probe.getenv(TASK_ID) or "").strip()
        if not self.managed or not _TASK_ID.fullmatch(task) or self.probe.getenv("PORTARUN_PROJECT"):
            return None
        return project_folder(task)

    def locations(self, project: str) -> HostLocations:
        home = self.probe.home
        warning = None
        if self.managed and not self.probe.getenv("PORTARUN_PERSIST_DIR"):
            warning = ("This SkyPilot managed job keeps portarun's persist and checkpoints folders on the "
                       "cluster's disk, which a recovery after a preemption does not keep. Mount a bucket in the "
                       "task's file_mounts (mode: MOUNT) and set PORTARUN_PERSIST_DIR to its path in the task's envs.")
        # input: where SkyPilot syncs the task's workdir (constants.py SKY_REMOTE_WORKDIR, ~/sky_workdir)
        return HostLocations(
            input=home / "sky_workdir", scratch=self.probe.path("/tmp") / "portarun-scratch",
            output=home / "portarun" / project / "outputs", persist=home / "portarun", cache=home / ".cache",
            persist_warning=warning,
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "SkyPilot clusters and managed jobs run until they finish or are stopped")


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(SkyPilotProvider)


@hookimpl
def portarun_resolve_paths(provider: Provider, project: str) -> Paths | None:
    """A managed job's paths under its run folder (:meth:`SkyPilotProvider.run_folder`), also
    inside a ``PORTARUN_PERSIST_DIR`` bucket shared by several jobs; ``None`` (portarun's own
    paths) otherwise."""
    if not isinstance(provider, SkyPilotProvider):
        return None
    run = provider.run_folder()
    if run is None:
        return None
    paths = resolve(provider, run)
    if not provider.probe.getenv("PORTARUN_PERSIST_DIR"):
        return paths
    persist = join(paths.persist, run)
    checkpoints = (paths.checkpoints if provider.probe.getenv("PORTARUN_CHECKPOINTS_DIR")
                   else join(persist, "checkpoints"))
    return replace(paths, persist=persist, checkpoints=checkpoints)
