"""``detect()`` and the :class:`Runtime` it returns.

Detection asks every registered provider for a verdict and ranks them by confidence, then
priority, then name: deterministic, and explainable with :meth:`Runtime.explain`. Plugins load
on the first call; the result is cached per process until ``refresh=True`` (or until a
:func:`portarun.testing.simulate` block swaps the probe).
"""
from __future__ import annotations

import sys
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from ._plugins.manager import PluginSet
from ._plugins.manager import plugin_set as plugin_set  # where submission, report and plugins look it up
from ._plugins.state import STATE
from .errors import PluginError, PortarunError, UnknownHostError, warn
from .paths import Paths, ProjectId, default_project, origin_text, project_folder
from .probe import Probe
from .provider import CLOSE_THRESHOLD, MATCH_THRESHOLD, Detection, Provider
from .session import SessionInfo, build_session

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable
    from datetime import timedelta
    from pathlib import Path
    from typing import TypeVar

    from pluggy import PluginManager

    from .checkpoint import Checkpointer
    from .devices import DeviceInfo, DeviceMemory
    from .distributed import DistInfo
    from .facts import CpuFacts
    from .loader import LoaderOptions
    from .monitor import Monitor
    from .secrets import Secret
    from .staging import StageResult
    from .submission import Submission

    T = TypeVar("T")

class HostInfo(NamedTuple):
    """The winning provider: its name, confidence, the evidence, which plugin supplied it (and
    that plugin's version), and whether it was forced (``PORTARUN_HOST`` / ``detect(host=)``)."""

    name: str
    display_name: str
    confidence: float
    evidence: tuple[str, ...]
    plugin: str
    version: str | None
    forced: bool = False


class Verdict(NamedTuple):
    """One provider's answer during ranking: its detection, or the error that disqualified it."""

    provider: str
    priority: int
    fallback: bool
    detection: Detection | None
    error: str | None = None

    @property
    def confidence(self) -> float:
        """The detection's confidence (0 when there was none)."""
        return self.detection.confidence if self.detection else 0.0

    @property
    def matched(self) -> bool:
        """Whether this verdict may win: at or above the threshold, or the fallback."""
        return self.error is None and (self.confidence >= MATCH_THRESHOLD
                                       or (self.fallback and self.detection is not None))


# -- plugins (loaded once per process: portarun._plugins.state.STATE holds them) ---------------------
def get_plugin_manager() -> PluginManager:
    """The pluggy manager holding portarun's plugins (for calling hooks or inspecting them)."""
    return plugin_set().pm


def providers() -> dict[str, type[Provider]]:
    """Registered provider classes by name."""
    return plugin_set().providers()


# -- detection -----------------------------------------------------------------------------
def rank(probe: Probe, plugins: PluginSet) -> list[Verdict]:
    """Every provider's verdict, best first: matched before unmatched, then by confidence,
    priority and name. A provider whose ``detect`` raises, overruns its time budget, changes
    the process or returns an invalid detection is reported (warning, or error under
    ``PORTARUN_STRICT=1``) and ranked last (:meth:`PluginSet.detections`)."""
    verdicts = [Verdict(cls.name, cls.priority, cls.fallback, detection, error)
                for cls, detection, error in plugins.detections(probe)]
    verdicts.sort(key=lambda v: (not v.matched, v.error is not None, -v.confidence, -v.priority, v.provider))
    return verdicts


def detect(*, host: str | None = None, project: str | None = None, device: str | None = None,
           refresh: bool = False) -> Runtime:
    """Where am I running and what do I have?

    Returns the :class:`Runtime` for this process, cached: later calls with the same arguments
    return the same object unless ``refresh=True``. ``host`` (or ``PORTARUN_HOST``) forces a
    provider by name; ``project`` names the folder under the persistent storage (default: the
    notebook's or script's name); ``device`` (or ``PORTARUN_DEVICE``) forces the device kind.
    Raises :class:`~portarun.errors.UnknownHostError` for an unknown host name and
    :class:`~portarun.errors.PathError` for a broken path override.
    """
    for name, value in (("host", host), ("project", project), ("device", device)):
        if value is not None and not isinstance(value, str):
            raise PortarunError(f"detect({name}=...) got a {type(value).__name__}, not a string: pass the {name} "
                                "as text, or leave it out.")
    key = (host, project, device)
    with STATE.lock:
        probe = STATE.current_probe(fresh=refresh)
        cached = None if refresh else STATE.cached(key)
        if cached is not None:
            return cached
        runtime = build_runtime(probe, host=host, project=project, device=device)
        STATE.remember(key, runtime)
        return runtime


