"""The :class:`Checkpointer`: crash-safe, asynchronous checkpoints with resume-from-latest.

Guarantees (docs/checkpoints.md states them with their limits):

* A checkpoint is visible to ``list``/``latest``/``load`` only once all its files and its
  manifest are written (see :mod:`.storage`); a save interrupted at any moment leaves the
  previous checkpoints untouched and loses at most that save.
* ``load`` checks every file's size and CRC-32 against the manifest and falls back to the
  previous intact checkpoint, with a :class:`~portarun.errors.PortarunWarning`, when one fails.
* Rotation runs only after a new checkpoint is published, and always keeps the newest.
* Disk full or quota exceeded raises :class:`~portarun.errors.StorageFullError`; the partial
  files are removed.
* Manifests are validated by one reader (:meth:`.manifest.Manifest.from_json`); a checkpoint
  with an unusable one is skipped with one warning. With ``weights_only=False`` the CRC-32 is
  checked before any unpickling.
* One process at a time saves into a root: the writer lease of :mod:`.lock`.
"""
from __future__ import annotations

import atexit
import io
import math
import operator
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._util.redact import shown_location
from .._util.units import format_size
from ..errors import CheckpointError, CorruptCheckpointError, warn
from ..paths import is_remote
from .loadable import check_loadable
from .lock import DEFAULT_LEASE, Holder, WriterLease
from .manifest import (
    MAX_STEP,
    STATE_FILE,
    FileEntry,
    Manifest,
    check_entry,
    checkpoint_name,
    crc32_file,
    open_regular,
    parse_name,
)
from .policy import Candidate, Mode, SavePolicy, _seconds, to_delete
from .signals import DEFAULT_GRACE, PreemptionGuard
from .storage import (
    IncompleteCheckpointError,
    LocalStorage,
    Storage,
    is_full,
    is_read_only,
    open_storage,
    read_only,
    storage_full,
)
from .training import ResumeResult, check_parts, restore, training_state
from .writer import Mode as WriteMode
from .writer import Writer, default_mode, write_state

if TYPE_CHECKING:
    from ..provider import StorageSync
    from ..runtime import Runtime
    from ..session import SessionInfo


@dataclass(frozen=True)
class CheckpointInfo:
    """A published checkpoint: its step, name, location, when it was saved, its size in bytes,
    its metrics and its kind (``torch`` or ``dcp``)."""

    step: int
    name: str
    location: str
    saved_at: datetime
    size: int
    metrics: dict[str, float]
    kind: str

    def __str__(self) -> str:
        return (f"step {self.step} ({format_size(self.size)}, {self.saved_at:%Y-%m-%d %H:%M:%S} UTC) at "
                f"{shown_location(self.location)}")

    def __repr__(self) -> str:  # ``location`` stays usable in full; only what is printed is masked
        return (f"CheckpointInfo(step={self.step!r}, name={self.name!r}, location={shown_location(self.location)!r}, "
                f"saved_at={self.saved_at!r}, size={self.size!r}, metrics={self.metrics!r}, kind={self.kind!r})")


#: Save reasons by priority: when ranks' rules differ, all save for the highest.
_REASONS: tuple[str | None, ...] = (None, "every_minutes", "every_steps", "before_deadline")
_AGREE_GROUP: list[Any] = []


def _agree(received: bool, reason: str | None) -> tuple[bool, str | None]:
    """What every rank of a distributed run does at this step: save when any rank's rule fired
    or any rank got a signal (a time rule or a signal can reach ranks at different steps), so
    that the ranks build their ``training_state`` together. One all-reduce of two integers per
    call, over gloo (a group of its own when the default one is not gloo, e.g. NCCL)."""
    import torch
    import torch.distributed as dist

    if not _AGREE_GROUP or _AGREE_GROUP[0] is not dist.group.WORLD:  # made again for a new default group
        _AGREE_GROUP[:] = [dist.group.WORLD, None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")]
    flags = torch.tensor([int(received), _REASONS.index(reason)], dtype=torch.int64)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=_AGREE_GROUP[1])
    return bool(flags[0]), _REASONS[int(flags[1])]


