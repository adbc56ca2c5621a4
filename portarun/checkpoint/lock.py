"""The writer lease: one process at a time saves into a checkpoint root.

Two processes saving into one folder (two notebooks on one shared Drive folder, a job started
twice) would pick the same ``step-*`` names and rotate each other's checkpoints away. So a
process that saves first takes a *lease* on the root: a small file ``.portarun-writer.json``
holding its host, pid, a random token, when it started writing and when it last renewed the
lease. No ``flock``/``fcntl`` is used: they do not work across machines on FUSE mounts such as
Google Drive, nor on object stores.

* **Taking it** is an exclusive create: a hard link of a fully written file (``link(2)`` fails
  with EEXIST atomically; ``O_CREAT | O_EXCL`` where a mount has no links), or on fsspec a
  conditional create (``If-None-Match: *`` on S3; fsspec's existence check elsewhere, not
  atomic). The file is then read back: only the process whose token is there holds it.
* **Renewing** rewrites it (``renewed`` = now) at each save once a quarter of the lease has
  passed, and :meth:`~portarun.checkpoint.Checkpointer.maybe_save` does so at every step, so a
  training loop keeps its lease between saves; before each publication the holder checks it
  still holds it.
* **Stale** means provably dead (same host name and boot id, pid not running) or not renewed
  for longer than the lease (:data:`DEFAULT_LEASE`, 10 minutes; clocks of different machines are
  compared, so keep them roughly in sync). A stale lease is taken over by the next save; one of another machine
  with a :class:`~portarun.errors.PortarunWarning` naming it.
* **Otherwise** saving raises :class:`~portarun.errors.CheckpointLockedError` naming the holder.
  If you know it is gone before its lease runs out (a Colab VM that was disconnected a minute
  ago), take over with ``Checkpointer.break_lock()`` or ``PORTARUN_CHECKPOINT_TAKEOVER=1``.
* **Released** by ``close()`` (also run at interpreter exit).

Readers (``list``, ``load``, ``resume``) never take the lease. Two checkpointers of one process
share it. Two processes taking over the same stale lease at the same instant can both believe
they won; the loser finds out at its next renewal, before it publishes, and stops with
``CheckpointLockedError``.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import CheckpointError, CheckpointLockedError, warn
from .storage import Storage, process_alive, this_host

#: Seconds without renewal after which a lease is stale and may be taken over.
DEFAULT_LEASE = 600.0
#: Set to ``1`` to take over the lease even from a writer that looks alive.
TAKEOVER_ENV = "PORTARUN_CHECKPOINT_TAKEOVER"
_FORMAT = "portarun-writer-lease/1"
_MAX_LEASE = 7 * 24 * 3600.0
_MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z


def _new_token() -> str:
    return uuid.uuid4().hex


#: This process's identity in leases; a forked child gets its own.
_TOKEN = _new_token()


def _renew_token() -> None:
    global _TOKEN
    _TOKEN = _new_token()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_token)


def _boot_id() -> str:
    """This boot's random id (``/proc/sys/kernel/random/boot_id``, "a random UUID generated once
    per boot", proc_sys_kernel(5)); ``""`` where there is none (macOS, Windows)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as source:
            return source.read(64).strip()
    except OSError:
        return ""


_BOOT_ID = _boot_id()


def _time(value: float) -> str:
    return datetime.fromtimestamp(value, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", " UTC")


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: host, pid, the process's random token, when it started writing,
    when it last renewed, and the lease length in seconds."""

    host: str
    pid: int
    token: str
    started: float
    renewed: float
    lease: float
    #: The holder machine's boot id: with the host name, what tells "this machine" apart from
    #: another VM or container that happens to have the same host name.
    boot: str = ""

    def to_json(self) -> bytes:
        return json.dumps({"format": _FORMAT, **asdict(self)}, allow_nan=False).encode()

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The holder in a lease file, or ``None`` when it is not a valid one."""
        try:
            raw: Any = json.loads(data.decode("utf-8"), parse_constant=lambda name: None)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            return None
        host, pid, token, boot = raw.get("host"), raw.get("pid"), raw.get("token"), raw.get("boot", "")
        numbers = [raw.get(k) for k in ("started", "renewed", "lease")]
        if (not isinstance(host, str) or not 0 < len(host) <= 255 or type(pid) is not int or not 0 < pid < 2**31
                or not isinstance(token, str) or not 0 < len(token) <= 64 or not isinstance(boot, str) or len(boot) > 64
                or not all(isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n)
                           for n in numbers)):
            return None
        started, renewed, lease = (float(n) for n in numbers if isinstance(n, (int, float)))
        if not (0 <= started <= _MAX_TIME and 0 <= renewed <= _MAX_TIME and 0 < lease <= _MAX_LEASE):
            return None
        return cls(host, pid, token, started, renewed, lease, boot)

    def describe(self, now: float) -> str:
        """``pid 42 on host 'vm-1', writing since ..., lease renewed 12 s ago``."""
        return (f"pid {self.pid} on host {self.host!r}, writing since {_time(self.started)}, "
                f"lease renewed {max(now - self.renewed, 0):.0f} s ago")

    @property
    def on_this_machine(self) -> bool:
        """Same host name and same boot: its pid can be looked up here."""
        return self.host == this_host() and self.boot == _BOOT_ID

    @property
    def is_this_process(self) -> bool:
        return self.on_this_machine and self.pid == os.getpid() and self.token == _TOKEN


