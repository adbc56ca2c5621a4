"""Azure Machine Learning compute instances: single-user VMs running Jupyter, JupyterLab and
VS Code as ``azureuser``, with the workspace's file share mounted under ``~/cloudfiles``.

Markers:

- ``CI_NAME``, ``CI_RESOURCE_GROUP``, ``CI_WORKSPACE``, ``CI_LOCAL_UBUNTU_USER`` (which "points
  to azureuser"): the compute instance's own variables (Azure ML's "Customize the compute
  instance with a script" page, MicrosoftDocs/azure-docs, github-file-id:4250971073); workshop
  code reads ``CI_RESOURCE_GROUP`` and ``CI_WORKSPACE`` from a notebook on the instance ("Get AML
  compute instance env vars", github-file-id:47088784963). Two or more: +0.35; one alone: +0.10
  (``CI_*`` names are common in build systems).
- ``APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance``: Microsoft's msticpy decides "running in
  Azure Machine Learning" from exactly this value (``is_in_aml()`` in
  ``msticpy/init/azure_ml_tools.py``, github-file-id:6365045185; its tests set it "to emulate
  AML", github-file-id:13914538110). +0.25 for that value only: App Service sets the variable
  with its site name, and Azure CLI users set it to dummy values in containers
  (github-file-id:35089907760).
- ``/mnt/azmnt/.nbvm``: the instance's VM metadata file (``instance=``, ``domainsuffix=``), which
  the same msticpy module reads to build the instance's address. +0.25.
- ``MLFLOW_TRACKING_URI=azureml://...``: the workspace's MLflow tracking, from which the workshop
  code above takes the subscription id; Azure ML jobs get it too. +0.10.
- ``/home/azureuser/cloudfiles/code``: the workspace file share, where VS Code sessions on an
  instance open ("typically ~/cloudfiles/code/", microsoft/vscode-tools-for-ai issue #2640) and
  setup scripts run from (``/home/azureuser/cloudfiles/code/Users/<user>``, the page above).
  +0.15.
- ``/mnt/batch/tasks/shared/LS_root/mounts/clusters``: the same share's mount on the instance
  (``.../clusters/<instance>/code/setup.sh`` in Azure/azure-cli issue #31838). +0.15.
- ``AZUREML_RUN_ID``, ``AZUREML_COMPUTE_NAME``, ``AML_COMPUTE_TARGET``: Azure ML *job*
  containers, and feature flags on other machines (tests/fixtures/hosts/neg-azureml-*): noted;
  this provider is about compute instances.

Paths: the file share is the workspace's storage, not the instance's disk (the "user's shared
storage directory", issue #2640 above), so persist and outputs go there; caches stay on the instance's own disk and
scratch in ``/tmp``. Session: instances run until stopped (idle shutdown and schedules are
instance settings), so no limit.
"""
from __future__ import annotations

from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

INSTANCE_VARS = ("CI_NAME", "CI_RESOURCE_GROUP", "CI_WORKSPACE", "CI_LOCAL_UBUNTU_USER")
SITE_NAME = "APPSETTING_WEBSITE_SITE_NAME"
SITE = "AMLComputeInstance"
JOB_VARS = ("AZUREML_RUN_ID", "AZUREML_COMPUTE_NAME", "AML_COMPUTE_TARGET")
HOME = "/home/azureuser"
SHARE = f"{HOME}/cloudfiles/code"
MOUNTS = "/mnt/batch/tasks/shared/LS_root/mounts/clusters"
NBVM = "/mnt/azmnt/.nbvm"


class AzureMLComputeInstanceProvider(Provider):
    """A notebook, terminal or VS Code session on an Azure ML compute instance."""

    name = "azureml"
    display_name = "Azure Machine Learning compute instance"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        instance = [v for v in INSTANCE_VARS if probe.getenv(v)]
        if len(instance) >= 2:
            ev.add(0.35, "env " + ", ".join(probe.env_fact(v) for v in instance),
                   "the compute instance's own variables")
        elif instance:
            ev.add(0.1, "env " + probe.env_fact(instance[0]),
                   "one compute-instance variable; CI_* names are common elsewhere")
        else:
            ev.missing("env CI_NAME, CI_RESOURCE_GROUP, CI_WORKSPACE, set on every compute instance")
        site = probe.getenv(SITE_NAME)
        if site == SITE:
            ev.add(0.25, f"env {SITE_NAME}={SITE}", "the compute instance's site name")
        elif site:
            ev.note(f"env {SITE_NAME} set", "App Service's site name, or a dummy for the Azure CLI; not an instance")
        if probe.is_file(NBVM):
            ev.add(0.25, f"file {NBVM}", "the compute instance's VM metadata")
        if (probe.getenv("MLFLOW_TRACKING_URI") or "").startswith("azureml://"):
            ev.add(0.1, "env MLFLOW_TRACKING_URI=azureml://...", "the workspace's MLflow tracking; jobs get it too")
        if probe.is_dir(SHARE):
            ev.add(0.15, f"folder {SHARE}", "the workspace file share on a compute instance")
        if probe.is_dir(MOUNTS):
            ev.add(0.15, f"folder {MOUNTS}", "the file share's mount on a compute instance")
        jobs = [v for v in JOB_VARS if probe.getenv(v)]
        if jobs:
            ev.note("env " + ", ".join(jobs),
                    "Azure ML job containers, or flags on other machines; not a compute instance")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        share = p(SHARE)
        persist = share / "portarun"
        warning = None
        if not self.probe.is_dir(SHARE):
            persist = p(HOME) / "portarun"
            warning = (
                f"This Azure ML compute instance shows no workspace file share at {SHARE}, so portarun's persist and "
                "checkpoints folders are on the instance's own disk, which is lost when the instance is deleted. "
                "Mount the share or set PORTARUN_PERSIST_DIR to a datastore or blob URL."
            )
        return HostLocations(
            input=share if self.probe.is_dir(SHARE) else p(HOME),
            scratch=p("/tmp") / "portarun-scratch",
            output=persist / project / "outputs",
            persist=persist,
            cache=p(HOME) / ".cache",
            persist_warning=warning,
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "compute instances run until stopped; "
                                   "idle shutdown and schedules are instance settings")


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(AzureMLComputeInstanceProvider)
