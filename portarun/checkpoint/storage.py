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
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import fsspec
from fsspec.callbacks import Callback

from ..errors import CorruptCheckpointError, StorageFullError
from ..paths import is_remote, slugify
from ..progress import Bar, bar
from ..units import format_size
from .manifest import MANIFEST, Manifest, parse_name

_CHUNK = 8 * 1024 * 1024
#: errno values meaning "no space": ENOSPC (disk full), EDQUOT (quota, e.g. Kaggle's 20 GB
#: /kaggle/working cap surfaces as one of these; errno(3)).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_full(exc: BaseException) -> bool:
    """Whether an exception (or its cause) is a disk-full or quota-exceeded error."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


def storage_full(where: str, needed: int, exc: BaseException) -> StorageFullError:
    """The error raised when a write ran out of space, saying what to do next."""
    free = ""
    if not is_remote(where):
        try:
            free = f" ({format_size(shutil.disk_usage(where).free)} free)"
        except OSError:
            pass
    return StorageFullError(
        errno.ENOSPC,
        f"no space left writing a {format_size(needed)} checkpoint to {where}{free}: {exc}. The previous "
        "checkpoints are intact and the partial files were removed. Free space, lower keep_last/keep_best, "
        "or point PORTARUN_CHECKPOINTS_DIR at larger storage.",
    )


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

    def has_manifest(self, name: str) -> bool:
        """Whether a folder has been committed."""
        return MANIFEST in self.sizes(name)

    def manifest(self, name: str) -> Manifest:
        """A folder's manifest; :class:`CorruptCheckpointError` when missing or unreadable."""
        try:
            data = self.read(name, MANIFEST)
        except FileNotFoundError as exc:
            raise CorruptCheckpointError(f"{self.location(name)}: no manifest (incomplete checkpoint).") from exc
        return Manifest.from_json(data, self.location(name))

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
        try:
            return [entry.name for entry in os.scandir(self.path) if entry.is_dir() and parse_name(entry.name)]
        except FileNotFoundError:
            return []

    def read(self, name: str, file: str) -> bytes:
        return (self.path / name / file).read_bytes()

    def sizes(self, name: str) -> dict[str, int]:
        folder = self.path / name
        out: dict[str, int] = {}
        for dirpath, _, files in os.walk(folder):
            for f in files:
                full = Path(dirpath, f)
                out[full.relative_to(folder).as_posix()] = full.stat().st_size
        return out

    def local_path(self, name: str) -> Path:
        return self.path / name

    def temp_dir(self, name: str) -> Path:
        """A fresh hidden folder beside the checkpoints, for a save in progress."""
        self.path.mkdir(parents=True, exist_ok=True)
        folder = self.path / f".tmp-{name}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def commit(self, temp: Path, name: str, manifest: Manifest) -> None:
        """Write the manifest into a filled temp folder, fsync it, rename it to ``name``."""
        with open(temp / MANIFEST, "wb") as out:
            out.write(manifest.to_json())
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(temp)
        os.rename(temp, self.path / name)
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
        shutil.rmtree(self.path / name, ignore_errors=True)

    def clean_incomplete(self) -> None:
        """Remove ``.tmp-*`` folders left by saves of processes that are no longer alive."""
        super().clean_incomplete()
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(".tmp-") and not _owner_alive(entry.name):
                shutil.rmtree(entry.path, ignore_errors=True)


_HOST = slugify(socket.gethostname()).replace("-", "_") or "host"


def _owner_alive(temp_name: str) -> bool:
    """Whether the process that created a ``.tmp-<name>-<host>-<pid>-<hex>`` folder still
    runs. A folder from another machine counts as abandoned: one writer per root is assumed."""
    try:
        host, pid_text = temp_name.rsplit("-", 3)[-3:-1]
        pid = int(pid_text)
    except ValueError:
        return False
    if host != _HOST:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process nobody has reaped yet is a zombie: dead for our purposes (proc(5))
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
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


def open_storage(root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Storage:
    """The storage for a local folder or an fsspec URL (``file://`` URLs are local)."""
    text = str(root)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if is_remote(text):
        return FsspecStorage(text, storage_options)
    return LocalStorage(text)