class WriterLease:
    """The lease of one checkpoint root (see the module docstring). Thread-safe."""

    def __init__(self, storage: Storage, lease: float = DEFAULT_LEASE, clock: Callable[[], float] = time.time) -> None:
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 0 < lease <= _MAX_LEASE:
            raise CheckpointError(
                f"lease must be a number of seconds above 0 and at most {_MAX_LEASE:.0f} (7 days), got {lease!r}.")
        self.storage = storage
        self.lease = float(lease)
        self.clock = clock
        self._mutex = threading.Lock()
        self._renewed_at: float | None = None
        self._started: float | None = None

    @property
    def held(self) -> bool:
        """Whether this process took (and has not released) the lease through this object."""
        return self._renewed_at is not None

    def acquire(self) -> None:
        """Take the lease, or check (reading its file) that this process still holds it and
        renew it once a quarter of the lease has passed; raises :class:`CheckpointLockedError`
        when another live writer holds it or has taken it over."""
        with self._mutex:
            self._take(self.clock())

    def renew_if_held(self) -> None:
        """Renew a held lease once a quarter of it has passed (without any I/O before that)."""
        with self._mutex:
            now = self.clock()
            if self._renewed_at is not None and now - self._renewed_at >= self.lease / 4:
                self._take(now)

    def release(self) -> None:
        """Give the lease up (remove its file when it is still this process's)."""
        with self._mutex:
            if self._renewed_at is None:
                return
            self._renewed_at = self._started = None
            holder = self._read()
            if holder is not None and holder.is_this_process:
                self.storage.lock_remove()

    def break_lock(self) -> Holder | None:
        """Remove the lease file whoever holds it, and return who held it (``None`` when
        there was none or it was unreadable)."""
        with self._mutex:
            holder = self._read()
            self.storage.lock_remove()
            self._renewed_at = self._started = None
            return holder

    # -- internals ---------------------------------------------------------------------------
    def _read(self) -> Holder | None:
        data = self.storage.lock_read()
        return None if data is None else Holder.parse(data)

    def _mine(self, now: float) -> Holder:
        return Holder(this_host(), os.getpid(), _TOKEN, self._started if self._started is not None else now, now,
                      self.lease, _BOOT_ID)

    def _take(self, now: float) -> None:
        was_held = self._renewed_at is not None
        for _ in range(8):
            data = self.storage.lock_read()
            if data is None:
                if was_held:  # released by another checkpointer of this process, or broken by hand
                    self._started = None
                mine = self._mine(now)
                if self.storage.lock_create(mine.to_json()) and self._confirm(mine):
                    self._held_since(mine)
                    return
                continue
            holder = Holder.parse(data)
            if holder is not None and holder.is_this_process:
                self._started = holder.started
                if self._renewed_at is None or now - holder.renewed >= self.lease / 4:
                    mine = self._mine(now)
                    self.storage.lock_replace(mine.to_json())
                    self._held_since(mine)
                return
            if was_held and holder is not None:
                self._renewed_at = self._started = None
                raise CheckpointLockedError(
                    f"lost the writer lease on {self.storage.root}: it was taken over by {holder.describe(now)}. "
                    "This save was refused so that the two writers do not overwrite each other; the checkpoints "
                    "published so far are intact. Stop one of the two, or give each its own folder "
                    "(PORTARUN_CHECKPOINTS_DIR).")
            reason = self._stale(holder, now)
            if reason is None:
                assert holder is not None
                raise CheckpointLockedError(
                    f"{self.storage.root} is being written by another process: {holder.describe(now)}. Two writers "
                    "in one folder would overwrite each other's checkpoints, so nothing was written. Give this run "
                    "its own folder (PORTARUN_CHECKPOINTS_DIR, or another project name); or, if that process is "
                    "gone (a disconnected VM), take its lease over with rt.checkpoints.break_lock() or "
                    f"{TAKEOVER_ENV}=1. It expires on its own {holder.lease:.0f} s after its last renewal.")
            if reason:
                warn(f"took over the writer lease on {self.storage.root}: {reason}.")
            self.storage.lock_remove()
        raise CheckpointLockedError(
            f"could not take the writer lease on {self.storage.root}: other processes keep taking and releasing "
            "it. Make sure only one process saves into this folder.")

    def _confirm(self, mine: Holder) -> bool:
        """Read the lease back: on stores without a conditional create, two writers may both
        have "created" it, and only the one whose token is there holds it."""
        back = self._read()
        return back is not None and back.token == mine.token and back.pid == mine.pid

    def _held_since(self, mine: Holder) -> None:
        self._renewed_at = mine.renewed
        self._started = mine.started

    def _stale(self, holder: Holder | None, now: float) -> str | None:
        """Why the lease may be taken over (``""``: silently, its holder is provably dead), or
        ``None`` when its holder must be presumed alive."""
        if holder is None:
            return "its lease file was unreadable (not one portarun wrote, or cut short)"
        if holder.on_this_machine and not process_alive(holder.pid):
            return ""
        if now - holder.renewed > holder.lease:
            return f"{holder.describe(now)}, longer than its {holder.lease:.0f} s lease"
        if os.environ.get(TAKEOVER_ENV, "").strip().lower() in ("1", "true", "yes"):
            return f"{holder.describe(now)}, and {TAKEOVER_ENV} is set"
        return None
