"""Kaggle Notebooks (interactive editor sessions, committed "Save & Run All" batch runs, the
TPU VM image).

Evidence model (docs/hosts.md "How evidence is weighed"; sources in
docs/reference/host-evidence.md §2 and the corpus tests/fixtures/hosts/kaggle-*.json). What
Kaggle's worker injects into a session outweighs what its image carries, because the image runs
anywhere (laptops, GCP TPU VMs) and is itself built on Colab's:

- ``KAGGLE_KERNEL_RUN_TYPE`` = ``Interactive`` | ``Batch``: injected at run time into every
  kernel (used for detection by kagglehub ``env.py`` @f81f26f2 and wandb ``util.py``).
- Session tokens ``KAGGLE_USER_SECRETS_TOKEN``, ``KAGGLE_DATA_PROXY_TOKEN``,
  ``KAGGLE_API_V1_TOKEN``: set "at worker startup" (Kaggle/docker-python PR #473 review, 2019),
  observed in 2020 and 2026 sessions, each time beside the run type or a run-time variable
  (corpus kaggle-interactive-2020, kaggle-gpu-2026-*). A token alone is also passed by hand into local
  containers laid out like a session: an MLE-bench harness re-runs competition notebooks with
  ``docker run -e KAGGLE_USER_SECRETS_TOKEN=... -w /kaggle/working`` and its data at
  ``/kaggle/input`` (github-file-id:15129390128; corpus neg-kaggle-mlebench-local-docker-token,
  which a token weighing 0.3 alone would call Kaggle at 0.50). So tokens weigh 0.3 with the run
  type or a run-time variable and 0.1 without.
- Run-time variables ``KAGGLE_URL_BASE``, ``KAGGLE_DOCKER_IMAGE``, ``KAGGLE_CONTAINER_NAME``,
  ``KAGGLE_DATA_PROXY_URL``, ``KAGGLE_DATA_PROXY_PROJECT`` (Kaggle/docker-python
  ``patches/kaggle_web_client.py`` @2654e761; kagglehub PR #27; observed dumps). The docker image
  sets no ``KAGGLE_*`` variable (Kaggle/docker-python ``Dockerfile.tmpl`` @b4fdbdad,
  ``tpu/Dockerfile`` @5c805377), so Kaggle's image run elsewhere has none of these.
- The run type with a session token and a run-time variable is Kaggle's complete session set:
  proof even without a folder (corpus kaggle-script-names-only).
- ``kaggle_secrets`` / ``kaggle_web_client``: modules Kaggle's image adds (``Dockerfile.tmpl``
  @b4fdbdad) — also importable when that image runs on a laptop, so weak alone.
- ``/kaggle/working`` (output, capped at 20 GB [K1][K5]) and ``/kaggle/input``: a Colab image
  ships an empty ``/kaggle/working`` (corpus colab-gpu-t4-leftover-kaggle-dirs-2026) and
  kagglehub mounts its Colab cache at ``/kaggle/input``, so neither decides alone. Nor does
  ``/kaggle/working`` being the working folder: Kaggle's own image run on a VM with ``docker run
  -w /kaggle/working`` makes it one off Kaggle (github-file-id:70901140969; corpus
  neg-kaggle-image-gce-vm-nbconvert-working), and the interpreter is no help either (the image
  moved from ``/opt/conda`` onto Colab's base: Kaggle/docker-python@00192f2d02aeb5f9afa6356e6a9f561e2a622e31
  ``Dockerfile.tmpl``, ``PACKAGE_PATH=/usr/local/lib/python3.10/dist-packages``).
- ``ISTPUVM=1``: ENV of the TPU VM image only (``tpu/Dockerfile`` @5c805377), and copied into
  users' own TPU VM shells (corpus neg-gcp-tpu-vm-istpuvm-*). Weak.
- ``KAGGLE_USERNAME`` / ``KAGGLE_KEY`` / ``KAGGLE_API_TOKEN``: API credentials on laptops and CI.
  Never evidence (accelerate's "any KAGGLE* variable" rule gets this wrong).

Session: 12 h CPU/GPU, 9 h TPU per session (Kaggle notebook docs, 2nd-hand, HOSTS.md [K1]).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from ..hookspecs import Register, hookimpl
from ..probe import Probe
from ..provider import Detection, Evidence, HostLocations, Preset, Provider, Quota, SessionLimits

if TYPE_CHECKING:
    from ..monitor.budgets import Budget
    from ..runtime import Runtime
    from ..secrets import Lookup, Source

#: The output folder: what a committed version saves and a code competition scores.
WORKING = "/kaggle/working"

# An interactive Kaggle kernel's environment (Kaggle `env` dumps: docs/reference/host-evidence.md §2).
_PRESET_ENV = {
    "HOME": "/root", "PWD": WORKING, "KAGGLE_KERNEL_RUN_TYPE": "Interactive",
    "KAGGLE_URL_BASE": "https://www.kaggle.com", "KAGGLE_DATA_PROXY_URL": "https://dp.kaggle.net",
    "KAGGLE_DOCKER_IMAGE": "gcr.io/kaggle-gpu-images/python@sha256:0", "KAGGLE_USER_SECRETS_TOKEN": "eyJhbGciOi.sim",
    # Kaggle's image is built on Colab's: these come along (kagglehub PR #230; 2026 Kaggle dump).
    "COLAB_RELEASE_TAG": "release-colab_20260508-060000_RC00", "COLAB_IMAGE_TYPE": "gpu",
}
_PRESET_PATHS = ("/kaggle/input", WORKING, "/kaggle/temp", "/content")
_PRESET_MODULES = ("kaggle_secrets", "kaggle_web_client", "google.colab")

_RUNTIME_VARS = ("KAGGLE_URL_BASE", "KAGGLE_DOCKER_IMAGE", "KAGGLE_CONTAINER_NAME", "KAGGLE_DATA_PROXY_URL",
                 "KAGGLE_DATA_PROXY_PROJECT")
# Injected per session by Kaggle's worker (Kaggle/docker-python PR #473; corpus kaggle-*).
_SESSION_TOKENS = ("KAGGLE_USER_SECRETS_TOKEN", "KAGGLE_DATA_PROXY_TOKEN", "KAGGLE_API_V1_TOKEN")
_CREDENTIAL_VARS = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")


class KaggleProvider(Provider):
    """Kaggle Notebooks, CPU, GPU and TPU, interactive and batch."""

    name = "kaggle"
    display_name = "Kaggle"
    # A container per session: KAGGLE_CONTAINER_NAME is injected at run time; files outlive it only
    # if saved (HOSTS.md [K4]).
    session_per_container = True
    priority = 10  # Kaggle's image is Colab's plus more: on a tie, the more specific host wins.
    marker_modules = ("kaggle_secrets", "kaggle_web_client")

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        run_type = probe.getenv("KAGGLE_KERNEL_RUN_TYPE")
        if run_type in ("Interactive", "Batch"):
            ev.add(0.4, "env " + probe.env_fact("KAGGLE_KERNEL_RUN_TYPE"), "Kaggle injects it into every kernel")
        elif run_type:
            ev.add(0.1, "env " + probe.env_fact("KAGGLE_KERNEL_RUN_TYPE"),
                   "unexpected value; Kaggle sets Interactive or Batch")
        else:
            ev.missing("KAGGLE_KERNEL_RUN_TYPE (injected into every Kaggle kernel)")
        tokens = [v for v in _SESSION_TOKENS if probe.getenv(v)]
        runtime_vars = [v for v in _RUNTIME_VARS if probe.getenv(v)]
        if tokens and (run_type in ("Interactive", "Batch") or runtime_vars):
            # Names only: these are live credentials.
            ev.add(0.3, "env " + ", ".join(tokens) + " set", "session tokens Kaggle's worker injects at startup")
        elif tokens:
            ev.add(0.1, "env " + ", ".join(tokens) + " set",
                   "without the run type or a run-time variable: tokens are also passed by hand into local containers")
        else:
            ev.missing("a Kaggle session token (KAGGLE_USER_SECRETS_TOKEN, KAGGLE_DATA_PROXY_TOKEN)")
        if runtime_vars:
            ev.add(0.15, "env " + ", ".join(runtime_vars), "set by Kaggle at run time, not by its image")
        if run_type and tokens and runtime_vars:
            ev.add(0.2, "run type, session token and run-time variables together",
                   "Kaggle's complete session set: proof even without its folders")
        if probe.is_dir("/kaggle/working"):
            ev.add(0.15, "folder /kaggle/working", "Kaggle's output folder; Colab images ship an empty one")
        else:
            ev.missing("folder /kaggle/working")
        modules = [m for m in cls.marker_modules if probe.has_module(m)]
        if modules:
            ev.add(0.15, "module " + ", ".join(modules) + " importable", "added by Kaggle's docker image")
        if probe.is_dir("/kaggle/input"):
            ev.add(0.05, "folder /kaggle/input", "weak: kagglehub mounts its Colab cache there too")
        if probe.getenv("ISTPUVM") == "1":
            ev.add(0.05, "env ISTPUVM=1", "baked into Kaggle's TPU image; users copy it to their own TPU VMs")
        for var in _CREDENTIAL_VARS:
            if probe.getenv(var):
                ev.note(f"env {var} set", "API credential, present on laptops and CI; not evidence")
        return ev.detection()

    def is_tpu_vm(self) -> bool:
        """Whether this is Kaggle's TPU VM image (``ISTPUVM=1``) or TPU chips are attached."""
        return self.probe.getenv("ISTPUVM") == "1" or self.probe.tpu is not None

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        # /kaggle/temp: "won't be saved outside of the current session" (Kaggle's notebook
        # boilerplate); it is outside the 20 GB /kaggle/working cap. /tmp where it is absent.
        scratch = p("/kaggle/temp") if self.probe.is_dir("/kaggle/temp") else p("/tmp") / "portarun-scratch"
        return HostLocations(
            input=p("/kaggle/input"), scratch=scratch, output=p("/kaggle/working"),
            # /kaggle/working is saved with a committed version (and with the Persistence setting).
            persist=p("/kaggle/working"), cache=self.probe.home / ".cache",
        )

    def budgets(self) -> tuple[Budget, ...]:
        # Weekly accelerator quotas, second-hand (no official page found; HOSTS.md [K8]-[K10]). TPU: 20 h
        # [K10] vs 30 h in The Kaggle Book [K9]; the lower is used so that an estimate never reassures.
        from ..monitor.budgets import Budget  # only when a monitor starts: detect() stays light

        return (Budget("Kaggle weekly GPU quota", "accelerator_hours", "gpu", 30, "h/week",
                       "https://huggingface.co/Khawn2u/Llama-3.1-8b-Chain-Of-Thought-GGUF/discussions/1 "
                       "(\"weekly 30hrs\"; Kaggle calls the quota floating: kaggle.com/product-feedback/173129)",
                       "2026-11-30"),
                Budget("Kaggle weekly TPU quota", "accelerator_hours", "tpu", 20, "h/week",
                       "https://portal.yandex.com.tr/yaozet/programming/kaggle-tpu-training-guide-id2-LYvZCM9B "
                       "(\"Maximum 20 hours per week\")", "2026-11-30"))

    def session_limits(self) -> SessionLimits:
        if self.is_tpu_vm():
            return SessionLimits(timedelta(hours=9), "Kaggle notebooks: 9 hours per TPU session")
        return SessionLimits(timedelta(hours=12), "Kaggle notebooks: 12 hours per CPU/GPU session")

    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        return {
            "kaggle": Preset(env=_PRESET_ENV, paths=_PRESET_PATHS, modules=_PRESET_MODULES),
            "kaggle-batch": Preset(env={**_PRESET_ENV, "KAGGLE_KERNEL_RUN_TYPE": "Batch"}, paths=_PRESET_PATHS,
                                   modules=_PRESET_MODULES, kernel=False),
            "kaggle-tpu": Preset(env={**_PRESET_ENV, "ISTPUVM": "1", "TPU_ACCELERATOR_TYPE": "v3-8"},
                                 paths=_PRESET_PATHS, modules=_PRESET_MODULES, tpu="v5e-8"),
        }

    def quotas(self) -> Mapping[str, Quota]:
        # Kaggle caps what a notebook may write to /kaggle/working at 20 GB (Kaggle notebook docs,
        # 2nd-hand, and the default notebook template; docs/reference/HOSTS.md [K1][K5]).
        return {WORKING: Quota(20 * 1000**3, "Kaggle caps /kaggle/working at 20 GB")}

    def submission_note(self, filename: str) -> str | None:
        # Code competitions score the notebook's /kaggle/working output, submitted from the notebook page.
        return (f"On Kaggle, submit from the notebook: its {WORKING}/{filename} is what the competition scores "
                "(Output → Submit, or 'Submit to competition').")

    def secret_sources(self) -> tuple[Source, ...]:
        """Kaggle's "Add-ons → Secrets", through ``kaggle_secrets.UserSecretsClient().get_secret``,
        where ``kaggle_secrets`` is importable and ``KAGGLE_USER_SECRETS_TOKEN`` is set (the client
        authenticates with it; Kaggle/docker-python ``patches/kaggle_secrets.py``). A label that
        is not attached raises ``BackendError`` there."""
        from ..secrets import Source

        return (Source("kaggle", _user_secrets_usable, _user_secrets_get,
                       "in a Kaggle notebook, open Add-ons → Secrets, add {name}, and tick it for this notebook"),)


def _user_secrets_usable(rt: Runtime) -> str | None:
    if not rt.probe.has_module("kaggle_secrets"):
        return "kaggle_secrets is not importable"
    if not rt.probe.getenv("KAGGLE_USER_SECRETS_TOKEN"):
        return "KAGGLE_USER_SECRETS_TOKEN is not set"
    return None


def _user_secrets_get(rt: Runtime, name: str) -> Lookup:
    from ..secrets import Lookup

    try:
        from kaggle_secrets import UserSecretsClient  # Kaggle only
    except ImportError as exc:
        return Lookup(None, f"kaggle_secrets.UserSecretsClient cannot be imported ({exc})")
    try:
        value = UserSecretsClient().get_secret(name)
    except Exception as exc:  # BackendError when the label is not attached; no value in it
        if type(exc).__name__ == "BackendError":
            return Lookup(None)
        return Lookup(None, f"the Kaggle secrets service failed with {type(exc).__name__} (is the internet on?)")
    return Lookup(None if value is None else str(value))


@hookimpl
def portarun_register_providers(register: Register) -> None:
    register(KaggleProvider)
