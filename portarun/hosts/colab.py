"""Google Colab.

Evidence model (docs/hosts.md "How evidence is weighed"; sources in
docs/reference/host-evidence.md §1 and in the corpus tests/fixtures/hosts/colab-*.json).
What the Colab runtime injects into a session outweighs what its image carries, because
Kaggle's image is built on Colab's and other images copy its layout:

- ``/var/colab/hostname``: hosted Colab VMs; ``google.colab.drive`` refuses to mount without it
  (googlecolab/colabtools@94300b75 ``google/colab/drive.py``). Not reported on Kaggle. Strong.
- Kernel plumbing, set per session by the runtime and inherited by ``!python`` children:
  ``COLAB_JUPYTER_IP``, ``COLAB_KERNEL_MANAGER_PROXY_HOST``/``_PORT``, ``COLAB_JUPYTER_TRANSPORT``,
  ``COLAB_LANGUAGE_SERVER_PROXY``, ``COLAB_FILE_HANDLER_ADDR``, ``COLAB_DEBUG_ADAPTER_MUX_PATH``,
  ``COLAB_NOTEBOOK_ID`` (``env`` dumps 2023-2025: corpus colab-cpu-child-*), and before 2022
  ``DATALAB_SETTINGS_OVERRIDES`` with ``kernelManagerProxyHost`` (corpus colab-*-2020/2021).
- Credential proxy ``TBE_CREDS_ADDR`` / ``TBE_EPHEM_CREDS_ADDR`` / ``TBE_RUNTIME_ADDR``: the
  addresses ``google.colab.drive`` and ``auth`` read (drive.py above; googlecolab/colabtools#4375
  shows a local runtime failing on the missing ``TBE_CREDS_ADDR``).
- Plumbing *and* credential proxy together are the complete session set: proof in a child
  process that never imported ``google.colab`` (such a real dump once scored 0.40 and lost).
- ``COLAB_GPU=1``: written by the runtime when a GPU is attached (empty or ``0`` otherwise:
  khipu-ai/practicals-2023 PR #1; corpus colab-gpu-l4-2026); people also type it by hand on
  their own VMs (corpus neg-gce-vm-torch-xla-colab-gpu-exported), so it counts fully only with
  an NVIDIA GPU actually visible.
- ``COLAB_TPU_1VM=1``: Colab's TPU-VM runtimes (its start script branches on it; empty on CPU
  runtimes: corpus colab-cpu-child-env-2025 and colab-tpu-vm-v5e-1). ``COLAB_TPU_ADDR``: legacy
  TPU-node runtimes (WassimBenzarti/colab-ssh#14), also exported by hand on GCE VMs. Weak alone.
- ``COLAB_RELEASE_TAG`` / ``COLAB_IMAGE_TYPE``: the image, **also set in Kaggle's image** (built
  on Colab's; Kaggle/kagglehub PR #230; a 2026 Kaggle CPU probe shows ``COLAB_IMAGE_TYPE=cpu``).
- ``VERTEX_PRODUCT=COLAB_ENTERPRISE``: Colab Enterprise (huggingface_hub
  ``utils/_runtime.py`` @02ecd7b9 ``is_colab_enterprise``).
- Drive mounted at ``/content/drive/MyDrive`` (``My Drive`` before 2020): a FUSE mount that only
  ``google.colab.drive`` makes, and only on a hosted runtime (drive.py above). Medium.
- ``/content/adc.json``: the application-default credentials ``google.colab.auth`` writes on a
  hosted runtime (``GOOGLE_APPLICATION_CREDENTIALS=/content/adc.json`` in a 2020 Colab ``env``:
  corpus colab-runtime-child-env-2020; read back in corpus colab-legacy-tpu-node-kernel). Weak.
- ``google.colab`` importable: also on Kaggle and on Colab's local-runtime image. Weak.
- ``/content``: Colab's working folder, but RunPod/PyTorch images use ``WORKDIR /content``
  (corpus neg-content-workdir-runpod-image). Weak.
- An empty ``/kaggle`` (even ``/kaggle/working``) exists on Colab VMs and kagglehub mounts its
  cache at ``/kaggle/input`` there (corpus colab-gpu-t4-leftover-kaggle-dirs-2026): the Kaggle
  provider does not count those alone.

Session: "at most 12 hours" for free notebooks (Colab FAQ, HOSTS.md [C1]); idle timeout unpublished.

Colab Enterprise is Colab's notebook on a Google Cloud VM, and differs where it matters here:
its runtime has no session cap but stops after 180 minutes of inactivity by default
(https://cloud.google.com/colab/docs/idle-shutdown), and the default runtime, with its disk, is
deleted 18 hours after it is created (https://cloud.google.com/colab/docs/runtimes; runtimes
from a template of one's own keep theirs). Neither is a deadline portarun can compute, so no
limit is assumed there. Drive cannot be mounted (no ``/var/colab/hostname``, which
``drive.mount`` requires), so work under ``/content`` lasts as long as the runtime: a Cloud
Storage bucket is where it outlives it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..hookspecs import Register, hookimpl
from ..probe import Probe
from ..provider import Detection, DeviceKind, Evidence, HostLocations, Preset, Provider, SessionLimits, StorageSync

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..secrets import Lookup, Source
    from ..submission import SubmitOptions

#: Where ``google.colab.drive.mount`` is told to mount Drive in Colab's docs and examples; the
#: one place portarun spells it.
DRIVE_MOUNT = "/content/drive"
# "MyDrive" since 2020; older mounts show "My Drive" (HOSTS.md [F1]; corpus colab-kernel-drive-*).
DRIVE_ROOTS = (f"{DRIVE_MOUNT}/MyDrive", f"{DRIVE_MOUNT}/My Drive")

# A Colab kernel's environment (Colab `env` dumps: docs/reference/host-evidence.md §1).
_PRESET_ENV = {
    "HOME": "/root", "PWD": "/content", "COLAB_RELEASE_TAG": "release-colab_20250902-060114_RC00",
    "COLAB_GPU": "", "COLAB_JUPYTER_IP": "172.28.0.12", "COLAB_BACKEND_VERSION": "next",
    "COLAB_KERNEL_MANAGER_PROXY_HOST": "172.28.0.12", "MODEL_PROXY_HOST": "https://mp.kaggle.net",
}
_PRESET_PATHS = ("/content", "/kaggle")  # Colab VMs carry an empty /kaggle (HOSTS.md)
_PRESET_FILES = ("/var/colab/hostname",)

# Per-session kernel plumbing (Colab `env` dumps 2023-2025: corpus colab-cpu-child-*,
# colab-gpu-child-servalshell-2024).
_KERNEL_PLUMBING = (
    "COLAB_JUPYTER_IP", "COLAB_KERNEL_MANAGER_PROXY_HOST", "COLAB_KERNEL_MANAGER_PROXY_PORT",
    "COLAB_JUPYTER_TRANSPORT", "COLAB_LANGUAGE_SERVER_PROXY", "COLAB_FILE_HANDLER_ADDR",
    "COLAB_DEBUG_ADAPTER_MUX_PATH", "COLAB_NOTEBOOK_ID",
)
# Credential proxy addresses read by google.colab.drive (googlecolab/colabtools#4375 traceback).
_CREDENTIAL_PROXY = ("TBE_CREDS_ADDR", "TBE_EPHEM_CREDS_ADDR", "TBE_RUNTIME_ADDR")


class ColabProvider(Provider):
    """Google Colab (free, Pro, and Colab Enterprise runtimes)."""

    name = "colab"
    display_name = "Google Colab"
    # Each runtime is a fresh container: /.dockerenv, a docker-id HOSTNAME (docs/reference/host-evidence.md §1).
    session_per_container = True
    marker_modules = ("google.colab",)

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.is_file("/var/colab/hostname"):
            ev.add(0.45, "file /var/colab/hostname", "present on hosted Colab VMs; Drive mounting requires it")
        else:
            ev.missing("file /var/colab/hostname (hosted Colab VMs)")
        plumbing = [v for v in _KERNEL_PLUMBING if probe.getenv(v)]
        if "kernelManagerProxyHost" in (probe.getenv("DATALAB_SETTINGS_OVERRIDES") or ""):
            plumbing.append("DATALAB_SETTINGS_OVERRIDES")
        if plumbing:
            weight = 0.3 if len(plumbing) >= 3 else 0.2
            ev.add(weight, "env " + ", ".join(plumbing), "Colab kernel plumbing, set per session by the runtime")
        else:
            ev.missing("Colab kernel plumbing (COLAB_JUPYTER_IP, COLAB_KERNEL_MANAGER_PROXY_HOST, ...)")
        proxy = [v for v in _CREDENTIAL_PROXY if probe.getenv(v)]
        if proxy:
            ev.add(0.25, "env " + ", ".join(probe.env_fact(v) for v in proxy),
                   "Colab's credential proxy, injected per session")
        else:
            ev.missing("Colab's credential proxy TBE_CREDS_ADDR")
        if plumbing and proxy:
            ev.add(0.2, "kernel plumbing and credential proxy together",
                   "the complete Colab session set: proof even in a child process without google.colab")
        cls._accelerator_evidence(probe, ev)
        image = [v for v in ("COLAB_RELEASE_TAG", "COLAB_IMAGE_TYPE") if probe.getenv(v)]
        if image:
            ev.add(0.15, "env " + ", ".join(probe.env_fact(v) for v in image),
                   "Colab's image; Kaggle's Colab-based image sets it too")
        if probe.getenv("VERTEX_PRODUCT") == "COLAB_ENTERPRISE":
            ev.add(0.4, "env VERTEX_PRODUCT=COLAB_ENTERPRISE", "Colab Enterprise runtime")
        drive = next((root for root in DRIVE_ROOTS if probe.is_dir(root)), None)
        if drive:
            ev.add(0.3, f"folder {drive}",
                   "Google Drive mounted by google.colab.drive, which works only on hosted Colab")
        if probe.is_file("/content/adc.json"):
            ev.add(0.1, "file /content/adc.json", "credentials google.colab.auth writes on a hosted runtime")
        if probe.has_module("google.colab"):
            ev.add(0.1, "module google.colab importable", "Colab's own package; also on Kaggle and local runtimes")
        if probe.is_dir("/content"):
            ev.add(0.1, "folder /content", "Colab's working folder; other images use it too")
        return ev.detection()

    @staticmethod
    def _accelerator_evidence(probe: Probe, ev: Evidence) -> None:
        """The runtime's accelerator variables, counted fully only when the hardware agrees."""
        gpu = probe.getenv("COLAB_GPU")
        if gpu == "1":
            ev.add(0.3, "env COLAB_GPU=1", "set by the Colab runtime when a GPU is attached; also typed by hand")
            if probe.gpus:
                ev.add(0.15, f"{len(probe.gpus)} NVIDIA GPU(s) visible", "agrees with COLAB_GPU=1")
        elif gpu is not None:
            ev.note(f"env COLAB_GPU={gpu!r}", "empty or 0 on CPU and TPU runtimes: its presence proves nothing")
        if probe.getenv("COLAB_TPU_1VM") == "1":
            ev.add(0.35, "env COLAB_TPU_1VM=1", "Colab's TPU-VM runtime variable (empty on other runtimes)")
            if probe.tpu is not None:
                ev.add(0.15, "TPU attached", "agrees with COLAB_TPU_1VM=1")
        if probe.getenv("COLAB_TPU_ADDR"):
            ev.add(0.25, "env " + probe.env_fact("COLAB_TPU_ADDR"),
                   "legacy Colab TPU-node runtime; also exported by hand on GCE VMs")

    def drive(self) -> Path | None:
        """The root of the mounted Google Drive, or ``None`` when it is not mounted."""
        for root in DRIVE_ROOTS:
            if self.probe.is_dir(root):
                return self.probe.path(root)
        return None

    def locations(self, project: str) -> HostLocations:
        content = self.probe.path("/content")
        drive = self.drive()
        if drive is not None:
            return HostLocations(
                input=content, scratch=content, output=drive / "portarun" / project / "outputs",
                persist=drive / "portarun", cache=self.probe.home / ".cache",
            )
        if self._enterprise():
            warning = ("On Colab Enterprise, portarun's persist and checkpoints folders are on the runtime's disk "
                       "under /content/portarun, deleted with the runtime (the default runtime is deleted 18 hours "
                       "after it is created). Set PORTARUN_PERSIST_DIR to a Cloud Storage URL "
                       "(gs://BUCKET/FOLDER, read through gcsfs) to keep them.")
        else:
            warning = ("Google Drive is not mounted, so portarun's persist and checkpoints folders are on the "
                       "Colab VM's disk under /content/portarun and will be deleted when the session ends. "
                       "Mount Drive first with `rt = rt.mount_drive()` (or `from google.colab import drive; "
                       f"drive.mount('{DRIVE_MOUNT}')`), or set PORTARUN_PERSIST_DIR to a bucket URL.")
        return HostLocations(
            input=content, scratch=content, output=content / "outputs",
            persist=content / "portarun", cache=self.probe.home / ".cache", persist_warning=warning,
        )

    def _enterprise(self) -> bool:
        return self.probe.getenv("VERTEX_PRODUCT") == "COLAB_ENTERPRISE"

    def session_limits(self) -> SessionLimits:
        if self._enterprise():
            return SessionLimits(None, "Colab Enterprise: no session cap; the runtime stops after 180 idle minutes by "
                                       "default and the default runtime is deleted 18 hours after it is created "
                                       "(set PORTARUN_SESSION_LIMIT to plan for that)")
        return SessionLimits(timedelta(hours=12), "Colab FAQ: free notebooks run at most 12 hours")

    def device_order(self) -> tuple[DeviceKind, ...]:
        return ("cuda", "xla", "cpu")

    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        modules = ("google.colab",)
        return {
            "colab": Preset(env=_PRESET_ENV, paths=(*_PRESET_PATHS, DRIVE_ROOTS[0]), files=_PRESET_FILES,
                            modules=modules),
            "colab-nodrive": Preset(env=_PRESET_ENV, paths=_PRESET_PATHS, files=_PRESET_FILES, modules=modules),
            # A Colab TPU VM runtime shows COLAB_TPU_1VM=1 and TPU_ACCELERATOR_TYPE=v5e-1 (corpus colab-tpu-vm-v5e-1).
            "colab-tpu": Preset(env={**_PRESET_ENV, "COLAB_TPU_1VM": "1", "TPU_ACCELERATOR_TYPE": "v5e-1"},
                                paths=(*_PRESET_PATHS, DRIVE_ROOTS[0]), files=_PRESET_FILES, modules=modules,
                                tpu="v5e-1"),
        }

    @classmethod
    def stand_in_apis(cls) -> Mapping[str, Mapping[str, Callable[..., object]]]:
        """Drive's ``mount`` and ``flush_and_unmount`` (googlecolab/colabtools@94300b75:
        google/colab/drive.py) and the browser download ``download(filename)``
        (googlecolab/colabtools google/colab/files.py): what portarun calls of Colab's modules."""
        return {"google.colab.drive": {"mount": _simulated_mount, "flush_and_unmount": _nothing},
                "google.colab.files": {"download": _nothing}}

    def secret_sources(self) -> tuple[Source, ...]:
        """Colab's secrets panel, through ``google.colab.userdata.get``: inside the notebook kernel
        only (the call talks to the notebook frontend; a ``!python`` child cannot use it). Its
        errors: ``SecretNotFoundError`` / ``NotebookAccessError`` (googlecolab/colabtools
        ``google/colab/userdata.py``)."""
        from ..secrets import Source

        return (Source("colab", _userdata_usable, _userdata_get,
                       "in Colab, open the key icon (Secrets) in the left sidebar, add {name}, and switch on "
                       "Notebook access (it reaches the notebook kernel only)"),)

    def deliver_submission(self, runtime: Runtime, path: Path, options: SubmitOptions) -> tuple[str, ...]:
        """Offer the file for download in the browser (``google.colab.files.download``,
        googlecolab/colabtools ``google/colab/files.py``) in an interactive session."""
        if not runtime.session.interactive or options.dry_run or not self.probe.has_module("google.colab"):
            return ()
        from ..errors import warn

        try:
            from google.colab import files  # Colab only

            files.download(str(path))
        except Exception as exc:  # the browser side can refuse; the file is safely written
            warn(f"could not offer {path} for download ({type(exc).__name__}: {exc}); it is saved at "
                 f"{path}: download it from the Files panel.")
            return ()
        return (f"offered {path.name} for download in the browser",)

    def storage_sync(self, folder: Path) -> StorageSync | None:
        """Drive's mount uploads lazily: a folder on it is flushed with
        ``drive.flush_and_unmount()`` (:class:`portarun.checkpoint.DriveSync`)."""
        mount = self.probe.path(DRIVE_MOUNT)
        if not self.probe.has_module("google.colab") or not folder.is_relative_to(mount):
            return None
        from ..checkpoint.drive import DriveSync

        return DriveSync(str(mount))

    def mount_drive(self, runtime: Runtime, mountpoint: str | None = None) -> Runtime:
        """Mount Drive with ``google.colab.drive.mount`` (at :data:`DRIVE_MOUNT` unless told
        otherwise) and detect afresh, so that ``persist`` and ``checkpoints`` move to Drive."""
        mountpoint = mountpoint or DRIVE_MOUNT
        if not self.probe.has_module("google.colab"):
            from ..errors import NotAvailableError

            raise NotAvailableError("Google Drive is mounted through google.colab, which is not importable in this "
                                    "process. Run rt.mount_drive() in the Colab notebook itself, or set "
                                    "PORTARUN_PERSIST_DIR to a folder or an fsspec URL (s3://..., gs://...).")
        if self.probe.is_dir(mountpoint + "/MyDrive"):
            return runtime
        if self._enterprise():
            from ..errors import NotAvailableError

            # drive.mount refuses without /var/colab/hostname, which Colab Enterprise runtimes lack
            # (docs/reference/host-evidence.md, the /var/colab/hostname row).
            raise NotAvailableError("Colab Enterprise cannot mount Google Drive. Keep checkpoints in Cloud Storage: "
                                    "set PORTARUN_PERSIST_DIR=gs://BUCKET/FOLDER (read through gcsfs).")
        from google.colab import drive  # only reachable on Colab

        from ..runtime import detect

        drive.mount(str(self.probe.path(mountpoint)))
        return detect(project=runtime.project, refresh=True)

    def missing_path_hint(self, path: str) -> str | None:
        if not path.startswith(DRIVE_MOUNT):
            return None
        return (f"Google Drive is not mounted (or the path is wrong). Mount it with `rt = rt.mount_drive()`, then "
                f"check the path under {DRIVE_ROOTS[0]}.")


