"""Where checkpoints live, and how one is published atomically.

:class:`LocalStorage` (a folder, including FUSE mounts such as Colab's Drive): data and manifest
are written into a hidden ``.tmp-*`` folder, fsynced, and the folder is renamed to its final
``step-*`` name, then the parent folder is fsynced: rename(2) is atomic on POSIX filesystems,
so a reader sees the whole checkpoint or none of it.

:class:`FsspecStorage` (``s3://``, ``gs://``, ... where there is no atomic rename): data files
are uploaded into the final folder first and ``manifest.json`` last, as the commit marker. A
folder without a manifest is incomplete: never listed, never loaded, removed by the next save.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import Any

import fsspec
from fsspec.callbacks import Callback

from .._util.progress import Bar, bar
from .._util.units import format_size
from ..errors import CheckpointError, CorruptCheckpointError, StorageFullError
from ..paths import is_remote, slugify
from .manifest import MANIFEST, MAX_MANIFEST_BYTES, Manifest, open_regular, parse_name, read_regular

_CHUNK = 8 * 1024 * 1024
#: errno values meaning "no space": ENOSPC (disk full), EDQUOT (quota, e.g. Kaggle's 20 GB
#: /kaggle/working cap surfaces as one of these; errno(3)).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: errno values meaning "this folder cannot be written": a read-only mount (EROFS), and no
#: permission (EACCES, EPERM), e.g. a Kaggle input dataset or a Drive folder shared read-only.
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
#: The writer lease's file in a checkpoint root (see :mod:`.lock`); its name never parses as a
#: checkpoint, so listing, cleaning and rotation leave it alone.
LOCK_FILE = ".portarun-writer.json"
_LOCK_LIMIT = 64 * 1024


class IncompleteCheckpointError(CorruptCheckpointError):
    """A ``step-*`` folder without a manifest: a save in progress or one that was interrupted
    (not listed, and not worth a warning)."""


def _caused_by(exc: BaseException, errnos: Collection[int]) -> bool:
    """Whether ``exc``, or an exception it was raised from or during, is an ``OSError`` with one
    of ``errnos``."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OSError) and current.errno in errnos:
            return True
        current = current.__cause__ or current.__context__
    return False


def is_full(exc: BaseException) -> bool:
    """Whether an exception (or its cause) is a disk-full or quota-exceeded error."""
    return _caused_by(exc, FULL_ERRNOS)


def storage_full(where: str, needed: int, exc: BaseException, *, exact: bool = False) -> StorageFullError:
    """The error raised when a write ran out of space, saying what to do next. ``needed`` is
    the checkpoint's size when ``exact``, else the bytes written when the space ran out."""
    free = ""
    if not is_remote(where):
        try:
            free = f"; {format_size(shutil.disk_usage(where).free)} free there now"
        except OSError:
            pass
    size = format_size(needed) if exact else f"at least {format_size(needed)}"
    return StorageFullError(
        errno.ENOSPC,
        f"no space left writing a checkpoint of {size} to {where}{free} ({_reason(exc)}). The previous "
        "checkpoints are intact and the partial files were removed. Free space, lower keep_last/keep_best, "
        "or point PORTARUN_CHECKPOINTS_DIR at larger storage.",
    )


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"


def is_read_only(exc: BaseException) -> bool:
    """Whether an exception (or its cause) says a folder cannot be written (read-only, no permission)."""
    return _caused_by(exc, READ_ONLY_ERRNOS)


