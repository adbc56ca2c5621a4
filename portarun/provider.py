"""The provider contract: one class per host behind one API.

A provider answers two kinds of question. As a class, :meth:`Provider.detect` weighs the
evidence in a :class:`~portarun.probe.Probe` and returns a :class:`Detection` (or ``None``).
As an instance, bound to the probe of the winning detection, it says where each path role
lives, what the session's limits are and which devices to prefer.

Third-party providers subclass :class:`Provider` and register it through the
``portarun_register_providers`` hook, exactly as the built-ins do.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, NamedTuple, Protocol

from .probe import Probe

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .monitor.budgets import Budget
    from .runtime import Runtime
    from .secrets import Source
    from .submission import SubmitOptions

DeviceKind = Literal["cuda", "xla", "mps", "cpu"]

#: A detection below this confidence is reported by ``explain()`` but never wins; only the
#: fallback provider (``local``) is chosen below it.
MATCH_THRESHOLD = 0.5
#: A detection at or above this confidence but below :data:`MATCH_THRESHOLD` "came close":
#: ``explain()`` lists the markers it lacked (:attr:`Detection.missing`).
CLOSE_THRESHOLD = 0.2


class Detection(NamedTuple):
    """A provider's verdict: ``confidence`` in [0, 1] and the ``evidence`` behind it, one line
    per fact, each starting with the weight it added (``+0.40``) or ``note``. ``missing`` names
    the strong markers of this host that were looked for and not found, so that ``explain()``
    can say what a provider that came close lacked."""

    confidence: float
    evidence: tuple[str, ...]
    missing: tuple[str, ...] = ()


class Evidence:
    """Collects weighted facts and turns them into a :class:`Detection`.

    Weights add up and are capped at 0.99: no amount of circumstantial evidence is certainty.
    """

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._missing: list[str] = []
        self._total = 0.0

    def add(self, weight: float, fact: str, why: str) -> None:
        """Count ``fact`` with ``weight``; ``why`` says what it proves (and its source)."""
        self._total += weight
        self._lines.append(f"+{weight:.2f} {fact} ({why})")

    def note(self, fact: str, why: str) -> None:
        """Record a fact that was looked at and deliberately not counted."""
        self._lines.append(f"note {fact} ({why})")

    def missing(self, marker: str) -> None:
        """Record a strong marker of this host that was looked for and is absent."""
        self._missing.append(marker)

    def detection(self) -> Detection | None:
        """The detection, or ``None`` when nothing was seen at all (absent markers alone are
        not a detection)."""
        missing = tuple(self._missing)
        if self._total <= 0:
            return None if not self._lines else Detection(0.0, tuple(self._lines), missing)
        return Detection(min(round(self._total, 2), 0.99), tuple(self._lines), missing)


class HostLocations(NamedTuple):
    """Where a host keeps each kind of data, before overrides and project namespacing.

    ``persist`` is the root of storage that survives the session; the runtime puts
    ``<persist>/<project>`` and ``<persist>/<project>/checkpoints`` under it. ``persist_warning``
    says why ``persist`` is not really persistent here (e.g. Colab without Drive mounted).
    """

    input: Path | str
    scratch: Path | str
    output: Path | str
    persist: Path | str
    cache: Path | str
    persist_warning: str | None = None


class SessionLimits(NamedTuple):
    """What a host says about the session: its hard limit (``None`` if unlimited), and the
    source of that number, quoted in ``explain()``."""

    limit: timedelta | None
    source: str


class Preset(NamedTuple):
    """A host as :func:`portarun.testing.simulate` builds it: environment, folders, files,
    modules, whether the process is a notebook kernel, and the TPU of a TPU host (nothing else:
    CPUs and memory are the real machine's unless ``simulate`` is told otherwise, so code under
    test sizes itself to what really runs it). Providers ship theirs from :meth:`Provider.presets`;
    values should come from real environment dumps of the host."""

    env: Mapping[str, str]
    paths: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    kernel: bool = True
    tpu: str | None = None


class Quota(NamedTuple):
    """A storage cap a host puts on one of its folders: ``limit`` bytes, and the ``source`` of
    that number (quoted in staging warnings and the run monitor)."""

    limit: int
    source: str


class StorageSync(Protocol):
    """Storage that uploads lazily and must be flushed before the machine goes away (Colab's
    Drive mount): the checkpointer calls :meth:`ensure_mounted` before writing under it, sets
    :attr:`dirty` after a save, and calls :meth:`flush` after the deadline save and at exit."""

    dirty: bool

    def ensure_mounted(self) -> None:
        """Make the storage writable again if a flush detached it."""

    def flush(self, what: str) -> bool:
        """Push pending writes (of ``what``, for messages); ``False`` when that failed."""


class Provider(ABC):
    """Base class of every host provider (built-in or third-party)."""

    #: Short unique name, used by ``PORTARUN_HOST`` and ``portarun.testing.simulate``.
    name: ClassVar[str]
    #: Human-readable name for reports.
    display_name: ClassVar[str]
    #: Breaks ties between equally confident detections (higher wins).
    priority: ClassVar[int] = 0
    #: Whether this provider is the fallback chosen when nothing else matches (``local``).
    fallback: ClassVar[bool] = False
    #: Importable modules that mark this host; a simulation treats them as absent unless listed.
    marker_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    @classmethod
    @abstractmethod
    def detect(cls, probe: Probe) -> Detection | None:
        """Weigh the probe's evidence for this host. Must not raise, write or import heavy
        modules; returns ``None`` when there is no evidence at all."""

    @abstractmethod
    def locations(self, project: str) -> HostLocations:
        """Where this host keeps each path role (absolute paths under ``probe.path(...)``, or
        fsspec URLs)."""

    def session_limits(self) -> SessionLimits:
        """The host's session limit; unlimited by default."""
        return SessionLimits(limit=None, source="no session limit known for this host")

    #: Whether the host starts a fresh container or VM for each session, so that its PID 1
    #: started when the session did (Colab, Kaggle). ``False`` (the default) starts the
    #: session clock with this process: on a laptop PID 1 started at boot, days ago.
    session_per_container: ClassVar[bool] = False

    def session_start(self) -> float:
        """When this session started, as a Unix time: PID 1's start where
        :attr:`session_per_container`, else this process's (the kernel's, in a notebook)."""
        if self.session_per_container:
            return self.probe.host_started_at
        return self.probe.process_started_at

    def device_order(self) -> tuple[DeviceKind, ...]:
        """Accelerator kinds in order of preference on this host."""
        return ("cuda", "xla", "mps", "cpu")

    def budgets(self) -> tuple[Budget, ...]:
        """Quotas and prices this host publishes (weekly accelerator hours, a price per hour),
        each with its source and the date it was read, for the run monitor's estimates
        (:mod:`portarun.monitor.budgets`). Default: none known."""
        return ()

    def cpu_hint(self) -> int | None:
        """A CPU count the host publishes that is truer than what the kernel shows (RunPod's
        ``RUNPOD_CPU_COUNT``, say), or ``None``."""
        return None

    # -- what the host offers beyond paths: each has a default, so a provider overrides only
    # -- what its host has (docs/plugins.md "What a provider can supply").
    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        """Simulated machines of this host, by name (``name`` itself or ``name-<variant>``), that
        :func:`portarun.testing.simulate` accepts. Called only by simulations. Default: none."""
        return {}

    @classmethod
    def stand_in_apis(cls) -> Mapping[str, Mapping[str, Callable[..., object]]]:
        """What a simulation puts on the stand-ins of this host's modules (module → attribute →
        function), so that portarun's calls into them behave as on the host and stay quiet; set
        only where the module's parent is a stand-in, never on a real module. Default: none."""
        return {}

    def secret_sources(self) -> tuple[Source, ...]:
        """This host's secret stores (:class:`portarun.secrets.Source`), consulted in order
        before the environment and the ``.env`` file by ``rt.secret()``. Default: none."""
        return ()

    def submission_note(self, filename: str) -> str | None:
        """Where the host scores the written output file itself (Kaggle code competitions), how
        to submit ``filename`` there; ``rt.submit(competition=...)`` then adds this note instead
        of calling the Kaggle API. Default: ``None`` (the API is called)."""
        return None

    def deliver_submission(self, runtime: Runtime, path: Path, options: SubmitOptions) -> tuple[str, ...]:
        """Deliver the submission written at ``path`` the host's own way, after the generic
        delivery (upload, Kaggle API) succeeded; returns notes for ``Submission.notes``. Must
        not raise for a delivery that is only a convenience (warn instead). Default: nothing."""
        return ()

    def quotas(self) -> Mapping[str, Quota]:
        """Storage caps of this host, by host folder (``/kaggle/working``): staging warns before
        a copy would pass one, and the run monitor tracks their use. Default: none."""
        return {}

    def storage_sync(self, folder: Path) -> StorageSync | None:
        """The lazily uploading storage that local ``folder`` lives on, for the checkpointer to
        flush (and to stage saves beside it), or ``None`` (the default: writes are durable)."""
        return None

    def mount_drive(self, runtime: Runtime, mountpoint: str | None = None) -> Runtime:
        """Mount the host's cloud drive and return the runtime detected afresh (``rt.mount_drive()``
        delegates here). Default: :class:`~portarun.errors.NotAvailableError`."""
        from .errors import NotAvailableError

        raise NotAvailableError(
            f"Google Drive can only be mounted from Colab, and this is {self.display_name} ({self.name}). For "
            "persistent storage elsewhere, set PORTARUN_PERSIST_DIR to a folder or an fsspec URL (s3://..., gs://...)."
        )

    def missing_path_hint(self, path: str) -> str | None:
        """Why ``path``, which does not exist, may be missing on this host and what to do (Colab:
        a Drive path before Drive is mounted), for ``rt.dataset()``'s error. Default: ``None``."""
        return None

    @classmethod
    def version(cls) -> str | None:
        """Version of the distribution whose plugin registered this provider, once plugins are
        loaded (``portarun.detect()`` or ``portarun.providers()`` loads them); else ``None``."""
        from ._plugins.state import STATE

        dist = STATE.distribution_of(cls.__module__)
        return dist[1] if dist else None
