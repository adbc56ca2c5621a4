"""Databricks notebooks and jobs on classic compute (all-purpose and job clusters).

Markers:

- ``DATABRICKS_RUNTIME_VERSION``: the Databricks Runtime version, "set automatically on
  Databricks notebooks" and "expected to be set by Databricks on all the nodes"
  (NVIDIA/cudf-spark pull request #8256); MLflow's ``is_in_databricks_runtime`` reads it
  (mlflow/mlflow pull request #5752). Databricks Container Services images declare it with
  ``ENV`` too (github-file-id:47228677), so an image run anywhere carries it: +0.30, not a match
  alone. Databricks Connect users export ``DATABRICKS_RUNTIME_VERSION=connect`` on laptops
  (github-file-id:61775001098): noted, never counted. Values that are not a version number
  (``client.1.13``, a "client runtime string" in github-file-id:52641181427; ``1``, set on
  developer machines to install the Databricks CLI, github-file-id:53122731431) are no cluster
  runtime whose file layout portarun knows: noted.
- ``DB_CLUSTER_ID``, ``DB_CONTAINER_IP``, ``DB_IS_DRIVER``, ``DB_DRIVER_IP``,
  ``DB_INSTANCE_TYPE``, ``DB_CLUSTER_NAME``, ``DB_IS_JOB_CLUSTER``: set by Databricks on the
  cluster, and "You cannot override these predefined environment variables"
  (https://learn.microsoft.com/azure/databricks/init-scripts/environment-variables,
  https://docs.databricks.com/init-scripts/environment-variables.html). +0.30.
- ``DATABRICKS_CLUSTER_LIBS_R_ROOT_DIR`` / ``DEFAULT_DATABRICKS_ROOT_VIRTUALENV_ENV``: in the
  environment of a blank Databricks notebook (kedro-org/kedro issue #1729, 2022-07-27);
  runtime images set such variables too (databricks/containers pull request #13). +0.10.
- ``dbruntime`` importable: the package the Databricks Runtime puts in its Python shell
  (``/databricks/python_shell/dbruntime``). Databricks' own SDK takes a successful
  ``from dbruntime import UserNamespaceInitializer`` as proof of "a classic Databricks runtime"
  and reads the notebook's credentials from it
  (databricks/databricks-sdk-py@9ae2241564f93eec8b747514cdef56439f77a077:databricks/sdk/runtime/__init__.py);
  it is on no package index and not in Container Services images (databricks/containers@d40d6b0d
  has no mention of it). A traceback from a cluster shows it and nothing else Databricks sets
  (tests/fixtures/hosts/databricks-vscode-cluster-traceback-2022.json). +0.5, a match alone.
- ``/dbfs``: the DBFS FUSE mount of cluster nodes ("DBFS mounts and DBFS root",
  https://docs.databricks.com/aws/files). +0.15.
- ``/local_disk0``: the driver's ephemeral local disk; the notebook above runs its JVM with
  ``-Djava.io.tmpdir=/local_disk0``. +0.10.
- ``/databricks/python3``: the runtime's virtualenv, also in Container Services images: noted.
- ``DATABRICKS_HOST``, ``DATABRICKS_TOKEN``, ``DATABRICKS_CLUSTER_ID``: Databricks Connect and
  the SDK read them on laptops; credentials never count: noted.

Paths: Unity Catalog volumes are reached as ``/Volumes/<catalog>/<schema>/<volume>`` and DBFS as
``/dbfs`` (https://docs.databricks.com/aws/files); the driver's "ephemeral storage" goes with the
cluster. portarun cannot guess which volume is yours, so persist defaults to ``/dbfs/portarun``
and the README tells users to point ``PORTARUN_PERSIST_DIR`` at a volume; scratch and cache live
on ``/local_disk0``. Session: clusters run until terminated (auto-termination is a cluster
setting), so no limit.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

RUNTIME_VERSION = "DATABRICKS_RUNTIME_VERSION"
CLUSTER_VARS = ("DB_CLUSTER_ID", "DB_CONTAINER_IP", "DB_IS_DRIVER", "DB_DRIVER_IP", "DB_INSTANCE_TYPE",
                "DB_CLUSTER_NAME", "DB_IS_JOB_CLUSTER")
RUNTIME_ENV_VARS = ("DATABRICKS_CLUSTER_LIBS_R_ROOT_DIR", "DEFAULT_DATABRICKS_ROOT_VIRTUALENV_ENV")
CLIENT_VARS = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLUSTER_ID")
DBFS = "/dbfs"
VOLUMES = "/Volumes"
LOCAL_DISK = "/local_disk0"
RUNTIME_PACKAGE = "dbruntime"
_VERSION = re.compile(r"\d+\.\d+")


class DatabricksProvider(Provider):
    """A Databricks notebook or job running on a classic cluster's driver."""

    name = "databricks"
    display_name = "Databricks"
    marker_modules = (RUNTIME_PACKAGE,)

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        version = probe.getenv(RUNTIME_VERSION)
        if version and _VERSION.match(version):
            ev.add(0.3, f"env {RUNTIME_VERSION}={version}",
                   "the Databricks Runtime version; Container Services images declare it too")
        elif version == "connect":
            ev.note(f"env {RUNTIME_VERSION}=connect", "exported on laptops for Databricks Connect; not evidence")
        elif version:
            ev.note(f"env {RUNTIME_VERSION}={version}",
                    "not a cluster runtime version: a client runtime or a flag set by hand; not counted")
        else:
            ev.missing(f"env {RUNTIME_VERSION}, which Databricks sets on every cluster node")
        if probe.has_module(RUNTIME_PACKAGE):
            ev.add(0.5, f"module {RUNTIME_PACKAGE} importable",
                   "the Databricks Runtime's own Python shell package; Databricks' SDK takes it as proof of a cluster")
        cluster = [v for v in CLUSTER_VARS if probe.getenv(v)]
        if cluster:
            ev.add(0.3, "env " + ", ".join(cluster), "set by Databricks on the cluster; users cannot override them")
        runtime_env = [v for v in RUNTIME_ENV_VARS if probe.getenv(v)]
        if runtime_env:
            ev.add(0.1, "env " + ", ".join(runtime_env), "the runtime's environment, also set by its images")
        if probe.is_dir(DBFS):
            ev.add(0.15, f"folder {DBFS}", "the DBFS FUSE mount of cluster nodes")
        if probe.is_dir(LOCAL_DISK):
            ev.add(0.1, f"folder {LOCAL_DISK}", "the driver's ephemeral local disk")
        if probe.is_dir("/databricks/python3"):
            ev.note("folder /databricks/python3",
                    "the runtime's virtualenv, also in Container Services images; not counted")
        client = [v for v in CLIENT_VARS if probe.getenv(v)]
        if client:
            ev.note("env " + ", ".join(client) + " set",
                    "Databricks Connect and the SDK read them on laptops; not evidence")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        local = p(LOCAL_DISK) if self.probe.is_dir(LOCAL_DISK) else p("/tmp")
        persist = p(DBFS) / "portarun"
        warning = None
        if not self.probe.is_dir(DBFS):
            persist = local / "portarun"
            warning = (
                f"This Databricks cluster has no DBFS mount at {DBFS} "
                "(shared or serverless access modes can hide it), so portarun's persist and checkpoints "
                "folders are on the driver's disk, which is lost when the cluster terminates. "
                "Set PORTARUN_PERSIST_DIR to a Unity Catalog volume, "
                "/Volumes/<catalog>/<schema>/<volume>/portarun."
            )
        return HostLocations(
            input=p(VOLUMES) if self.probe.is_dir(VOLUMES) else p(DBFS),
            scratch=local / "portarun-scratch",
            output=persist / project / "outputs",
            persist=persist,
            cache=local / "portarun-cache",
            persist_warning=warning,
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "Databricks clusters run until terminated; auto-termination is a cluster setting")


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(DatabricksProvider)