def _rank_and_world() -> tuple[int, int] | None:
    """``(rank, world_size)`` when torch.distributed is imported and initialized."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return None


#: How long before a session's deadline ``rt.checkpoints.maybe_save`` saves by default: enough to
#: write and promote a checkpoint of a few GB to Colab's Drive and flush it.
DEFAULT_DEADLINE_MARGIN = timedelta(minutes=15)
_T = TypeVar("_T")


class Checkpointer:
    """Save, list, load and resume checkpoints under ``root`` (a folder or an fsspec URL).

    ``keep_last`` newest and ``keep_best`` best (by ``best_metric``, ``best_mode`` ``min`` or
    ``max``) checkpoints are kept. ``every_steps``/``every_minutes``/``before_deadline`` (seconds
    or a timedelta before ``session``'s deadline) drive :meth:`maybe_save`. ``staging`` is a fast
    local folder where saves are written before being copied to ``root`` ("write locally, then
    promote"; used automatically for fsspec URLs). ``is_main`` says whether this process writes
    replicated states (``torch.distributed``'s rank 0 when initialized). ``map_location``
    (a value or a callable returning one) is where ``load`` puts tensors. ``mode`` is how
    background saves run (default ``auto``: ``fork`` where that is proven safe, else ``thread``;
    or ``fork``, ``thread``, ``blocking``; see :mod:`.writer`).
    ``handle_signals`` lets :meth:`maybe_save` catch SIGTERM/SIGUSR1 and save once within
    ``grace`` seconds. ``drive`` (a :class:`~portarun.provider.StorageSync`: Colab's Drive mount)
    is flushed after the deadline save and at exit.
    ``lease`` is how many seconds the writer lease on ``root`` (see :mod:`.lock`) stays valid
    without renewal: the first save takes it, and another process's save raises
    :class:`~portarun.errors.CheckpointLockedError` while it is held.
    """

    #: Where this checkpointer's saves come from (project, its origin, host; set by
    #: :meth:`from_runtime`), recorded in each :func:`training_state` it saves.
    origin: dict[str, str] | None = None

    def __init__(self, root: str | os.PathLike[str], *, keep_last: int = 3, keep_best: int = 0,
                 best_metric: str | None = None, best_mode: Mode = "min", every_steps: int | None = None,
                 every_minutes: float | None = None, before_deadline: float | timedelta | None = None,
                 session: SessionInfo | None = None, staging: str | os.PathLike[str] | None = None,
                 storage_options: dict[str, Any] | None = None, is_main: bool | Callable[[], bool] = True,
                 map_location: Any = None, mode: WriteMode | None = None, handle_signals: bool = True,
                 grace: float = DEFAULT_GRACE, drive: StorageSync | None = None,
                 lease: float = DEFAULT_LEASE) -> None:
        if type(keep_last) is not int or keep_last < 1:
            raise CheckpointError(f"keep_last must be an integer of at least 1 (the newest checkpoint is never "
                                  f"deleted), got {keep_last!r}.")
        if type(keep_best) is not int or keep_best < 0:
            raise CheckpointError(f"keep_best must be an integer of at least 0, got {keep_best!r}.")
        if keep_best and not best_metric:
            raise CheckpointError("keep_best needs best_metric: the name of a metric passed to save(metrics=...).")
        if best_mode not in ("min", "max"):
            raise CheckpointError(f"best_mode must be 'min' or 'max', got {best_mode!r}.")
        if best_metric is not None and not isinstance(best_metric, str):
            raise CheckpointError(f"best_metric must be the name (a str) of a metric passed to save(metrics=...), "
                                  f"got {best_metric!r}.")
        _seconds(grace, "grace")
        # str(None) would be a folder named 'None' in the working folder, and '' the working folder itself.
        if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise CheckpointError(f"the checkpoint root must be a folder path or an fsspec URL, got "
                                  f"{type(root).__name__} {root!r}.")
        self.root = str(root)
        try:
            self.storage: Storage = open_storage(root, storage_options)
        except (ValueError, ImportError) as exc:  # fsspec: an unknown protocol, its package not installed
            raise CheckpointError(f"cannot use {self.root} for checkpoints: {exc}. Check the URL's protocol (or "
                                  "install the package for it), or pass a local folder.") from None
        self.keep_last, self.keep_best, self.best_metric, self.best_mode = keep_last, keep_best, best_metric, best_mode
        self.session = session
        self.policy = SavePolicy(every_steps=every_steps, every_minutes=every_minutes, before_deadline=before_deadline,
                                 time_left=self._time_left)
        self._staging_dir = staging
        self._is_main = is_main
        self._map_location = map_location
        self.writer = Writer(mode or default_mode())
        self.drive = drive
        self.handle_signals = handle_signals
        self.guard = PreemptionGuard(self._drain, grace)
        self._last_step: int | None = None
        self._lock = threading.RLock()
        #: The writer lease on ``root`` (see :mod:`.lock`), taken by the first save.
        self.lease = WriterLease(self.storage, lease)
        #: Problems already reported by :meth:`list`, so each is warned about once.
        self._reported: set[str] = set()

    @property
    def staging(self) -> LocalStorage | None:
        """The local folder saves are written to before promotion, or ``None`` when they are
        written straight into a local root. Remote roots without one get a temporary folder."""
        if self._staging_dir is None and not self.storage.local:
            self._staging_dir = tempfile.mkdtemp(prefix="portarun-checkpoint-staging-")
        return LocalStorage(self._staging_dir) if self._staging_dir is not None else None

    @classmethod
    def from_runtime(cls, rt: Runtime, **options: Any) -> Checkpointer:
        """A checkpointer on ``rt.paths.checkpoints`` configured from the runtime: the
        session's deadline, ``rt.dist.is_main``, ``rt.device`` as ``map_location``, staging in
        ``rt.paths.scratch`` when the checkpoints live on a remote URL or on storage the provider
        flushes (:meth:`~portarun.provider.Provider.storage_sync`: Colab's Drive), and that
        flushing. Where the session has a limit, ``maybe_save`` saves once
        :data:`DEFAULT_DEADLINE_MARGIN` before it unless ``before_deadline`` is given.
        ``options`` override any keyword of :class:`Checkpointer`."""
        root = rt.paths.checkpoints
        sync = None if is_remote(root) else rt.provider.storage_sync(Path(root))
        defaults: dict[str, Any] = {
            "session": rt.session,
            "is_main": lambda: rt.dist.is_main,
            "map_location": lambda: rt.device.torch(),
            "drive": sync,
        }
        if rt.session.limit is not None:
            defaults["before_deadline"] = DEFAULT_DEADLINE_MARGIN
        if (sync is not None or is_remote(root)) and not is_remote(rt.paths.scratch):
            defaults["staging"] = Path(rt.paths.scratch) / "portarun-checkpoint-staging" / rt.project
        defaults.update(options)
        checkpointer = cls(root, **defaults)
        checkpointer.origin = {"project": rt.project, "origin": rt.project_origin,
                               "host": rt.host.name}
        return checkpointer

    def __repr__(self) -> str:
        return f"<Checkpointer {shown_location(self.root)!r} keep_last={self.keep_last} mode={self.writer.describe()}>"

    # -- who writes ------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """Whether this process writes replicated states: rank 0 of an initialized
        ``torch.distributed`` group, else the configured ``is_main``."""
        ranks = _rank_and_world()
        if ranks is not None:
            return ranks[0] == 0
        return self._is_main() if callable(self._is_main) else bool(self._is_main)

    def _time_left(self) -> float | None:
        left = self.session.time_left() if self.session is not None else None
        return None if left is None else left.total_seconds()

    # -- listing ---------------------------------------------------------------------------
    def list(self) -> list[CheckpointInfo]:
        """Published checkpoints, oldest first. Incomplete saves (no manifest yet) are not
        listed; a checkpoint whose manifest is unusable (malformed, out of range, not a regular
        file, too large, or in a newer format) is not listed either, with one
        :class:`~portarun.errors.PortarunWarning` per checkpointer saying what is wrong."""
        failed: CheckpointError | None = None
        try:
            names = self.storage.names()
        except CheckpointError:
            raise
        except Exception as exc:  # an unreachable host or bucket, a refused listing, a malformed bucket name
            failed = CheckpointError(f"cannot list the checkpoints in {self.root} ({_library_error(exc, self.root)}). "
                                     "Check that it can be reached (network, credentials: in the environment or "
                                     "storage_options, not in the URL), or point PORTARUN_CHECKPOINTS_DIR elsewhere.")
        if failed is not None:
            raise failed  # outside the ``except``: the library's error may quote a credential
        found = sorted((parse_name(n) or (0, 0), n) for n in names)
        infos = []
        for _, name in found:
            try:
                manifest = self.storage.manifest(name)
            except IncompleteCheckpointError:
                continue
            except (CorruptCheckpointError, OSError) as exc:
                self._report(f"{exc}" if isinstance(exc, CorruptCheckpointError)
                             else f"{self.storage.location(name)}: its manifest cannot be read ({exc}).")
                continue
            infos.append(self._info(name, manifest))
        return infos

    def _report(self, problem: str) -> None:
        """Warn once about a checkpoint that is skipped."""
        if problem not in self._reported:
            self._reported.add(problem)
            warn(f"skipped a checkpoint: {problem} It is not listed, loaded or rotated; the checkpoints before "
                 "it are used. Move it away or delete it once you have looked at it.")

    def _info(self, name: str, manifest: Manifest) -> CheckpointInfo:
        return CheckpointInfo(step=manifest.step, name=name, location=self.storage.location(name),
                              saved_at=datetime.fromtimestamp(manifest.saved_at, tz=timezone.utc),
                              size=manifest.size, metrics=dict(manifest.metrics), kind=manifest.kind)

    def latest(self) -> CheckpointInfo | None:
        """The newest published checkpoint whose files have the sizes in its manifest (a
        cheap check; :meth:`load` also verifies checksums), or ``None``."""
        for info in reversed(self.list()):
            try:
                self._check_sizes(info.name, self.storage.manifest(info.name))
            except (CorruptCheckpointError, OSError):
                continue
            return info
        return None

    def _check_sizes(self, name: str, manifest: Manifest) -> None:
        sizes = self.storage.sizes(name)
        for file, entry in manifest.files.items():
            check_entry(self.storage.location(name), file, entry, sizes.get(file, -1), None)

    # -- saving ----------------------------------------------------------------------------
    def save(self, state: Any, step: int | None = None, metrics: dict[str, float] | None = None, *,
             blocking: bool = False, weights_only: bool = True) -> str | None:
        """Save a replicated state (nested dicts/lists of tensors and plain values) as
        checkpoint ``step`` (default: one after the last) with optional ``metrics``.

        A state that ``torch.load(weights_only=True)`` would refuse (a custom class, a numpy
        array) raises :class:`~portarun.errors.CheckpointError` naming it, before anything is
        written; ``weights_only=False`` writes it anyway (then only ``load``/``resume`` with
        ``weights_only=False`` read it). A :func:`training_state` gets this checkpointer's
        ``origin`` in its ``meta``.

        Returns the checkpoint's name, or ``None`` on processes that are not the main one
        (they write nothing and never block, so calling ``save`` on every rank is safe). With
        ``blocking=False`` the state is snapshotted and written in the background; the
        previous background save is finished first, and its error, if any, is raised here.
        """
        if not self.is_main:
            return None
        if weights_only:
            check_loadable(state)
        if self.origin and isinstance(state, dict) and isinstance(state.get("meta"), dict):
            state = {**state, "meta": {**state["meta"], "origin": dict(self.origin)}}
        with self._lock:
            self.writer.wait()
            if step is None:
                step = self._next_step()
            step = _checked_step(step)
            clean = _checked_metrics(metrics)
            _LIVE.add(self)
            if self.drive is not None:
                self.drive.ensure_mounted()
            _translated(self.root, self._prepare_root)
            if self._last_step is None or step < self._last_step:
                self._refuse_going_back(step)
            staging = self.staging
            staged: Path | None = None
            if staging is not None:
                _translated(staging.root, staging.clean_incomplete)  # copies staged by writers that were killed
            name = self._free_name(step)
            if staging is not None:
                # Named after this process, which promotes it.
                staged = _translated(staging.root, lambda: staging.temp_dir(name))
            world = (_rank_and_world() or (0, 1))[1]
            try:
                self.writer.submit(state, lambda s: self._write(s, name, step, clean, world, staged),
                                   lambda m: self._finish(name, m, staged), blocking)
            except BaseException:
                if staged is not None and not self.writer.busy:
                    shutil.rmtree(staged, ignore_errors=True)
                raise
            self._last_step = step
            return name

    def break_lock(self) -> Holder | None:
        """Take the writer lease on the root away from whoever holds it, and return who did
        (host, pid, since when; ``None`` when nobody did). For a writer you know is gone
        before its lease runs out, e.g. a disconnected Colab VM: if it is in fact still
        running, two writers will overwrite each other's checkpoints. The next save takes the
        lease. ``PORTARUN_CHECKPOINT_TAKEOVER=1`` does the same at every save."""
        return _translated(self.root, self.lease.break_lock)

    def _prepare_root(self) -> None:
        self.lease.acquire()  # before anything is written or cleaned here
        self.storage.clean_incomplete()

    def _refuse_going_back(self, step: int) -> None:
        """Refuse a step below the newest published checkpoint's: rotation keeps the highest
        steps, so it would be deleted as soon as it is published (while ``save`` returned its
        name), and ``resume()`` would still pick the newer one. Checked at this checkpointer's
        first save and whenever its steps go down, so saving in order costs no listing."""
        newest = max((i for i in self.list() if i.kind == "torch"), key=lambda i: i.step, default=None)
        if newest is not None and step < newest.step:
            raise CheckpointError(
                f"cannot save step {step} in {self.root}: it is below the newest checkpoint there, step "
                f"{newest.step} ({newest.name}), so keep_last rotation would delete it at once and resume() would "
                "still pick the newer one. Nothing was written. To continue that run, resume() from it first; "
                "to start a new run, save it in another folder (Checkpointer(other_root) or "
                "PORTARUN_CHECKPOINTS_DIR); to go back to an earlier step, delete the newer checkpoints.")

    def _next_step(self) -> int:
        if self._last_step is None:
            latest = self.latest()
            return latest.step + 1 if latest else 0
        return self._last_step + 1

    def _free_name(self, step: int) -> str:
        taken = set(self.storage.names()) | (set(self.staging.names()) if self.staging else set())
        attempt = 0
        while checkpoint_name(step, attempt) in taken:
            attempt += 1
        return checkpoint_name(step, attempt)

    @property
    def _local(self) -> LocalStorage:
        """Where saves are first written: the staging folder, or the root itself."""
        if self.staging is not None:
            return self.staging
        assert isinstance(self.storage, LocalStorage)
        return self.storage

    def _write(self, state: Any, name: str, step: int, metrics: dict[str, float], world: int,
               staged: Path | None) -> Manifest:
        """Write ``state`` into the staged folder ``staged``, or, without staging, write and
        publish it as ``name`` in the root (runs in a forked child in ``fork`` mode, so it
        touches local files only)."""
        target = self._local
        temp = staged if staged is not None else target.temp_dir(name)
        try:
            entry = write_state(state, temp / STATE_FILE, show_progress=not self.writer.forking)
            manifest = Manifest(step=step, saved_at=time.time(), files={STATE_FILE: entry}, metrics=metrics,
                                world_size=world)
            if staged is None:
                target.commit(temp, name, manifest)
            return manifest
        except BaseException as exc:
            written = _size_hint(temp)  # before the partial files go: the error says how far it got
            shutil.rmtree(temp, ignore_errors=True)
            if is_full(exc):
                raise storage_full(target.root, written, exc) from exc
            if is_read_only(exc):
                raise read_only(target.root, exc) from exc
            raise

    def _finish(self, name: str, manifest: Manifest, staged: Path | None) -> None:
        """Promote a staged checkpoint to the root (manifest last), checking first that this
        process still holds the writer lease, then rotate."""
        try:
            self.lease.acquire()  # still ours? (a promotion may come long after the save)
            if staged is not None:
                self.storage.publish(staged, name, manifest)
        except BaseException as exc:
            if is_full(exc):
                raise storage_full(self.root, manifest.size, exc, exact=True) from exc
            if is_read_only(exc):
                raise read_only(self.root, exc) from exc
            raise
        finally:
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
        if self.drive is not None:
            self.drive.dirty = True
        self._rotate()

    def _rotate(self) -> None:
        """Apply keep_last/keep_best to replicated and sharded checkpoints separately."""
        infos = self.list()
        for kind in {i.kind for i in infos}:
            published = [Candidate(i.name, i.step, i.metrics) for i in infos if i.kind == kind]
            for name in to_delete(published, self.keep_last, self.keep_best, self.best_metric, self.best_mode):
                self.storage.delete(name)

    def wait(self) -> None:
        """Block until the background save (if any) is published; raise its error."""
        self.writer.wait()

    def close(self) -> None:
        """Finish pending saves and flush Colab's Drive mount (also run at interpreter exit)."""
        try:
            self.writer.wait()
        finally:
            try:
                self.lease.release()  # before Drive is flushed and unmounted
            except OSError as exc:
                warn(f"could not release the writer lease on {self.root} ({exc}); it expires "
                     f"{self.lease.lease:.0f} s after its last renewal.")
            if self.drive is not None:
                self.drive.flush(f"checkpoints in {self.root}")

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:
            warn(f"the last checkpoint save to {self.root} failed: {exc}")

    def _drain(self) -> None:
        """The signal watchdog's last act: let the pending write finish."""
        try:
            self.close()
        except Exception:
            pass

    # -- policy and signals ----------------------------------------------------------------
    def maybe_save(self, state_fn: Callable[[], Any], step: int, metrics: dict[str, float] | None = None) -> bool:
        """Call at the end of each training step with a function building the state (called
        only when a save happens; only the main process writes it). Saves when a rule fires
        (``every_steps``, ``every_minutes``, ``before_deadline``) in the background, or, after
        SIGTERM/SIGUSR1, in the foreground and then lets the signal take its default course.
        The deadline save is waited for and, on Colab's Drive, flushed. Returns whether it saved.

        Under an initialized ``torch.distributed`` with several ranks, every rank must call it
        at every step: the ranks agree (one small all-reduce) to save at a step where any
        rank's rule fired or any rank got the signal, so that all of them build the state
        together (:func:`training_state` gathers each rank's random states and loader place).
        """
        if not callable(state_fn):
            raise CheckpointError(f"maybe_save takes a function that builds the state, called only when a save "
                                  f"happens (lambda: training_state(model, optimizer)), not the state itself: got "
                                  f"{type(state_fn).__name__}.")
        step = _checked_step(step)
        if self.handle_signals and not self.guard.installed:
            self.guard.install()
        try:  # keeps the writer lease alive between saves; a lost lease is raised here
            self.lease.renew_if_held()
        except OSError:
            pass  # an unreachable store: the next save retries and reports it
        received = self.guard.received is not None
        reason = None if received else self.policy.reason(step)
        ranks = _rank_and_world()
        if ranks is not None and ranks[1] > 1:  # training_state gathers from every rank: all save, or none
            received, reason = _agree(received, reason)
        if received:
            self.save(state_fn(), step, metrics, blocking=True)
            self.close()
            if self.guard.received is not None:
                self.guard.finish()
            return True
        if reason is None:
            return False
        self.save(state_fn(), step, metrics, blocking=False)
        self.policy.saved()
        if reason == "before_deadline":
            self.close()
        return True

    # -- loading ---------------------------------------------------------------------------
    def load(self, step: int | None = None, map_location: Any = None, *, weights_only: bool = True) -> Any:
        """The state of checkpoint ``step``, or of the newest intact one.

        Sizes and CRC-32s are checked against the manifest. Without ``step``, a corrupt
        checkpoint is skipped for the previous one with a warning; with ``step``, it raises
        :class:`~portarun.errors.CorruptCheckpointError`. ``map_location`` defaults to the
        runtime's device. Raises :class:`~portarun.errors.CheckpointError` when there is none.
        """
        return self._load(step, map_location, weights_only)[1]

    def _load(self, step: int | None, map_location: Any, weights_only: bool) -> tuple[CheckpointInfo, Any]:
        infos = [i for i in self.list() if i.kind == "torch"]
        if step is not None:
            step = _checked_step(step)  # "2" would match nothing and read as "no checkpoint of step 2"
            infos = [i for i in infos if i.step == step][-1:]
            if not infos:
                raise CheckpointError(f"no checkpoint of step {step} in {self.root}; found steps "
                                      f"{[i.step for i in self.list()] or 'none'}.")
        if not infos:
            raise CheckpointError(f"no checkpoint in {self.root}. Save one with save(), or use resume(), "
                                  "which starts fresh when there is none.")
        location = self._resolve_map_location(map_location)
        problems: list[str] = []
        for info in reversed(infos):
            try:
                state = self._load_one(info, location, weights_only)
            except CorruptCheckpointError as exc:
                if step is not None:
                    raise
                problems.append(str(exc))
                continue
            if problems:
                warn(f"skipped corrupt checkpoint(s): {'; '.join(problems)}. Loaded {info} instead.")
            return info, state
        raise CorruptCheckpointError(f"every checkpoint in {self.root} is corrupt: {'; '.join(problems)}")

    def _resolve_map_location(self, map_location: Any, resume: bool = False) -> Any:
        if map_location is None:
            configured = self._map_location
            map_location = configured() if callable(configured) else configured
        return _checked_map_location(map_location, resume)

    def _load_one(self, info: CheckpointInfo, map_location: Any, weights_only: bool) -> Any:
        manifest = self.storage.manifest(info.name)
        if manifest.kind != "torch":
            raise CheckpointError(f"{info.location} is a sharded (torch.distributed.checkpoint) checkpoint; "
                                  "load it with load_sharded(state_dict).")
        entry = manifest.files[STATE_FILE]
        where = self.storage.location(info.name)
        folder = self.storage.local_path(info.name)
        if folder is not None:
            path = folder / STATE_FILE
            try:
                found = path.lstat()  # a link or a FIFO planted as state.pt is never opened
                size = found.st_size if stat.S_ISREG(found.st_mode) else -1
            except FileNotFoundError:
                size = -1
            check_entry(where, STATE_FILE, entry, size, None)
            return _load_verified(path, entry, where, map_location, weights_only)
        check_entry(where, STATE_FILE, entry, self.storage.sizes(info.name).get(STATE_FILE, -1), None)
        data = self.storage.read(info.name, STATE_FILE)
        from .manifest import crc32_bytes

        check_entry(where, STATE_FILE, entry, len(data), crc32_bytes(data))
        return _torch_load(io.BytesIO(data), where, map_location, weights_only)

    def resume(self, model: Any = None, optimizer: Any = None, scheduler: Any = None, scaler: Any = None, *,
               map_location: Any = None, strict: bool = True, rng: bool = True,
               weights_only: bool = True, loader: Any = None) -> ResumeResult:
        """Restore the newest loadable checkpoint saved from :func:`training_state` into the
        given objects (and the RNG states) and return a :class:`ResumeResult`: the step to
        continue from (an ``int``: the saved step, or 0 when there is no checkpoint) with the
        state's ``extra``, ``epoch``, ``accumulated`` and the ``checkpoint`` it came from.
        ``loader`` (from ``rt.dataloader``) is given its saved place in the data: its next
        ``iter()`` continues the interrupted epoch.

        A newest checkpoint that cannot be loaded (corrupt, or holding objects that
        ``weights_only`` loading refuses) is skipped for the previous one with a
        :class:`~portarun.errors.PortarunWarning` naming it; when none loads, raises
        :class:`~portarun.errors.CheckpointError`. A checkpoint that does not fit ``model`` or
        ``optimizer`` (other keys or shapes, other param groups) raises ``CheckpointError``
        naming its folder, its step and the first mismatching keys, and leaves every object and
        the RNGs untouched. ``weights_only=False`` unpickles arbitrary objects: only for
        checkpoints you trust.

        Under an initialized ``torch.distributed`` every rank must call it: rank 0 picks the
        checkpoint and broadcasts its name, so all ranks resume from the same one, and all
        return once every rank has read it (so that rank 0's next save cannot rotate it away
        under a slower rank)."""
        check_parts("resume", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        ranks = _rank_and_world()
        info: CheckpointInfo | None = None
        state: Any = None
        if ranks is None or ranks[0] == 0:
            found = self._newest_loadable(map_location, weights_only)
            if found is not None:
                info, state = found
        if ranks is not None and ranks[1] > 1:
            import torch.distributed as dist

            box = [info]
            dist.broadcast_object_list(box, src=0)
            info = box[0]
            error: BaseException | None = None
            if ranks[0] != 0 and info is not None:
                try:
                    state = self._load_one(info, self._resolve_map_location(map_location, resume=True),
                                           weights_only)
                except BaseException as exc:  # raised after the barrier, so rank 0 is not left waiting
                    error = exc
            # Rank 0's next save may rotate this checkpoint away: not before every rank has read it.
            dist.barrier()
            if error is not None:
                raise error
        if info is None:
            return ResumeResult(0)
        restore(state, model, optimizer, scheduler, scaler, strict=strict, rng=rng, loader=loader,
                where=f"checkpoint {info}")
        self._last_step = info.step
        extra = state.get("extra") if isinstance(state, dict) else None
        return ResumeResult(info.step, extra=extra if isinstance(extra, dict) else None, checkpoint=info)

    def _newest_loadable(self, map_location: Any, weights_only: bool) -> tuple[CheckpointInfo, Any] | None:
        """The newest replicated checkpoint that loads, and its state; ``None`` when there is
        none. Skipped ones are named in a warning; raises when there are some but none loads."""
        infos = [i for i in self.list() if i.kind == "torch"]
        if not infos:
            return None
        location = self._resolve_map_location(map_location, resume=True)
        skipped: list[CheckpointError] = []
        for info in reversed(infos):
            try:
                state = self._load_one(info, location, weights_only)
            except CheckpointError as exc:
                skipped.append(exc)
                continue
            if skipped:
                warn(f"resume() skipped {len(skipped)} newer checkpoint(s) it cannot load: "
                              f"{'; '.join(map(str, skipped))} Resumed from {info} instead.")
            return info, state
        all_corrupt = all(isinstance(e, CorruptCheckpointError) for e in skipped)
        kind = CorruptCheckpointError if all_corrupt else CheckpointError
        raise kind(f"no checkpoint in {shown_location(self.root)} can be resumed: {'; '.join(map(str, skipped))} "
                   "Move them away to start fresh, or fix what each message says.")

    # -- sharded states (torch.distributed.checkpoint) -------------------------------------
    def save_sharded(self, state_dict: dict[str, Any], step: int, metrics: dict[str, float] | None = None) -> str:
        """Save a sharded state with ``torch.distributed.checkpoint`` (a collective: every rank
        calls it, blocking). Rank 0 then checksums the folder, writes the manifest and
        publishes it; all ranks return after publication. Local (or mounted) roots only."""
        import torch.distributed as dist
        from torch.distributed.checkpoint.filesystem import FileSystemWriter
        from torch.distributed.checkpoint.state_dict_saver import save

        if not isinstance(self.storage, LocalStorage):
            raise CheckpointError(f"save_sharded writes with torch.distributed.checkpoint's FileSystemWriter and "
                                  f"needs a local or mounted folder, not {self.root}.")
        step = _checked_step(step)
        clean = _checked_metrics(metrics)
        self.wait()
        ranks = _rank_and_world() or (0, 1)
        box: list[Any] = [(self._free_name(step), uuid.uuid4().hex[:8]) if ranks[0] == 0 else None]
        if ranks[1] > 1:
            dist.broadcast_object_list(box, src=0)
        name: str = box[0][0]
        token: str = box[0][1]
        temp = self.storage.path / f".tmp-{name}-dcp-{token}"
        try:
            save(state_dict, storage_writer=FileSystemWriter(str(temp)))
            if ranks[0] == 0:
                files = {}
                for file in sorted(p for p in temp.rglob("*") if p.is_file()):
                    size, crc = crc32_file(file)
                    files[file.relative_to(temp).as_posix()] = FileEntry(size, crc)
                manifest = Manifest(step=step, saved_at=time.time(), files=files, kind="dcp",
                                    metrics=clean, world_size=ranks[1])
                self.storage.commit(temp, name, manifest)
                self._rotate()
        except BaseException as exc:
            written = _size_hint(temp)  # this rank's view of the partial files, before they go
            if ranks[0] == 0:
                shutil.rmtree(temp, ignore_errors=True)
            if is_full(exc):
                raise storage_full(self.root, written, exc) from exc
            if is_read_only(exc):
                raise read_only(self.root, exc) from exc
            raise
        finally:
            if ranks[1] > 1:
                dist.barrier()
        self._last_step = step
        return name

    def load_sharded(self, state_dict: dict[str, Any], step: int | None = None) -> int:
        """Load a sharded checkpoint into ``state_dict`` in place (every rank calls it) and
        return its step; verifies sizes and CRC-32s first."""
        from torch.distributed.checkpoint.filesystem import FileSystemReader
        from torch.distributed.checkpoint.state_dict_loader import load

        infos = [i for i in self.list() if i.kind == "dcp" and (step is None or i.step == step)]
        if not infos:
            raise CheckpointError(f"no sharded checkpoint{'' if step is None else f' of step {step}'} in {self.root}.")
        info = infos[-1]
        manifest = self.storage.manifest(info.name)
        folder = self.storage.local_path(info.name)
        assert folder is not None
        for file, entry in manifest.files.items():
            try:
                size, crc = crc32_file(folder / file)
            except OSError as exc:  # missing, or a link or FIFO planted in its place
                raise CorruptCheckpointError(f"{info.location}/{file}: cannot be read as a regular file "
                                             f"({type(exc).__name__}: {exc}).") from None
            check_entry(info.location, file, entry, size, crc)
        load(state_dict, storage_reader=FileSystemReader(str(folder)))
        return info.step


#: Checkpointers that saved, closed at interpreter exit (weakly held: a collected one has
#: nothing pending, since a pending write holds a reference to it).
_LIVE: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for ck in list(_LIVE):
        ck._at_exit()


def _checked_step(step: Any) -> int:
    """``step`` as an int from 0 to 2**63 - 1; anything else raises :class:`CheckpointError`."""
    try:
        value = operator.index(step) if not isinstance(step, bool) else None
    except TypeError:
        value = None
    if value is None or not 0 <= value <= MAX_STEP:
        raise CheckpointError(f"step must be an integer from 0 to 2**63 - 1 (the number of completed steps), "
                              f"got {step!r}.")
    return int(value)


def _checked_metrics(metrics: Any) -> dict[str, float]:
    """``metrics`` as a dict of names to finite floats (numbers or 0-d tensors); anything else
    raises :class:`CheckpointError`: a NaN or infinite value cannot rank checkpoints for keep_best."""
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"metrics must be a dict of names to numbers, got {type(metrics).__name__}.")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise CheckpointError(f"metric names must be strings, got {key!r}.")
        try:
            number = float(value) if not isinstance(value, (str, bytes)) else math.nan
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
            number = math.nan
        if not math.isfinite(number):
            raise CheckpointError(f"metric {key!r} must be a finite number, got {value!r}; nothing was saved. "
                                  "Leave a diverged value out of metrics (or save it in the state instead).")
        clean[key] = number
    return clean


def _translated(where: str, action: Callable[[], _T]) -> _T:
    """``action()``, turning what the storage raises while preparing a save (a read-only folder,
    a full disk, a root that is a file, an unreachable bucket, a bucket name its library refuses)
    into a :class:`CheckpointError` (a :class:`StorageFullError` for no space) saying what
    happened and what to do. Other errors are raised outside the ``except`` and chain nothing:
    a library's error may quote credentials of ``where``. (A function, not a context manager: an
    error raised from a context manager's exit is chained to the one it replaces.)"""
    failed: CheckpointError | None = None
    try:
        return action()
    except CheckpointError:
        raise
    except NotImplementedError as exc:  # an fsspec protocol that cannot write (http, zip, ...)
        failed = CheckpointError(f"cannot save a checkpoint in {where}: that storage cannot be written "
                                 f"({_library_error(exc, where)}). Point PORTARUN_CHECKPOINTS_DIR at a folder or a "
                                 "writable bucket.")
    except OSError as exc:
        if is_full(exc):
            raise storage_full(where, 0, exc) from exc
        if is_read_only(exc):
            raise read_only(where, exc) from exc
        failed = CheckpointError(f"cannot save a checkpoint in {where} ({_library_error(exc, where)}); nothing was "
                                 "written and the published checkpoints are untouched. Check that it is a folder (or "
                                 "bucket) this process can reach and write, or point PORTARUN_CHECKPOINTS_DIR "
                                 "elsewhere.")
    except Exception as exc:  # botocore and other libraries' own errors
        failed = CheckpointError(f"cannot save a checkpoint in {where} ({_library_error(exc, where)}); nothing was "
                                 "written and the published checkpoints are untouched. Check the location and its "
                                 "credentials (in the environment or storage_options, not in the URL), or point "
                                 "PORTARUN_CHECKPOINTS_DIR elsewhere.")
    assert failed is not None
    raise failed


def _library_error(exc: BaseException, where: str) -> str:
    """``Type: message`` of a storage library's error, without the credentials of ``where``."""
    from ..staging import without_credentials

    return f"{type(exc).__name__}: {without_credentials(str(exc), where)}"


def _size_hint(folder: Path) -> int:
    try:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    except OSError:
        return 0


def _checked_map_location(value: Any, resume: bool) -> Any:
    """``value`` if ``torch.load`` can put tensors there on this machine, else
    :class:`CheckpointError`: checked before any checkpoint is read, because torch's own error
    for a device that is not there would make every intact checkpoint look unloadable. A dict or
    a function is torch's to apply; ``'meta'`` is refused for ``resume()``, which copies values
    and ``'meta'`` tensors hold none."""
    if value is None or callable(value) or isinstance(value, dict):
        return value
    import torch

    if not isinstance(value, (str, torch.device)):
        raise CheckpointError(f"map_location must be a device ('cpu', 'cuda', 'cuda:1', a torch.device), a dict of "
                              f"device names or a function, as torch.load takes; got {type(value).__name__} "
                              f"{value!r}. Nothing was loaded.")
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"map_location {value!r} is not a device torch knows ({exc}); use 'cpu', 'cuda', "
                              "'cuda:0', ... Nothing was loaded.") from None
    if device.type == "meta" and resume:
        raise CheckpointError("map_location 'meta' cannot be resumed from: resume() copies the saved values into "
                              "your objects, and tensors on 'meta' hold none. Leave map_location out (the "
                              "runtime's device) or pass 'cpu'. Nothing was restored.")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise CheckpointError(f"map_location {value!r} names a CUDA device this machine does not have (it has "
                                  f"{count}); pass 'cpu', or a device that is there. The checkpoints are untouched.")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CheckpointError(f"map_location {value!r}: MPS is not available on this machine; pass 'cpu'. The "
                              "checkpoints are untouched.")
    return value


def _torch_load(source: Any, where: str, map_location: Any, weights_only: bool) -> Any:
    import pickle

    import torch

    try:
        return torch.load(source, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{where} holds objects that weights_only loading refuses ({exc}). Save tensors and plain values "
            "only, or, if you trust the file, load it with load(..., weights_only=False).") from exc


def _load_verified(path: Path, entry: FileEntry, where: str, map_location: Any, weights_only: bool) -> Any:
    """``torch.load`` a local file whose CRC-32 matches the manifest; a mismatch (or a load
    error on a file that fails the check) is corruption.

    The file is opened once, only if it is a regular file (:func:`open_regular`), and both the
    check and ``torch.load`` read that open file: a ``state.pt`` replaced by a link or another
    file after the check is never what gets unpickled. With ``weights_only=False`` unpickling
    runs code named in the file, so the whole file is checked *before* ``torch.load`` reads it.
    With ``weights_only=True`` torch's restricted unpickler runs no code, so the CRC-32 is
    computed in a helper thread (positioned reads, leaving ``torch.load``'s offset alone) while
    ``torch.load`` reads the same page cache, and the state is returned only once it matches."""
    try:
        stream = open_regular(path)
    except OSError:
        raise CorruptCheckpointError(f"{where}/{STATE_FILE}: cannot be read as a regular file.") from None
    with stream:
        result: list[tuple[int, str]] = []

        def checksum() -> None:
            try:
                result.append(_crc32_at(stream.fileno()))
            except OSError:
                pass  # reported below as a file that cannot be read

        def check() -> None:
            if not result:
                raise CorruptCheckpointError(f"{where}/{STATE_FILE}: cannot be read as a regular file.")
            check_entry(where, STATE_FILE, entry, result[0][0], result[0][1])

        if not weights_only:
            checksum()
            check()
            return _torch_load(stream, where, map_location, weights_only)
        checker = threading.Thread(target=checksum, name="portarun-verify")
        checker.start()
        try:
            state = _torch_load(stream, where, map_location, weights_only)
        except Exception as exc:
            checker.join()
            check()
            if isinstance(exc, CheckpointError):
                raise
            # Its CRC-32 matches the manifest, so the file is intact: not corruption.
            raise CheckpointError(f"{where}/{STATE_FILE} is intact (its CRC-32 matches the manifest) but torch.load "
                                  f"failed: {type(exc).__name__}: {exc}. Check map_location and the installed torch "
                                  "version.") from exc
        checker.join()
        check()
        return state


def _crc32_at(fd: int) -> tuple[int, str]:
    """``(size, crc32 hex)`` of the open file ``fd``, read with ``pread`` from offset 0, so a
    reader of the same descriptor (``torch.load``) keeps its own position."""
    crc, size = 0, 0
    while chunk := os.pread(fd, 8 << 20, size):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    return size, f"{crc:08x}"


__all__ = ["Checkpointer", "CheckpointInfo", "training_state"]
