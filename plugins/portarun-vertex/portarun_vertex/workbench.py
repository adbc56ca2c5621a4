"""Vertex AI Workbench instances: Google Cloud VMs running JupyterLab as the ``jupyter`` user.

Markers:

- ``VERTEX_PRODUCT=WORKBENCH_INSTANCE``: the Vertex AI SDK tells its resource type from this
  variable, ``COLAB_ENTERPRISE`` or ``WORKBENCH_INSTANCE`` (google-cloud-aiplatform's
  ``test_get_resource_type``, github-file-id:683937463); Google's Dataproc Spark Connect client
  labels its caller "workbench" from the same value (``is_workbench()`` in
  ``google/cloud/dataproc_spark_connect/environment.py``, github-file-id:15680157756), and the
  Vertex AI SDK tags its requests ``+environment+WORKBENCH_INSTANCE`` from it alone
  (googleapis/python-aiplatform@d4cae46c1a99474e7e2984968004fa16c099bd5c:google/cloud/aiplatform/initializer.py,
  ``get_resource_type``; tests/fixtures/hosts/vertex-vendor-aiplatform-workbench-instance.json).
  Google's own tools take it alone as a Workbench, and no public material shows it set
  anywhere else, so it is a match alone: +0.5. ``WORKBENCH_CUSTOM_CONTAINER`` (the same SDK's
  third value) is a Workbench instance running the user's own image, whose home folder nothing
  public describes: noted.
- ``/home/jupyter``: the Jupyter user's home on a Workbench instance, whose free space decides
  whether the instance starts (Google's gcpdiag runbook ``CheckWorkbenchInstanceJupyterSpace``,
  github-file-id:13115525138). Other images have a ``jupyter`` user too: +0.15, and
  ``HOME=/home/jupyter`` +0.10.
- ``VERTEX_PRODUCT=COLAB_ENTERPRISE``: Colab Enterprise runtimes, which portarun's built-in
  ``colab`` provider claims (a notebook written for Colab Enterprise keeps its files under
  ``/content`` there, ``HF_HOME=/content/hf``, github-file-id:52320148215). Noted here so that
  one value has one owner.
- ``AIP_*`` (``AIP_MODEL_DIR``, ``AIP_HEALTH_ROUTE``...): Vertex AI training and prediction
  containers, and laptop ``.env`` files that copy them (tests/fixtures/hosts/neg-vertex-*):
  noted. ``GOOGLE_CLOUD_PROJECT`` and ``CLOUD_ML_PROJECT_ID``: set wherever the Google Cloud SDK
  is configured: noted.

Paths: everything lives under ``/home/jupyter``, which survives stopping the instance; ``/tmp``
is for scratch. Session: instances run until stopped; idle shutdown is an instance setting
(``idle-timeout-seconds`` metadata, github-file-id:58082789579), so no limit.
"""
from __future__ import annotations

from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

PRODUCT = "VERTEX_PRODUCT"
WORKBENCH = "WORKBENCH_INSTANCE"
COLAB_ENTERPRISE = "COLAB_ENTERPRISE"
HOME = "/home/jupyter"
_CLOUD_VARS = ("GOOGLE_CLOUD_PROJECT", "CLOUD_ML_PROJECT_ID")


class VertexWorkbenchProvider(Provider):
    """A notebook or script on a Vertex AI Workbench instance."""

    name = "vertex-workbench"
    display_name = "Vertex AI Workbench"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        product = probe.getenv(PRODUCT)
        if product == WORKBENCH:
            ev.add(0.5, f"env {PRODUCT}={WORKBENCH}", "the instance type the Vertex AI SDK reads")
        elif product == COLAB_ENTERPRISE:
            ev.note(f"env {PRODUCT}={COLAB_ENTERPRISE}", "a Colab Enterprise runtime: the colab provider's")
        elif product:
            ev.note(f"env {PRODUCT}={product}", "not a Workbench instance")
        else:
            ev.missing(f"env {PRODUCT}={WORKBENCH}, set on Workbench instances")
        if probe.is_dir(HOME):
            ev.add(0.15, f"folder {HOME}", "the Jupyter user's home on a Workbench instance; other images have one too")
        if probe.getenv("HOME") == HOME:
            ev.add(0.1, f"env HOME={HOME}", "the kernel runs as Workbench's jupyter user")
        aip = sorted(name for name in probe.env if name.startswith("AIP_"))
        if aip:
            ev.note("env " + ", ".join(aip),
                    "Vertex AI training or prediction containers, or a laptop's copy; not a Workbench")
        cloud = [v for v in _CLOUD_VARS if probe.getenv(v)]
        if cloud:
            ev.note("env " + ", ".join(cloud), "set wherever the Google Cloud SDK is configured; not evidence")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        home = p(HOME)
        return HostLocations(
            input=home, scratch=p("/tmp") / "portarun-scratch",
            output=home / "portarun" / project / "outputs", persist=home / "portarun",
            cache=home / ".cache",
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "Workbench instances run until stopped; idle shutdown is an instance setting")


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(VertexWorkbenchProvider)
