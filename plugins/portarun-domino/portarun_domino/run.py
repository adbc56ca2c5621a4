"""Domino Data Lab executions: workspaces and jobs, each a container started for one run of a
project.

Markers: "Domino automatically injects the following environment variables whenever it runs
your code" (Domino's environment-variable pages,
https://docs.dominodatalab.com/en/latest/user_guide/6ac5a1/domino-environment-variables/ and the
"Default Domino Environment Variables Glossary",
https://docs.dominodatalab.com/en/latest/user_guide/55fc89/default-domino-environment-variables-glossary):

- ``DOMINO_RUN_ID`` ("Run ID of the current run"): +0.30.
- ``DOMINO_HARDWARE_TIER_ID`` ("Hardware tier the current run is executing on"): +0.15.
- ``DOMINO_RUN_NUMBER``, ``DOMINO_STARTING_USERNAME`` (the run's number, who began it): +0.10.
- ``DOMINO_WORKING_DIR`` ("Domino sets the DOMINO_WORKING_DIR environment variable for all
  Runs", Domino File System page, https://docs.dominodatalab.com/en/latest/user_guide/de4abb):
  +0.10.
- ``DOMINO_DATASETS_DIR``, ``DOMINO_ARTIFACTS_DIR``, ``DOMINO_IS_GIT_BASED`` (the glossary):
  +0.10.
- ``DOMINO_API_PROXY``: "In Domino 5.4.0 or later, this variable is set inside a Domino run
  container" (python-domino, https://docs.dominodatalab.com/en/5.6/api_guide/c5ef26/the-python-domino-library):
  +0.10.
- ``/domino/datasets`` ("/domino # Contains the datasets directory", the DFS page): +0.10.
- ``DOMINO_PROJECT_NAME``, ``DOMINO_PROJECT_OWNER``, ``DOMINO_API_HOST``, ``DOMINO_USER_API_KEY``,
  ``DOMINO_API_KEY``, ``DOMINO_HOST``: also exported on CI machines and laptops to drive the
  Domino API (github-file-id:48092711758, github-file-id:30337444825): noted; keys never count.
- ``/mnt``: Domino's default working directory, and a standard Linux folder: noted.

Paths: in a Domino File System project the working directory (``/mnt`` by default) is loaded
from the project and "any changes to these files are written back to the Domino File Store as a
new revision" (https://docs.dominodatalab.com/en/6.0/admin_guide/352624/manage-data), with
generated results in ``<working dir>/results``. In a Git-based project the code is in
``/mnt/code``, datasets in ``/mnt/data`` and artifacts in ``/mnt/artifacts``
(https://docs.dominodatalab.com/en/cloud/user_guide/ccaee6/git-based-project-directory-structure),
so persist goes to the artifacts there. Session: no platform limit.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

RUN_ID = "DOMINO_RUN_ID"
TIER = "DOMINO_HARDWARE_TIER_ID"
RUN_VARS = ("DOMINO_RUN_NUMBER", "DOMINO_STARTING_USERNAME")
WORKING_DIR = "DOMINO_WORKING_DIR"
LAYOUT_VARS = ("DOMINO_DATASETS_DIR", "DOMINO_ARTIFACTS_DIR", "DOMINO_IS_GIT_BASED")
API_PROXY = "DOMINO_API_PROXY"
CLIENT_VARS = ("DOMINO_PROJECT_NAME", "DOMINO_PROJECT_OWNER", "DOMINO_API_HOST", "DOMINO_USER_API_KEY",
               "DOMINO_API_KEY", "DOMINO_HOST")
DATASETS = "/domino/datasets"


class DominoProvider(Provider):
    """A Domino workspace or job."""

    name = "domino"
    display_name = "Domino Data Lab"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.getenv(RUN_ID):
            ev.add(0.3, "env " + probe.env_fact(RUN_ID), "the current run's id, injected by Domino")
        else:
            ev.missing(f"env {RUN_ID}, injected into every Domino run")
        if probe.getenv(TIER):
            ev.add(0.15, "env " + probe.env_fact(TIER), "the hardware tier the run executes on")
        run = [v for v in RUN_VARS if probe.getenv(v)]
        if run:
            ev.add(0.1, "env " + ", ".join(run), "the run's number and who started it")
        if probe.getenv(WORKING_DIR):
            ev.add(0.1, "env " + probe.env_fact(WORKING_DIR), "Domino sets it for all runs")
        layout = [v for v in LAYOUT_VARS if probe.getenv(v)]
        if layout:
            ev.add(0.1, "env " + ", ".join(layout), "the run's datasets and artifacts layout")
        if probe.getenv(API_PROXY):
            ev.add(0.1, f"env {API_PROXY}", "set inside Domino run containers since Domino 5.4")
        if probe.is_dir(DATASETS):
            ev.add(0.1, f"folder {DATASETS}", "where Domino mounts datasets")
        client = [v for v in CLIENT_VARS if probe.getenv(v)]
        if client:
            ev.note("env " + ", ".join(client) + " set",
                    "exported on laptops and CI to drive the Domino API; not evidence")
        if probe.is_dir("/mnt"):
            ev.note("folder /mnt", "Domino's default working directory, and a standard Linux folder; not counted")
        return ev.detection()

    def _dir(self, variable: str, default: str) -> Path:
        """The folder ``variable`` names, or ``default`` when it is unset or not an absolute path
        (a value cut off or typed by hand must not send files somewhere relative)."""
        value = self.probe.getenv(variable) or ""
        return self.probe.path(value if value.startswith("/") else default)

    def git_based(self) -> bool:
        """Whether the run belongs to a Git-based project (code in ``/mnt/code``)."""
        flag = (self.probe.getenv("DOMINO_IS_GIT_BASED") or "").lower()
        return flag == "true" or (not flag and self.probe.is_dir("/mnt/code"))

    def locations(self, project: str) -> HostLocations:
        if self.git_based():
            persist = self._dir("DOMINO_ARTIFACTS_DIR", "/mnt/artifacts") / "portarun"
            output = persist / project / "outputs"
            data = self._dir("DOMINO_DATASETS_DIR", "/mnt/data")
        else:
            working = self._dir(WORKING_DIR, "/mnt")
            persist = working / "portarun"
            output = working / "results" / project
            data = self._dir("DOMINO_DATASETS_DIR", DATASETS)
        return HostLocations(
            input=data, scratch=self.probe.path("/tmp") / "portarun-scratch", output=output, persist=persist,
            cache=self.probe.home / ".cache",
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "Domino sets no session limit; runs last until stopped or finished")


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(DominoProvider)
