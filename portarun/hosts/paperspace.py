"""Paperspace Gradient Notebooks.

Markers (sources in docs/reference/host-evidence.md §3; ``corpus`` names a fixture in
tests/fixtures/hosts):

- ``PAPERSPACE_NOTEBOOK_REPO_ID``: Gradient notebooks. A match on its own (0.5): zenml takes it
  alone as proof of a Gradient process (zenml-io/zenml@46538c61 ``src/zenml/environment.py``
  ``in_paperspace_gradient``, corpus paperspace-zenml-gradient-rule), so does ploomber's
  telemetry (``is_paperspace``, github-file-id:3033223112), and a notebook's startup command finds
  its own notebook by it (AIBI0131/Antigravity@f509cc67 ``paperspace-automation/startup.sh``,
  corpus paperspace-notebook-command-startup-script). No laptop or CI source sets it: tools
  driving Gradient from outside export ``PAPERSPACE_NOTEBOOK_ID`` instead (corpus
  neg-laptop-paperspace-*, neg-gha-paperspace-notebook-watchdog). An empty value is not counted
  (a container given ``${PAPERSPACE_NOTEBOOK_REPO_ID:-}`` off Gradient, corpus
  neg-docker-comfyui-paperspace-fqdn-fallback).
- ``PAPERSPACE_NOTEBOOK_ID`` and ``PAPERSPACE_FQDN`` (``<id>.<cluster>.paperspacegradient.com``):
  Gradient notebooks (Graphcore's GCLogger reads them). The FQDN counts only by its value: the
  name alone is given ``hostname -f`` by scripts run off Gradient (same docker fixture).
- ``PAPERSPACE_METRIC_WORKLOAD_ID``: the Gradient workload's id; Graphcore's Gradient notebook
  scripts stop the running notebook with ``gradient notebooks stop --id
  ${PAPERSPACE_METRIC_WORKLOAD_ID}`` and quote it as the "Notebook ID" for support (corpus
  paperspace-gradient-graphcore-setup, paperspace-graphcore-ipu-notebook-launch). Medium.
- ``PAPERSPACE_CLUSTER_ID``: also set in Paperspace's own infrastructure pods (the cluster
  autoscaler, corpus neg-paperspace-cluster-autoscaler-pod). Weak.
- ``PAPERSPACE_NOTEBOOK_ID`` alone is typed into laptops' shells to drive the API (corpus
  neg-laptop-paperspace-*), so it stays below the threshold on its own.
- ``/notebooks`` (notebook files) and ``/storage`` (persistent team storage): generic names, and
  Paperspace Core VMs mount the team's ``/storage`` too (Paperspace/Docs@35078fda
  ``data/storage/managing-data-in-gradient/managing-persistent-storage-with-vms.md``, corpus
  neg-paperspace-core-vm-storage-mount-docs). Weak.
  ``/datasets`` is not counted at all: Deepnote mounts ``/datasets/_deepnote_work``.
- ``PAPERSPACE_API_KEY`` / ``PS_API_KEY``: credentials on laptops and CI. Never evidence, although
  Gradient notebooks get ``PS_API_KEY`` too (Paperspace/Docs@35078fda ``notebooks/about.md``).
  Other ``PAPERSPACE_*`` names (the CLI's ``PAPERSPACE_CONFIG_*``, corpus
  neg-paperspace-gradient-cli-docker-image) are not read.

Paths: ``/storage`` persists, ``/notebooks`` holds notebook files, ``/datasets`` is read-only
(https://paperspace.gitbook.io/gradient/explore-train-deploy/notebooks/file-organization).
Session: free tier auto-shuts down after 6 hours (Paperspace/Docs ``instances/free-instances.md``
@07a119de, HOSTS.md [P1]); paid tiers are configurable, so override with PORTARUN_SESSION_LIMIT.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from ..hookspecs import Register, hookimpl
from ..probe import Probe
from ..provider import Detection, Evidence, HostLocations, Preset, Provider, SessionLimits


class PaperspaceProvider(Provider):
    """Paperspace Gradient Notebooks."""

    name = "paperspace"
    display_name = "Paperspace Gradient"
    # Each (6-hour) session starts the notebook container afresh; only /storage, /notebooks persist (HOSTS.md [P1][P2]).
    session_per_container = True

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.getenv("PAPERSPACE_NOTEBOOK_REPO_ID"):
            ev.add(0.5, "env PAPERSPACE_NOTEBOOK_REPO_ID", "set in Gradient notebooks; proof on its own")
        else:
            ev.missing("PAPERSPACE_NOTEBOOK_REPO_ID (set in Gradient notebooks)")
        if probe.getenv("PAPERSPACE_METRIC_WORKLOAD_ID"):
            ev.add(0.4, "env PAPERSPACE_METRIC_WORKLOAD_ID", "the Gradient workload's id, set by Gradient")
        if probe.getenv("PAPERSPACE_NOTEBOOK_ID"):
            ev.add(0.25, "env PAPERSPACE_NOTEBOOK_ID", "set in Gradient notebooks")
        if (probe.getenv("PAPERSPACE_FQDN") or "").endswith("paperspacegradient.com"):
            ev.add(0.2, "env " + probe.env_fact("PAPERSPACE_FQDN"), "the notebook's Gradient host name")
        if probe.getenv("PAPERSPACE_CLUSTER_ID"):
            ev.add(0.1, "env PAPERSPACE_CLUSTER_ID", "weak: Paperspace infrastructure pods set it too")
        for folder in ("/notebooks", "/storage"):
            if probe.is_dir(folder):
                ev.add(0.1, f"folder {folder}", "Gradient's layout, but a generic name")
        for var in ("PAPERSPACE_API_KEY", "PS_API_KEY"):
            if probe.getenv(var):
                ev.note(f"env {var} set", "API credential, present on laptops and CI; not evidence")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        return HostLocations(
            input=p("/datasets"), scratch=p("/tmp") / "portarun-scratch", output=p("/notebooks"),
            persist=p("/storage") / "portarun", cache=p("/storage") / ".cache",
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(timedelta(hours=6), "Paperspace free tier: auto-shutdown after 6 hours")

    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        # A Gradient notebook's variables and folders (docs/reference/host-evidence.md).
        return {"paperspace": Preset(
            env={"HOME": "/root", "PAPERSPACE_NOTEBOOK_REPO_ID": "r1x2y3z", "PAPERSPACE_NOTEBOOK_ID": "n8mwcw7u7e",
                 "PAPERSPACE_FQDN": "n8mwcw7u7e.clg07azjl.paperspacegradient.com",
                 "PAPERSPACE_CLUSTER_ID": "clg07azjl"},
            paths=("/notebooks", "/storage", "/datasets"))}


@hookimpl
def portarun_register_providers(register: Register) -> None:
    register(PaperspaceProvider)
