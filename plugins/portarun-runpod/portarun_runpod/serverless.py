"""RunPod serverless workers: containers RunPod starts per endpoint to take jobs from a queue.

Evidence, weighed as docs/hosts.md says (what the platform injects into the worker outweighs
what an image or a client carries; independent markers add up; credentials never count):

- ``RUNPOD_WEBHOOK_GET_JOB`` (0.40): the job-queue URL RunPod gives every worker. The runpod SDK
  runs as a worker only when it is set (``_is_local`` in ``runpod.serverless``: "Returns True if
  the worker is running locally" when it is ``None``, github-file-id:16844479803). People also
  set it by hand to test an image locally (``docker run -e RUNPOD_WEBHOOK_GET_JOB='{"input":
  ...}'``, github-file-id:51946259776), so alone it stays below a match.
- ``RUNPOD_WEBHOOK_POST_OUTPUT`` / ``_POST_STREAM`` / ``_PING`` (0.20): the rest of the worker's
  webhook contract (runpod-python's serverless worker docs, github-file-id:41804988093, and its
  ``WorkerAdapter`` test environment, github-file-id:42178667463).
- ``RUNPOD_POD_ID`` with the job webhook (0.10): the worker's id, the SDK's ``WORKER_ID``
  (github-file-id:12286954681). Without the webhook it is the pod provider's marker.
- ``RUNPOD_ENDPOINT_ID`` with the job webhook (0.10): the endpoint the worker serves. Alone it is
  the setting every endpoint *client* keeps in its ``.env`` (github-file-id:52893426974).
- ``RUNPOD_DC_ID`` (0.25): the data centre, set by RunPod in pods and workers (RunPod's pod
  variable reference; a live worker reported ``RUNPOD_DC_ID=EU-CZ-1``,
  github-file-id:55218649562). vLLM names the cloud ``RUNPOD`` from it alone
  (``env_to_cloud_provider`` in vLLM's usage stats, github-file-id:27531865).
- folder ``/runpod-volume`` (0.15): where a worker's network volume is mounted ("When attached,
  it's mounted at /runpod-volume", RunPod's storage docs, github-file-id:11567098535). Weak:
  worker images tested locally mount a folder there (github-file-id:55041139097).
- ``RUNPOD_VOLUME_ID`` (0.10): the attached volume's id (RunPod's pod variable reference); also a
  client setting on laptops that launch pods (github-file-id:52094716893).

Never evidence: ``RUNPOD_AI_API_KEY`` and ``RUNPOD_API_KEY`` (credentials), module ``runpod``
(the SDK, installed by every client).

Paths: the network volume at ``/runpod-volume`` is "persistent storage accessible across
workers"; the container disk is "wiped when the worker stops" (github-file-id:11567098535). A
worker without a volume gets persist on the container disk and a warning, like Colab without
Drive. Session: a worker runs while its endpoint has work; the idle and execution timeouts are
endpoint settings portarun cannot read (https://docs.runpod.io/serverless/endpoints).
"""
from __future__ import annotations

from collections.abc import Mapping

from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Preset, Provider, SessionLimits

VOLUME = "/runpod-volume"
JOB_WEBHOOK = "RUNPOD_WEBHOOK_GET_JOB"
_CONTRACT_VARS = ("RUNPOD_WEBHOOK_POST_OUTPUT", "RUNPOD_WEBHOOK_POST_STREAM", "RUNPOD_WEBHOOK_PING")
_CREDENTIALS = ("RUNPOD_AI_API_KEY", "RUNPOD_API_KEY")