def build_runtime(probe: Probe, *, host: str | None = None, project: str | None = None,
                  device: str | None = None, argv0: str | None = None) -> Runtime:
    """Build a fresh :class:`Runtime` from ``probe`` (no caching; :func:`detect` caches)."""
    plugins = plugin_set(probe.env)
    verdicts = rank(probe, plugins)
    registry = plugins.providers()
    forced_name = (host or probe.getenv("PORTARUN_HOST") or "").strip() or None
    if forced_name:
        source = "host" if host else "host in PORTARUN_HOST"
        # Provider names are lower case; `PORTARUN_HOST=Kaggle` means kaggle.
        forced_name = forced_name if forced_name in registry else forced_name.lower()
        if forced_name not in registry:
            raise UnknownHostError(forced_name, registry, source)
        verdict = next(v for v in verdicts if v.provider == forced_name)
    else:
        verdict = verdicts[0]
    cls = registry[verdict.provider]
    provider = cls(probe)
    if argv0 is None and not probe.simulated:
        # __main__.__file__ is absolute (Python >= 3.9), so a script that changes folder before
        # detect() keeps its project; sys.argv[0] may be relative.
        # An embedding host may leave sys.argv unset, and anything may be assigned to either.
        main_file, argv = getattr(sys.modules.get("__main__"), "__file__", None), getattr(sys, "argv", None)
        candidates = (main_file, argv[0] if isinstance(argv, list) and argv else None)
        argv0 = next((c for c in candidates if isinstance(c, str) and c), None)
    project_id = (ProjectId(project_folder(project), origin_text(f"detect(project={project!r})")) if project
                  else default_project(probe, argv0))
    if forced_name and not verdict.matched:
        how = "detect(host=...)" if host else "PORTARUN_HOST"
        _warn_forced(forced_name, how, verdict, verdicts[0])
        problem = plugins.forced_problem(cls, probe)
        if problem is not None:
            raise PluginError(f"{how}={forced_name} forces the {forced_name!r} provider from plugin "
                              f"{plugins.info_for_provider(cls).label}, but {problem}. Unset {how} to let detection "
                              "choose, or report it to the plugin's authors.")
    paths = plugins.pm.hook.portarun_resolve_paths(provider=provider, project=project_id.name)
    session = build_session(provider.session_limits(), provider.session_start(), probe.in_kernel,
                            probe.getenv("PORTARUN_SESSION_LIMIT"),
                            "the host container's start (PID 1)" if cls.session_per_container
                            else "this process's start")
    info = plugins.info_for_provider(cls)
    evidence = verdict.detection.evidence if verdict.detection else ()
    if forced_name:
        evidence = (f"forced by {'detect(host=...)' if host else 'PORTARUN_HOST'}={forced_name}", *evidence)
    host_info = HostInfo(
        name=cls.name, display_name=cls.display_name, confidence=verdict.confidence,
        evidence=evidence, plugin=info.name, version=info.version, forced=bool(forced_name),
    )
    return Runtime(probe=probe, provider=provider, host=host_info, paths=paths, session=session,
                   project=project_id.name, verdicts=tuple(verdicts), device_request=device,
                   project_origin=project_id.origin)


def _warn_forced(name: str, how: str, forced: Verdict, detected: Verdict) -> None:
    """Warn that a forced host has no evidence here: its paths belong to another platform."""
    found = ("nothing here looks like it" if forced.confidence <= 0
             else f"its evidence is weak ({forced.confidence:.2f})")
    warn(
        f"{how}={name} forces the {name} provider, but {found}; detection found {detected.provider!r}. "
        f"The paths it hands out belong to that other platform: nothing is created there until something is "
        f"written, and writes may land in unexpected folders of this machine. Drop {how}={name} unless you mean "
        f"to imitate {name} (tests can use portarun.testing.simulate).")


