"""Saturn Cloud resources: Jupyter and R workspaces, jobs and deployments, each a Docker
container running as ``jovyan``.

Markers:

- ``SATURN_IS_INTERNAL``: Saturn's own client, dask-saturn, treats a process as "external to
  Saturn" unless this variable is ``true`` (``Settings.is_external``, github-file-id:6090586302):
  Saturn sets it inside its resources. +0.35 for ``true``.
- ``SATURN_RESOURCE_TYPE``: "the resource that the cluster will attach to", ``SingleUserServer``
  by default or a Prefect flow (the same file). +0.15.
- ``SATURN_VERSION``: the Saturn release, which dask-saturn reads "if included"
  (github-file-id:6262892988). +0.10.
- ``SATURN_JOB_SCALE``, ``SATURN_JOB_RANK``, ``SATURN_JOB_RUN``, ``SATURN_JOB_LEADER``,
  ``SATURN_INTERNAL_SUBDOMAIN``, ``SATURN_NAMESPACE``: "On Saturn Cloud, every job pod gets these
  environment variables for free"; "populated for you when you use Saturn Cloud Jobs"
  (saturncloud/documentation@efa73a9c9e7a1707af1e96fbe39547befed1bd74:docs/user-guide/how-to/llms/parallel_training.md;
  tests/fixtures/hosts/saturn-docs-job-pod-variables.json). Saturn's job controller sets them
  together and nothing else uses their names: three or more +0.5, a match alone; fewer +0.2.
- ``/home/jovyan/workspace``: saturn-client's ``WORKING_DIRECTORY`` (github-file-id:149046019);
  ``jovyan`` is the Jupyter Docker Stacks user, so other images have ``/home/jovyan``: +0.10.
- ``SATURN_BASE_URL`` and ``SATURN_TOKEN``: Saturn's docs tell users to set both "in the client
  machine" to reach a Saturn Dask cluster from a laptop, Colab or SageMaker
  (saturncloud/documentation@0020b6f1bee9a15039e72e8ba6bd937479a5cbee:docs/user-guide/integrations/external_connect.md):
  noted, never counted; the token is a credential.

Paths: "Every workspace gets a persistent EBS volume attached, so that anything users write to
the home directory is preserved across restarts"
(saturncloud/documentation@0d7d479441c432bc5897b9f3a4345f65d399d59a:docs/user-guide/concepts/resources.md),
so persist, outputs and caches live under ``/home/jovyan``. The same page says that only of
workspaces: a resource whose type is known and is not a Jupyter server, or a job pod, gets a
warning. Session:
Jupyter servers shut down after a chosen idle period ("auto-shutoff", 1 hour by default,
``docs/user-guide/how-to/access/autoshutoff.md``), which is not a session limit: none.
"""
from __future__ import annotations

from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

INTERNAL = "SATURN_IS_INTERNAL"
RESOURCE_TYPE = "SATURN_RESOURCE_TYPE"
JUPYTER_SERVER = "SingleUserServer"
VERSION = "SATURN_VERSION"
HOME = "/home/jovyan"
WORKSPACE = f"{HOME}/workspace"
CLIENT_VARS = ("SATURN_BASE_URL", "SATURN_TOKEN")
JOB_VARS = ("SATURN_JOB_SCALE", "SATURN_JOB_RANK", "SATURN_JOB_RUN", "SATURN_JOB_LEADER", "SATURN_INTERNAL_SUBDOMAIN",
            "SATURN_NAMESPACE")


class SaturnProvider(Provider):
    """A Saturn Cloud Jupyter server, job or deployment."""

    name = "saturn"
    display_name = "Saturn Cloud"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        internal = (probe.getenv(INTERNAL) or "").lower()
        if internal == "true":
            ev.add(0.35, f"env {INTERNAL}=true", "Saturn sets it inside its resources; dask-saturn reads it")
        elif internal:
            ev.note(f"env {INTERNAL}={internal}", "dask-saturn takes this for a client outside Saturn")
        else:
            ev.missing(f"env {INTERNAL}=true, set inside Saturn Cloud resources")
        if probe.getenv(RESOURCE_TYPE):
            ev.add(0.15, "env " + probe.env_fact(RESOURCE_TYPE), "the kind of Saturn resource this is")
        if probe.getenv(VERSION):
            ev.add(0.1, "env " + probe.env_fact(VERSION), "the Saturn release dask-saturn reads")
        job = [v for v in JOB_VARS if probe.getenv(v)]
        if job:
            ev.add(0.5 if len(job) >= 3 else 0.2, "env " + ", ".join(job),
                   "Saturn sets these in every job pod; nothing else uses their names")
        if probe.is_dir(WORKSPACE):
            ev.add(0.1, f"folder {WORKSPACE}", "saturn-client's working directory; jovyan is a common image user")
        client = [v for v in CLIENT_VARS if probe.getenv(v)]
        if client:
            ev.note("env " + ", ".join(client) + " set",
                    "Saturn's docs set them on laptops to reach its Dask clusters; not evidence")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        home = p(HOME)
        kind = self.probe.getenv(RESOURCE_TYPE)
        warning = None
        if not kind and any(self.probe.getenv(v) for v in JOB_VARS):
            kind = "job"
        if kind and kind != JUPYTER_SERVER:
            warning = (
                f"This Saturn Cloud resource is a {kind}, not a Jupyter server: Saturn documents a persistent home "
                f"volume for workspaces only, so portarun's persist and checkpoints folders under {HOME} may not "
                "outlive this run. Set PORTARUN_PERSIST_DIR to a shared folder or a bucket URL."
            )
        return HostLocations(
            input=p(WORKSPACE) if self.probe.is_dir(WORKSPACE) else home,
            scratch=p("/tmp") / "portarun-scratch",
            output=home / "portarun" / project / "outputs",
            persist=home / "portarun",
            cache=home / ".cache",
            persist_warning=warning,
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "Saturn Cloud's auto-shutoff stops idle Jupyter servers; it is not a session limit")


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(SaturnProvider)