def read_only(where: str, exc: BaseException) -> CheckpointError:
    """The error raised when the checkpoint folder cannot be written, saying what to do next."""
    return CheckpointError(
        f"cannot save a checkpoint: {where} is read-only or not writable by this user ({_reason(exc)}). Nothing "
        "was written and the published checkpoints are still readable. Point PORTARUN_CHECKPOINTS_DIR (or "
        "Checkpointer(root)) at a writable folder, or make this one writable (remount it read-write, fix its "
        "permissions).")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a folder so a rename or new entry in it is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], progress: Bar) -> None:
    """Copy a local file and fsync the copy."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(chunk)
            progress.update(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())


class Storage(ABC):
    """A checkpoint root: list, read, publish and delete ``step-*`` folders."""

    root: str

    @property
    def local(self) -> bool:
        """Whether the root is a local folder (data can be written into it directly)."""
        return False

    @abstractmethod
    def names(self) -> list[str]:
        """Names of ``step-*`` folders, complete or not, unsorted."""

    @abstractmethod
    def read(self, name: str, file: str) -> bytes:
        """A whole file of a checkpoint."""

    @abstractmethod
    def sizes(self, name: str) -> dict[str, int]:
        """Actual size of each file in a checkpoint folder."""

    @abstractmethod
    def publish(self, source: Path, name: str, manifest: Manifest) -> None:
        """Copy the data files of a local folder into the checkpoint ``name`` and make it
        visible only once all of them are there."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove a checkpoint folder (complete or not)."""

    @abstractmethod
    def read_limited(self, name: str, file: str, limit: int) -> bytes:
        """At most ``limit + 1`` bytes of a checkpoint's file, which must be a regular file
        (``OSError`` for a link, a FIFO, a device); never blocks, never reads more."""

    def has_manifest(self, name: str) -> bool:
        """Whether a folder has been committed."""
        return MANIFEST in self.sizes(name)

    def manifest(self, name: str) -> Manifest:
        """A folder's manifest, read by the one reader that validates everything in it (see
        :meth:`Manifest.from_json`): :class:`IncompleteCheckpointError` when there is none,
        :class:`CorruptCheckpointError` saying what is wrong with one that is unusable."""
        where = self.location(name)
        try:
            data = self.read_limited(name, MANIFEST, MAX_MANIFEST_BYTES)
        except FileNotFoundError as exc:
            raise IncompleteCheckpointError(f"{where}: no manifest (incomplete checkpoint).") from exc
        except OSError as exc:
            raise CorruptCheckpointError(f"{where}: {MANIFEST} cannot be read as a regular file "
                                         f"({_reason(exc)}).") from None
        return Manifest.from_json(data, where, name)

    # -- the writer lease's file (see .lock) ----------------------------------------------------
    @abstractmethod
    def lock_read(self) -> bytes | None:
        """The lease file's bytes (at most 64 KiB + 1), ``None`` when there is none, ``b""``
        when something that is not a regular file sits there."""

    @abstractmethod
    def lock_create(self, data: bytes) -> bool:
        """Create the lease file holding ``data`` unless one exists; whether it was created."""

    @abstractmethod
    def lock_replace(self, data: bytes) -> None:
        """Overwrite the lease file with ``data`` (renewal)."""

    @abstractmethod
    def lock_remove(self) -> None:
        """Remove the lease file (no error when there is none)."""

    def location(self, name: str, file: str | None = None) -> str:
        """Path or URL of a checkpoint folder or one of its files."""
        return "/".join([self.root, name] + ([file] if file else []))

    def local_path(self, name: str) -> Path | None:
        """The local folder of a checkpoint, or ``None`` for remote storage."""
        return None

    def clean_incomplete(self) -> None:
        """Remove leftovers of interrupted saves (folders without a manifest)."""
        for name in self.names():
            if parse_name(name) and not self.has_manifest(name):
                self.delete(name)