class Runtime:
    """Where this process runs and what it has. Build it with :func:`portarun.detect`.

    ``host``, ``paths``, ``session`` and ``project`` are computed at detection; ``device``,
    ``dist``, ``loader`` and ``checkpoints`` on first access (they may probe hardware).
    """

    def __init__(self, *, probe: Probe, provider: Provider, host: HostInfo, paths: Paths,
                 session: SessionInfo, project: str, verdicts: tuple[Verdict, ...],
                 device_request: str | None = None, project_origin: str = "") -> None:
        self.probe = probe
        self.provider = provider
        self.host = host
        self.paths = paths
        self.session = session
        self.project = project
        #: Where the project's name came from (``script '/home/me/exp/train.py'``, ``PORTARUN_PROJECT=...``).
        self.project_origin = project_origin
        self.verdicts = verdicts
        self.device_request = device_request

    @cached_property
    def cpu(self) -> CpuFacts:
        """The probe's CPU facts with the host's own count applied as ``hint`` (RunPod's
        ``RUNPOD_CPU_COUNT``, say, where the kernel shows the whole machine); ``rt.cpu.usable``
        is what data loading and staging size themselves by."""
        return replace(self.probe.cpu, hint=self.provider.cpu_hint())

    def __repr__(self) -> str:
        return f"<Runtime host={self.host.name!r} project={self.project!r} confidence={self.host.confidence:.2f}>"

    def explain(self) -> str:
        """Every provider's verdict, confidence and evidence, the chosen paths and session, as
        text (what ``portarun info --explain`` prints)."""
        lines = [
            f"Host: {self.host.display_name} ({self.host.name}), confidence {self.host.confidence:.2f}, "
            f"from plugin {self.host.plugin!r}{' ' + self.host.version if self.host.version else ''}"
            f"{' [forced]' if self.host.forced else ''}",
            f"Ranking: matched first (confidence >= {MATCH_THRESHOLD:.2f}, or the fallback), then "
            "confidence, priority, name.",
        ]
        for i, v in enumerate(self.verdicts, 1):
            status = ("error: " + v.error) if v.error else ("fallback" if v.fallback else
                      ("matched" if v.matched else ("below threshold" if v.detection else "no evidence")))
            marker = "*" if v.provider == self.host.name else " "
            lines.append(f" {marker}{i}. {v.provider:<12} {v.confidence:.2f}  {status}")
            for item in v.detection.evidence if v.detection else ():
                lines.append(f"       {item}")
            if v.detection and v.detection.missing and CLOSE_THRESHOLD <= v.confidence < MATCH_THRESHOLD:
                lines.append("       missing: " + "; ".join(v.detection.missing))
        if self.host.forced:
            lines.append(f"  {self.host.evidence[0]}")
        lines.append(f"Project: {self.project} (from {self.project_origin})" if self.project_origin
                     else f"Project: {self.project}")
        lines.append("Paths:")
        lines.extend(f"  {role:<12} {value}" for role, value in self.paths.as_dict().items())
        lines.extend(f"  note: {note}" for note in self.paths.notes)
        limit = self.session.limit
        lines.append(f"Session: limit {limit if limit is not None else 'none'} ({self.session.source}); "
                     f"started {self.session.started_at.isoformat(timespec='seconds')} "
                     f"({self.session.start_source}); interactive={self.session.interactive}")
        from ._util.redact import printable, redact  # paths, evidence and errors may hold s3://key:secret@...

        # Each line escaped on its own: a folder name with terminal escapes or a newline stays on its line.
        return redact("\n".join(printable(line) for line in lines))

    def mount_drive(self, mountpoint: str | None = None) -> Runtime:
        """Mount the host's cloud drive and return the runtime detected afresh, whose
        ``persist`` and ``checkpoints`` now live on it. An alias of the provider's
        :meth:`~portarun.provider.Provider.mount_drive`: on Colab it mounts Google Drive (at
        ``mountpoint``, by default where Colab's docs mount it); elsewhere it raises
        :class:`~portarun.errors.NotAvailableError`."""
        return self.provider.mount_drive(self, mountpoint)

    # --- devices and distributed (portarun/devices.py, distributed.py) -------------------
    @cached_property
    def device(self) -> DeviceInfo:
        """The accelerator this process uses (:class:`~portarun.devices.DeviceInfo`), decided on
        first access without importing torch: ``detect(device=...)`` or ``PORTARUN_DEVICE`` if
        given, else the provider's preference order. Each diagnostic is warned once as a
        :class:`~portarun.errors.PortarunWarning`. Raises :class:`~portarun.errors.DeviceError`
        when a requested kind is absent. Plugins can override it (``portarun_resolve_device``)."""
        from .devices import warn_diagnostics

        info: DeviceInfo = plugin_set(self.probe.env).pm.hook.portarun_resolve_device(runtime=self)
        warn_diagnostics(info)
        return info

    @cached_property
    def dist(self) -> DistInfo:
        """This process's place in a distributed run (:class:`~portarun.distributed.DistInfo`),
        read from the launcher's variables: torchrun, DeepSpeed, LSF/jsrun, MPI, SLURM, SkyPilot,
        Kubeflow, torch's env:// contract or torch_xla (docs/devices.md gives the order)."""
        from .distributed import read_dist

        return read_dist(self.probe)

    def init_distributed(self, backend: str | None = None, *, timeout: timedelta | None = None) -> DistInfo:
        """Initialise ``torch.distributed`` from the launcher's variables (nccl on CUDA, gloo on
        CPU/MPS, xla on TPU unless ``backend`` says otherwise); a no-op for a process no launcher
        started, or when already initialised. Returns :attr:`dist`. See
        :func:`portarun.distributed.init_distributed`."""
        from .distributed import init_distributed

        return init_distributed(self, backend=backend, timeout=timeout)

    def to_device(self, batch: T, *, non_blocking: bool | None = None) -> T:
        """``batch`` (tensors nested in dicts, lists, tuples, dataclasses) moved to this
        process's device; see :func:`portarun.devices.to_device`."""
        from .devices import to_device

        return to_device(self.device, batch, non_blocking=non_blocking)

    def wrap_loader(self, loader: Iterable[T]) -> Iterable[T]:
        """torch_xla's ``MpDeviceLoader`` around ``loader`` on TPU; ``loader`` unchanged
        elsewhere. See :func:`portarun.devices.wrap_loader`."""
        from .devices import wrap_loader

        return wrap_loader(self.device, loader)

    def seed(self, n: int, *, per_rank: bool = False) -> int:
        """Seed ``random``, NumPy, torch (all devices) and torch_xla with ``n`` (plus the rank
        when ``per_rank``); returns the seed used. See :func:`portarun.devices.seed`."""
        from .devices import seed

        return seed(self.device, self.dist.rank, n, per_rank=per_rank)

    def memory(self) -> DeviceMemory:
        """Device memory (allocated, reserved, free, total) and host RAM now; see
        :func:`portarun.devices.memory`."""
        from .devices import memory

        return memory(self.device, self.probe)

    # --- data loading (portarun/loader.py) -----------------------------------------------
    @cached_property
    def loader(self) -> LoaderOptions:
        """DataLoader settings fitted to this machine (:class:`~portarun.loader.LoaderOptions`):
        workers from the usable CPUs split across local ranks, ``pin_memory`` with CUDA, and
        the reason for each (``rt.loader.explain()``). Plugins can override it
        (``portarun_resolve_loader``)."""
        options: LoaderOptions = plugin_set(self.probe.env).pm.hook.portarun_resolve_loader(runtime=self)
        return options

    def dataloader(self, dataset: Any, batch_size: int | None = 1, *, autotune: bool = False,
                   batch_bytes: int | None = None, **overrides: Any) -> Any:
        """A ``torch.utils.data.DataLoader`` with :attr:`loader`'s settings, planned for one real
        batch (or ``batch_bytes``) so batches in flight fit in ``/dev/shm``, autotuned and
        cached if ``autotune``; your ``overrides`` always win (see
        :func:`portarun.loader.build_dataloader`). ``loader.portarun.explain()`` says why."""
        from .loader import build_dataloader

        return build_dataloader(self, dataset, batch_size, autotune=autotune, batch_bytes=batch_bytes, **overrides)

    # --- checkpoints and session (portarun/checkpoint/) ----------------------------------
    @cached_property
    def checkpoints(self) -> Checkpointer:
        """A :class:`~portarun.checkpoint.Checkpointer` on ``paths.checkpoints``, configured
        from this runtime (session deadline, main process, device, Drive staging on Colab).
        For other options use ``Checkpointer.from_runtime(rt, keep_last=..., ...)``."""
        from .checkpoint import Checkpointer

        return Checkpointer.from_runtime(self)

    # --- data in and out (portarun/submission.py, secrets.py, datasets.py, staging.py) ---
    def submit(self, data: Any, filename: str | os.PathLike[str] = "submission.csv", *, sample: Any = None,
               message: str | None = None, competition: str | None = None, dry_run: bool = False) -> Submission:
        """Validate a competition submission, write it atomically where this host expects it
        (``/kaggle/working/submission.csv`` on Kaggle, ``rt.paths.output`` elsewhere) and deliver
        it through the ``portarun_submit`` hook (Kaggle API with ``competition=`` off Kaggle;
        download offer on Colab). ``data``: a DataFrame, dict of columns, list of rows or CSV
        path; ``sample``: the sample submission (found under ``rt.paths.input`` when omitted);
        ``dry_run``: show the API call instead of making it. Raises
        :class:`~portarun.errors.SubmissionError`, having written nothing, when validation fails.
        See docs/submissions.md."""
        from .submission import submit

        return submit(self, data, filename, sample=sample, message=message, competition=competition,
                      dry_run=dry_run)

    @overload
    def secret(self, name: str) -> Secret: ...
    @overload
    def secret(self, name: str, default: str) -> Secret: ...
    @overload
    def secret(self, name: str, default: None) -> Secret | None: ...

    def secret(self, name: str, default: Any = ...) -> Secret | None:
        """The secret ``name`` from Colab's secrets panel, Kaggle's secrets, the environment or
        the project's ``.env`` file, in that order, as a :class:`~portarun.secrets.Secret`
        (``.reveal()`` gives the value; printing it never does). When it is nowhere: ``default``
        (wrapped, or ``None``) if given, else :class:`~portarun.errors.SecretNotFoundError`
        saying where it was looked for and how to add it on this host. See docs/secrets.md."""
        from .errors import SecretNotFoundError
        from .secrets import fallback, find

        try:
            return find(self, name)
        except SecretNotFoundError:
            if default is ...:
                raise
            return None if default is None else fallback(name, default)

    def dataset(self, ref: str | os.PathLike[str]) -> Path:
        """A local folder holding dataset ``ref``: a Kaggle handle ``owner/slug`` (the copy
        attached under ``rt.paths.input``, else a kagglehub download into ``rt.paths.cache``), an
        fsspec URL (copied into ``rt.paths.cache``), or a local/Drive path. Raises
        :class:`~portarun.errors.DatasetError` saying how to get it. See docs/data.md."""
        from .datasets import resolve

        return resolve(self, ref)

    def stage(self, src: str | os.PathLike[str], to: str | os.PathLike[str] = "scratch", *, workers: int | None = None,
              storage_options: dict[str, Any] | None = None, follow_symlinks: bool = False) -> StageResult:
        """Copy a file or folder (local path or fsspec URL) to fast local disk: into role ``to``
        as ``<role>/<name>``, or to exactly the path ``to``. Parallel, resumable (files with the
        same size and SHA-256 are skipped), atomic per file, with a progress bar; warns before
        exceeding free space or a host quota. Symbolic links leading out of a local source are
        skipped with a warning unless ``follow_symlinks=True``. The result is path-like and has
        ``.summary()``. Raises :class:`~portarun.errors.StagingError`. See docs/data.md."""
        from .staging import stage

        return stage(self, src, to, workers=workers, storage_options=storage_options, follow_symlinks=follow_symlinks)

    def stage_out(self, path: str | os.PathLike[str], to: str | os.PathLike[str] = "persist", *,
                  workers: int | None = None, storage_options: dict[str, Any] | None = None,
                  follow_symlinks: bool = False) -> StageResult:
        """Copy results at ``path`` back to lasting storage: role ``to`` (default ``persist``,
        possibly a bucket URL) as ``<role>/<name>``, or exactly the path/URL ``to``. Same
        guarantees as :meth:`stage`."""
        from .staging import stage_out

        return stage_out(self, path, to, workers=workers, storage_options=storage_options,
                         follow_symlinks=follow_symlinks)

    # --- run monitor (portarun/monitor/) --------------------------------------------------
    def monitor(self, **options: Any) -> Monitor:
        """A :class:`~portarun.monitor.Monitor` of this run, to use as a context manager: it
        samples CPU, RAM, GPUs, ``/dev/shm``, disks and session time in a background thread,
        times the loop's wait for data (``mon.wrap(loader)`` or ``with mon.step():``), writes
        a timeline under ``paths.output/monitor``, warns once before RAM or disk run out, and
        reports with advice (``mon.report()``). ``options``: see the class. Needs psutil
        (``pip install portarun[monitor]``). See docs/monitor.md."""
        from .monitor import Monitor

        return Monitor(self, **options)

    # --- integrations (portarun/integrations/) -------------------------------------------
    def configure_caches(self) -> dict[str, str]:
        """Point ``HF_HOME``, ``HF_DATASETS_CACHE``, ``TORCH_HOME`` and ``KAGGLEHUB_CACHE`` at
        folders under ``paths.cache``, leaving variables you set alone; call it before importing
        transformers or datasets. Returns each variable's value. See
        :func:`portarun.integrations.caches.configure_caches`."""
        from .integrations.caches import configure_caches

        return configure_caches(self)

    def __str__(self) -> str:
        from .display import runtime_text

        return runtime_text(self)

    def _repr_html_(self) -> str:
        from .display import runtime_html

        return runtime_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self) if cycle else str(self))