class RunPodServerlessProvider(Provider):
    """A RunPod serverless worker (queue-based endpoint)."""

    name = "runpod-serverless"
    display_name = "RunPod serverless worker"
    #: The SDK every worker and every client imports; noted, never counted. Listed so that a
    #: simulation decides whether it is importable instead of this machine.
    marker_modules = ("runpod",)

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        worker = bool(probe.getenv(JOB_WEBHOOK))
        if worker:
            ev.add(0.4, f"env {JOB_WEBHOOK}", "the job queue RunPod gives every worker; the runpod SDK's worker switch")
        else:
            ev.missing(f"env {JOB_WEBHOOK}")
        contract = [v for v in _CONTRACT_VARS if probe.getenv(v)]
        if contract:
            ev.add(0.2, "env " + ", ".join(contract), "the rest of the worker's webhook contract")
        if worker and probe.getenv("RUNPOD_POD_ID"):
            ev.add(0.1, "env RUNPOD_POD_ID with the job webhook", "the worker's id")
        if probe.getenv("RUNPOD_ENDPOINT_ID"):
            if worker:
                ev.add(0.1, "env RUNPOD_ENDPOINT_ID with the job webhook", "the endpoint this worker serves")
            else:
                ev.note("env RUNPOD_ENDPOINT_ID alone", "what every endpoint client sets; not counted")
        if probe.getenv("RUNPOD_DC_ID"):
            ev.add(0.25, "env " + probe.env_fact("RUNPOD_DC_ID"), "the data centre RunPod runs this container in")
        if probe.is_dir(VOLUME):
            ev.add(0.15, f"folder {VOLUME}", "a worker's network volume; also mounted by local worker tests")
        if probe.getenv("RUNPOD_VOLUME_ID"):
            ev.add(0.1, "env RUNPOD_VOLUME_ID", "the attached volume's id; also a client setting")
        credentials = [v for v in _CREDENTIALS if probe.getenv(v)]
        if credentials:
            ev.note("env " + ", ".join(credentials) + " set", "credentials; not evidence")
        if probe.has_module("runpod"):
            ev.note("module runpod", "the SDK, installed by every client; not evidence")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        scratch = p("/tmp") / "portarun-scratch"
        if self.probe.is_dir(VOLUME):
            volume = p(VOLUME)
            return HostLocations(
                input=volume, scratch=scratch, output=volume / "portarun" / project / "outputs",
                persist=volume / "portarun", cache=volume / ".cache",
            )
        disk = p("/tmp") / "portarun"
        warning = (
            f"This RunPod serverless worker has no network volume at {VOLUME}, so portarun's persist and "
            "checkpoints folders are on the container disk, which is wiped when the worker stops. Attach a "
            f"network volume to the endpoint (workers mount it at {VOLUME}), or set PORTARUN_PERSIST_DIR to a "
            "bucket URL."
        )
        return HostLocations(
            input=disk, scratch=scratch, output=disk / project / "outputs", persist=disk,
            cache=p("/tmp") / "portarun-cache", persist_warning=warning,
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(
            None,
            "RunPod serverless workers run while their endpoint has jobs; the idle and execution timeouts are "
            "endpoint settings (set PORTARUN_SESSION_LIMIT to match them)",
        )

    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        # runpod-python's own WorkerAdapter test environment (github-file-id:42178667463), in a
        # data centre with the endpoint's network volume attached at /runpod-volume.
        env = {"RUNPOD_POD_ID": "test-pod-123", "RUNPOD_GPU_TYPE_ID": "RTX4090",
               JOB_WEBHOOK: "https://api.runpod.ai/fetch/$RUNPOD_POD_ID?gpu=$RUNPOD_GPU_TYPE_ID",
               "RUNPOD_WEBHOOK_POST_OUTPUT": "https://api.runpod.ai/result/$RUNPOD_POD_ID/$ID?gpu=$RUNPOD_GPU_TYPE_ID",
               "RUNPOD_WEBHOOK_PING": "https://api.runpod.ai/ping/$RUNPOD_POD_ID?gpu=$RUNPOD_GPU_TYPE_ID",
               "RUNPOD_ENDPOINT_ID": "ep", "RUNPOD_AI_API_KEY": "worker-key", "RUNPOD_DC_ID": "EU-RO-1",
               "RUNPOD_VOLUME_ID": "vol"}
        return {"runpod-serverless": Preset(env=env, paths=(VOLUME,), modules=("runpod",), kernel=False)}