class LocalStorage(Storage):
    """A local folder; publication by atomic rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root)
        self.root = str(self.path)

    @property
    def local(self) -> bool:
        return True

    def names(self) -> list[str]:
        """Real ``step-*`` folders: a link named like a checkpoint is never followed."""
        try:
            return [entry.name for entry in os.scandir(self.path)
                    if entry.is_dir(follow_symlinks=False) and parse_name(entry.name)]
        except (FileNotFoundError, NotADirectoryError):  # nothing saved yet; a file is no checkpoint folder
            return []

    def read(self, name: str, file: str) -> bytes:
        with open_regular(self.path / name / file) as stream:
            return stream.read()

    def read_limited(self, name: str, file: str, limit: int) -> bytes:
        return read_regular(self.path / name / file, limit)

    def sizes(self, name: str) -> dict[str, int]:
        """Sizes of the regular files; anything else (a link, a FIFO) counts as size -1, so it
        never matches a manifest entry."""
        folder = self.path / name
        out: dict[str, int] = {}
        for dirpath, _, files in os.walk(folder):
            for f in files:
                full = Path(dirpath, f)
                try:
                    info = full.lstat()
                except FileNotFoundError:
                    continue
                out[full.relative_to(folder).as_posix()] = info.st_size if stat.S_ISREG(info.st_mode) else -1
        return out

    def local_path(self, name: str) -> Path:
        return self.path / name

    def temp_dir(self, name: str, owner: int | None = None) -> Path:
        """A fresh hidden folder beside the checkpoints, for a save in progress. Its name holds
        this host and the pid of ``owner`` (default: this process), the process whose death
        makes it a leftover (see :meth:`clean_incomplete`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        folder = self.path / f".tmp-{name}-{_HOST}-{owner or os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def commit(self, temp: Path, name: str, manifest: Manifest) -> None:
        """Write the manifest into a filled temp folder, fsync it, rename it to ``name``."""
        with open(temp / MANIFEST, "wb") as out:
            out.write(manifest.to_json())
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(temp)
        try:
            os.rename(temp, self.path / name)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
            # rename(2) never replaces a non-empty folder: someone else published this name.
            raise CheckpointError(
                f"{self.location(name)} appeared while this save was being written: another process is saving "
                "into this folder (its writer lease may have been broken or expired). Nothing was overwritten; "
                "this save was discarded. Let only one process save here.") from None
        fsync_dir(self.path)

    def publish(self, source: Path, name: str, manifest: Manifest) -> None:
        temp = self.temp_dir(name)
        try:
            with bar(manifest.size, f"promoting {name}") as progress:
                for file in manifest.files:
                    (temp / file).parent.mkdir(parents=True, exist_ok=True)
                    copy_file(source / file, temp / file, progress)
            self.commit(temp, name, manifest)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    def delete(self, name: str) -> None:
        # rmtree never follows links: it refuses a link named like a checkpoint and unlinks
        # (without following) links inside a checkpoint folder.
        shutil.rmtree(self.path / name, ignore_errors=True)

    def clean_incomplete(self) -> None:
        """Remove ``.tmp-*`` folders left by saves of processes that are no longer alive
        (real folders only: a link named like one is left alone, never followed)."""
        super().clean_incomplete()
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(".tmp-") and entry.is_dir(follow_symlinks=False) and not _owner_alive(entry.name):
                shutil.rmtree(entry.path, ignore_errors=True)

    @property
    def _lock(self) -> Path:
        return self.path / LOCK_FILE

    def lock_read(self) -> bytes | None:
        try:
            return read_regular(self._lock, _LOCK_LIMIT)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EINVAL, errno.EISDIR, errno.ENXIO):  # a link, FIFO, folder, socket
                return b""
            raise

    def lock_create(self, data: bytes) -> bool:
        """Write ``data`` to a unique file, then hard-link it to the lease's name: link(2)
        fails with EEXIST when the name exists, atomically, and the lease file is never seen
        half-written. Where links are not supported (some FUSE mounts), ``O_CREAT | O_EXCL``."""
        self.path.mkdir(parents=True, exist_ok=True)
        part = self._write_part(data)
        try:
            os.link(part, self._lock)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
        finally:
            part.unlink(missing_ok=True)
        try:
            fd = os.open(self._lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return True

    def lock_replace(self, data: bytes) -> None:
        os.replace(self._write_part(data), self._lock)  # replaces a link itself, never its target
        fsync_dir(self.path)

    def lock_remove(self) -> None:
        self._lock.unlink(missing_ok=True)

    def _write_part(self, data: bytes) -> Path:
        part = self.path / f"{LOCK_FILE}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        return part


_HOSTNAME = socket.gethostname()
_HOST = slugify(_HOSTNAME).replace("-", "_") or "host"


def _owner_alive(temp_name: str) -> bool:
    """Whether the process that created a ``.tmp-<name>-<host>-<pid>-<hex>`` folder still
    runs. A folder from another machine counts as abandoned: only the holder of the writer
    lease (see :mod:`.lock`) cleans, so no other machine is writing here."""
    try:
        host, pid_text = temp_name.rsplit("-", 3)[-3:-1]
        pid = int(pid_text)
    except ValueError:
        return False
    return host == _HOST and process_alive(pid)


def this_host() -> str:
    """This machine's name (``socket.gethostname()``), as writer leases record it."""
    return _HOSTNAME


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (a zombie does not: it was killed
    and only waits to be reaped; proc(5))."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class _BarCallback(Callback):  # type: ignore[misc]
    """fsspec transfer callback feeding a progress bar."""

    def __init__(self, progress: Bar) -> None:
        super().__init__()
        self.progress = progress

    def relative_update(self, inc: int = 1) -> None:
        self.progress.update(inc)


class FsspecStorage(Storage):
    """An fsspec URL; publication by writing ``manifest.json`` last."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.path = path.rstrip("/")
        self.root = url.rstrip("/")

    def _p(self, name: str, file: str | None = None) -> str:
        return "/".join([self.path, name] + ([file] if file else []))

    def names(self) -> list[str]:
        try:
            entries = self.fs.ls(self.path, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        return [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries
                if e.get("type") == "directory" and parse_name(e["name"].rstrip("/").rsplit("/", 1)[-1])]

    def read(self, name: str, file: str) -> bytes:
        data: bytes = self.fs.cat_file(self._p(name, file))
        return data

    def read_limited(self, name: str, file: str, limit: int) -> bytes:
        return self._cat(self._p(name, file), limit)

    def _cat(self, path: str, limit: int) -> bytes:
        data: bytes = self.fs.cat_file(path, start=0, end=limit + 1)
        return data[:limit + 1]

    def sizes(self, name: str) -> dict[str, int]:
        base = self._p(name)
        try:
            found = self.fs.find(base, detail=True, refresh=True) if hasattr(self.fs, "find") else {}
        except FileNotFoundError:
            return {}
        return {path[len(base) + 1:]: int(info["size"]) for path, info in found.items()}

    def publish(self, source: Path, name: str, manifest: Manifest) -> None:
        try:
            with bar(manifest.size, f"uploading {name}") as progress:
                for file in manifest.files:
                    self.fs.put_file(str(source / file), self._p(name, file), callback=_BarCallback(progress))
            self.fs.pipe_file(self._p(name, MANIFEST), manifest.to_json())
        except BaseException:
            self.delete(name)
            raise

    def delete(self, name: str) -> None:
        try:
            self.fs.rm(self._p(name), recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(self.path)

    def lock_read(self) -> bytes | None:
        try:
            return self._cat(self._p(LOCK_FILE), _LOCK_LIMIT)
        except FileNotFoundError:
            return None

    def lock_create(self, data: bytes) -> bool:
        """A conditional create: ``pipe_file(mode="create")`` is an ``If-None-Match: *`` PUT on
        s3fs (S3 and its compatible servers honour it) and an exclusive create on fsspec's
        memory and local filesystems; elsewhere fsspec's fallback checks existence first, which
        is not atomic, so :class:`~portarun.checkpoint.lock.WriterLease` reads the object back
        to verify it won."""
        try:
            self.fs.pipe_file(self._p(LOCK_FILE), data, mode="create")
        except FileExistsError:
            return False
        finally:
            self.fs.invalidate_cache(self.path)
        return True

    def lock_replace(self, data: bytes) -> None:
        self.fs.pipe_file(self._p(LOCK_FILE), data)
        self.fs.invalidate_cache(self.path)

    def lock_remove(self) -> None:
        try:
            self.fs.rm_file(self._p(LOCK_FILE))
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(self.path)


def open_storage(root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Storage:
    """The storage for a local folder or an fsspec URL (``file://`` URLs are local)."""
    text = str(root)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if is_remote(text):
        return FsspecStorage(text, storage_options)
    return LocalStorage(text)