def _simulated_mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000,
                     readonly: bool = False) -> None:
    """``drive.mount`` as a simulation has it: Drive's folder appears at ``mountpoint``."""
    os.makedirs(os.path.join(os.path.expanduser(mountpoint), "MyDrive"), exist_ok=True)


def _nothing(*args: object, **kwargs: object) -> None:
    """``drive.flush_and_unmount`` and ``files.download`` as a simulation has them: there is no
    Drive to flush and no browser to download to."""


def _userdata_usable(rt: Runtime) -> str | None:
    if not rt.probe.in_kernel:
        return "not inside the notebook kernel (Colab secrets reach only the kernel, not !python children)"
    if not rt.probe.has_module("google.colab.userdata"):
        return "google.colab.userdata is not importable"
    return None


def _userdata_get(rt: Runtime, name: str) -> Lookup:
    from ..secrets import Lookup

    try:
        from google.colab import userdata  # Colab only
    except ImportError as exc:
        return Lookup(None, f"google.colab.userdata cannot be imported ({exc})")
    try:
        value = userdata.get(name)
    except Exception as exc:  # SecretNotFoundError, NotebookAccessError, TimeoutException
        if type(exc).__name__ == "NotebookAccessError":
            return Lookup(None, "exists but this notebook has no access: switch on 'Notebook access' "
                                "for it in the Secrets panel (key icon)")
        return Lookup(None, None if type(exc).__name__ == "SecretNotFoundError" else type(exc).__name__)
    return Lookup(str(value))


@hookimpl
def portarun_register_providers(register: Register) -> None:
    register(ColabProvider)
