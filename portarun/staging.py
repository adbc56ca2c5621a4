"""Copy data to fast local disk before training (``rt.stage``) and results back to lasting
storage afterwards (``rt.stage_out``).

Sources and destinations are local paths or fsspec URLs (``s3://``, ``gs://``, ``https://``, a
Drive folder under ``/content/drive``). The copy is:

- **parallel**: ``workers`` threads (default 8 with a remote side, else the usable CPUs up to 4);
  small remote files are fetched in one request each (``cat_file``), large ones with the
  filesystem's ``get_file``/``put_file``; local-to-local copies use ``sendfile`` (Linux) or a read/write loop.
- **atomic per file**: a local file is written to ``.<name>.portarun-part`` beside it and
  renamed into place (:func:`os.replace`), so a reader never sees half a file. Object stores
  publish an object only when its upload completes, so remote files are written in place.
- **resumable**: a file already at the destination is skipped when its size and SHA-256 match
  the source's. A local side is hashed from its bytes; a remote side's hash is the one recorded
  in a journal (``<cache>/staging/<id>.jsonl``) when portarun copied it, valid while the remote
  object's size, ETag and modification time are unchanged. Files that fail are reported
  together in one :class:`~portarun.errors.StagingError`; running the same call again resumes.
- **visible**: a progress bar (:func:`portarun._util.progress.bar`) while copying, and a one-line
  summary (:meth:`StageResult.summary`, also logged at INFO on ``portarun.staging``).
- **inside the source only**: a symbolic link is followed only while it points inside the
  source folder; links that lead out of it (``/etc/ssl``, a home folder) are skipped, and so are
  broken or looping links and special files (FIFOs, sockets, devices, which could block the
  copy): one :class:`~portarun.errors.PortarunWarning` lists what was skipped. Pass
  ``follow_symlinks=True`` to copy what outside links point at too (loops are still cut).
- **consistent**: a local source file that changes while it is copied is copied again, and
  reported as failed if it keeps changing, rather than leaving a mix of old and new bytes. A
  destination inside the source (staging a folder into itself) is refused.
- **careful with space**: before writing, a :class:`~portarun.errors.PortarunWarning` is issued
  when the bytes to copy exceed the free space of a local destination, or would push a folder
  past a quota the host's provider states (:meth:`~portarun.provider.Provider.quotas`, e.g.
  Kaggle's 20 GB ``/kaggle/working``).
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import posixpath
import shutil
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from ._machine.sysinfo import read_cpu
from ._util.files import folder_bytes, nearest_folder, read_small_text
from ._util.progress import bar
from ._util.redact import _SECRET_PARAM, MASK, _userinfo_end, is_secret_name, shown_location
from ._util.units import format_size
from .errors import StagingError, warn
from .paths import ROLES, Location, is_remote, join

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("portarun.staging")

PART_SUFFIX = ".portarun-part"
CHUNK = 4 * 1024 * 1024
#: Threads for copies with a remote side (latency-bound); local copies use the usable CPUs, up
#: to 4 (more threads than cores only add contention for the GIL and the disk).
REMOTE_WORKERS = 8


def default_workers(src_local: bool, dst_local: bool, cpus: int | None = None) -> int:
    """The thread count used when ``workers`` is not given: :data:`REMOTE_WORKERS` with a remote
    side, else the usable CPUs (``cpus``, default: this machine's, cgroup quota included) up
    to 4."""
    if not (src_local and dst_local):
        return REMOTE_WORKERS
    if cpus is None:
        cpus = read_cpu(Path("/")).usable
    return max(1, min(4, cpus))

#: Metadata fields that change when a remote object changes (s3fs, gcsfs, adlfs, http, local).
_VERSION_FIELDS = ("ETag", "etag", "md5Hash", "crc32c", "mtime", "LastModified", "last_modified", "updated",
                   "generation")


@dataclass(frozen=True)
class StageResult:
    """What a staging call did. ``path`` is the copy (use the result itself as a path:
    ``os.fspath(result)``); ``copied``/``skipped`` count files, ``bytes_copied`` what moved."""

    source: str
    path: Location
    files: int
    copied: int
    skipped: int
    bytes_copied: int
    bytes_total: int
    seconds: float

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:  # a location may be s3://key:secret@...: masked when printed
        return shown_location(f"StageResult({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in fields(self))})")

    def summary(self) -> str:
        """One line: how many files and bytes moved, from where to where, how fast."""
        rate = self.bytes_copied / self.seconds if self.seconds > 0 else 0.0
        text = (f"staged {self.copied} of {self.files} files ({format_size(self.bytes_copied)}) from "
                f"{shown_location(self.source)} to {shown_location(self.path)} in {self.seconds:.1f} s "
                f"({format_size(int(rate))}/s)")
        if self.skipped:
            text += f"; {self.skipped} already present with the same size and checksum were skipped"
        return text


@dataclass(frozen=True)
class _Task:
    rel: str
    src: str
    dst: str
    size: int
    version: str


#: The most read of a journal: about 150 bytes a file, so millions of files.
_JOURNAL_LIMIT = 1 << 30


class _Journal:
    """Append-only record of files copied with a remote side: ``{rel, size, version, sha256}``
    per line. A torn last line (process killed mid-write) is ignored on reading."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        text = read_small_text(path, _JOURNAL_LIMIT) if path is not None else None
        if text is not None:
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[str(entry["rel"])] = entry
                except (ValueError, KeyError, TypeError):
                    continue

    def record(self, task: _Task, sha256: str) -> None:
        if self.path is None:
            return
        line = json.dumps({"rel": task.rel, "size": task.size, "version": task.version, "sha256": sha256})
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Never through a link planted at the journal's name (O_NOFOLLOW: appending JSON to
            # whatever it points at), never blocked by a FIFO there (O_NONBLOCK: ENXIO instead).
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            except OSError as exc:
                warn(f"staging journal {self.path} cannot be written ({exc.strerror or exc}); copies still "
                     "complete, but a later run cannot tell they are current and copies them again.")
                self.path = None
                return
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)


def _version(info: dict[str, Any]) -> str:
    return json.dumps({k: str(info[k]) for k in _VERSION_FIELDS if info.get(k) is not None}, sort_keys=True)


def _basename(location: str) -> str:
    """The last part of ``location``, usable as a folder name and printable: a URL's credentials
    (``s3://key:secret@bucket``) and query string (``?token=...``) never become part of it."""
    if "://" in location:
        location = shown_location(location).split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
        name = posixpath.basename(posixpath.normpath(location.removeprefix(MASK + "@")).rstrip("/"))
    else:  # "." and ".." name the folder they lead to: as a name, ".." would put the copy above the role
        name = os.path.basename(os.path.abspath(location))
    return name if name not in ("", ".", "..") else "data"


def _open_regular(path: str) -> int:
    """A descriptor for reading the regular file at ``path``, opened without blocking and checked
    on the open file: a FIFO or device swapped in after the listing raises ``OSError`` instead of
    blocking the copy forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file any more (a FIFO, socket or device was put there)", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_part(path: str) -> int:
    """A descriptor for writing a new part file at ``path``: whatever is there (a part file of
    a killed run, or a link or FIFO planted under its name) is removed, and the file is created
    exclusively without following links, so nothing is ever written through a planted entry."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o644)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with os.fdopen(_open_regular(path), "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_local(src: str, dst: str) -> None:
    """Copy file bytes with the fewest system calls: ``sendfile`` in the kernel where it works
    on files (Linux), else a read/write loop. About 2.5x faster per small file than
    :func:`shutil.copyfile`, which stats both paths several times first (measured in
    benchmarks/bench_stage.py's setting)."""
    fin = _open_regular(src)
    try:
        fout = _create_part(dst)
        try:
            size, offset = os.fstat(fin).st_size, 0
            try:
                while offset < size:
                    sent = os.sendfile(fout, fin, offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
            except (OSError, AttributeError):  # no file-to-file sendfile here (macOS, some filesystems)
                os.lseek(fin, offset, os.SEEK_SET)
                while chunk := os.read(fin, CHUNK):
                    os.write(fout, chunk)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _part_path(dst: str) -> str:
    """The temporary name beside ``dst``; a hash of the name where prefix and suffix would make
    it longer than a file name may be (255 bytes on common filesystems)."""
    head, name = os.path.split(dst)
    part = f".{name}{PART_SUFFIX}"
    if len(os.fsencode(part)) > 255:
        part = f".{hashlib.sha256(os.fsencode(name)).hexdigest()[:32]}{PART_SUFFIX}"
    return os.path.join(head, part)


class _SourceChanged(OSError):
    """A local source file changed while it was being copied."""


#: How often a file that changes during its copy is tried before it is reported as failed.
COPY_ATTEMPTS = 3


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def without_credentials(text: str, *locations: str) -> str:
    """``text`` (a library's error message) without the credentials of ``locations``. Masking
    URLs is not enough: s3fs hands ``key:secret@bucket`` to botocore as the bucket name, and
    botocore's error quotes it with no ``s3://`` in front, so each credential part (the whole
    ``user:password``, each half, and credential query values) is cut out of the text itself.
    A half or value under 4 characters is left (cutting every ``u`` out of a message would
    leave nothing readable); the whole ``user:password`` always goes."""
    from urllib.parse import parse_qsl, unquote

    parts: set[str] = set()
    for location in locations:
        if "://" not in location:
            continue
        rest = location.partition("://")[2]
        end = _userinfo_end(rest)
        if end:
            info = rest[:end - 1]
            parts.update({info, unquote(info)})
            parts.update(half for half in (*info.split(":", 1), *unquote(info).split(":", 1)) if len(half) >= 4)
        query = rest.partition("?")[2].partition("#")[0]
        parts.update(value for name, value in parse_qsl(query, keep_blank_values=False)
                     if (is_secret_name(name) or _SECRET_PARAM.match(name)) and len(value) >= 4)
    for part in sorted(filter(None, parts), key=len, reverse=True):
        text = text.replace(part, MASK)
    return shown_location(text)


def _backend_error(exc: Exception, source: str, target: str) -> StagingError:
    """A :class:`StagingError` for what the filesystem library raised while opening or listing
    ``source`` or ``target`` (an unknown protocol, a missing package, a refused connection, a
    malformed bucket), with no credential of either in it."""
    from fsspec.registry import known_implementations, registry

    message = without_credentials(str(exc), source, target)
    if isinstance(exc, ValueError) and message.startswith("Protocol not known"):
        protocol = message.rpartition(":")[2].strip()
        known = ", ".join(sorted(set(known_implementations) | set(registry))[:25])
        return StagingError(f"cannot stage {source} to {target}: {protocol!r} is not a protocol fsspec knows "
                            f"(known: {known}, ...). Check the URL's scheme, or install the package that "
                            "registers it.")
    if isinstance(exc, ImportError):
        return StagingError(f"cannot stage {source} to {target}: {message} (pip install it, then run the same "
                            "call again).")
    return StagingError(f"cannot stage {source} to {target}: {type(exc).__name__}: {message}. Check the path or "
                        "URL, the network and the credentials (set them in the environment or storage_options, "
                        "not in the URL), then run the same call again.")


class _Copier:
    """Plans and runs one transfer from ``src`` to ``dest``."""

    def __init__(self, src: str, dest: str, workers: int | None, journal: Path | None,
                 storage_options: dict[str, Any] | None, cpus: int | None = None,
                 follow_symlinks: bool = False) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise StagingError(f"workers must be a whole number of at least 1, got {workers!r}.")
        self.src, self.dest = src, dest
        self.follow_symlinks = follow_symlinks
        #: Source entries not copied, with why (links out of the source, loops, special files).
        self.passed_over: list[str] = []
        options = storage_options or {}
        self.sfs, self.sroot = url_to_fs(src, **(options if is_remote(src) else {}))
        self.dfs, self.droot = url_to_fs(dest, **(options if is_remote(dest) else {}))
        self.src_local = isinstance(self.sfs, LocalFileSystem)
        self.dst_local = isinstance(self.dfs, LocalFileSystem)
        both_local = self.src_local and self.dst_local
        self.workers = workers or default_workers(self.src_local, self.dst_local, cpus)
        self.journal = _Journal(None if both_local else journal)
        self._made: set[str] = set()
        #: Whether a copy failed because the destination ran out of space or quota.
        self.full = False
        if both_local:
            self._refuse_nesting()

    def _refuse_nesting(self) -> None:
        """A destination inside the source would be copied into itself, one level deeper on
        every run."""
        src, dest = os.path.realpath(self.sroot), os.path.realpath(self.droot)
        if os.path.isdir(src) and _inside(dest, src):
            raise StagingError(f"cannot stage {self.src} into {self.dest}: the destination is inside the source, so "
                               "each run would copy the previous copy into itself. Choose a destination outside "
                               "the source folder.")

    # -- planning ------------------------------------------------------------------------
    def tasks(self) -> list[_Task]:
        infos, is_dir = self._local_listing() if self.src_local else self._remote_listing()
        if not infos and not is_dir:
            raise StagingError(f"nothing to copy: {self.src} does not exist (or is not readable with the "
                               "credentials in the environment). Check the path or URL.")
        base = self.sroot.rstrip("/")
        prefix = base + "/"
        out = []
        for path, (size, version) in sorted(infos.items()):
            # Listed paths sit under base: slicing is exact there, and posixpath.relpath (which
            # makes both absolute first) cost more than copying a small file.
            rel = "" if not is_dir else (path[len(prefix):] if path.startswith(prefix)
                                         else posixpath.relpath(path, base))
            dst = self.droot if not rel else (os.path.join(self.droot, *rel.split("/")) if self.dst_local
                                               else f"{self.droot.rstrip('/')}/{rel}")
            out.append(_Task(rel, path, dst, size, version))
        return out

    def _remote_listing(self) -> tuple[dict[str, tuple[int, str]], bool]:
        try:
            is_dir = bool(self.sfs.isdir(self.sroot))
            found = self.sfs.find(self.sroot, detail=True) if is_dir else {self.sroot: self.sfs.info(self.sroot)}
        except FileNotFoundError:
            return {}, False
        return {p: (int(i.get("size") or 0), _version(i)) for p, i in found.items()
                if i.get("type") != "directory"}, is_dir

    def _local_listing(self) -> tuple[dict[str, tuple[int, str]], bool]:
        """os.scandir walk: an order of magnitude faster than fsspec's find on big local trees.
        A local source is hashed directly when needed, so it carries no version."""
        root = self.sroot
        if os.path.isfile(root):
            return {root: (os.stat(root).st_size, "")}, False
        if not os.path.isdir(root):
            return {}, False
        real_root = os.path.realpath(root)
        out: dict[str, tuple[int, str]] = {}
        # Each folder to visit carries its real path and those of the folders above it: a link
        # back to one of them is a loop.
        stack: list[tuple[str, str, frozenset[str]]] = [(root, real_root, frozenset({real_root}))]
        while stack:
            folder, real, above = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                self.passed_over.append(f"{folder} (cannot be listed: {exc.strerror or exc})")
                continue
            for entry in entries:
                if entry.is_symlink():
                    self._link(entry.path, real_root, above, out, stack)
                elif entry.is_dir(follow_symlinks=False):
                    real_dir = os.path.join(real, entry.name)  # not a link: its parent's real path + name
                    stack.append((entry.path, real_dir, above | {real_dir}))
                elif entry.is_file(follow_symlinks=False):
                    out[entry.path.replace(os.sep, "/")] = (entry.stat(follow_symlinks=False).st_size, "")
                else:
                    self.passed_over.append(f"{entry.path} (a special file: FIFO, socket or device)")
        return out, True

    def _link(self, path: str, real_root: str, above: frozenset[str], out: dict[str, tuple[int, str]],
              stack: list[tuple[str, str, frozenset[str]]]) -> None:
        """Plan a symbolic link found in the source: follow it where allowed, else note why not."""
        try:
            target = os.path.realpath(path, strict=True)
            st = os.stat(target)
        except (OSError, RuntimeError):  # dangling, or a loop of links (ELOOP)
            self.passed_over.append(f"{path} (a broken or looping symbolic link)")
            return
        if not self.follow_symlinks and not _inside(target, real_root):
            self.passed_over.append(f"{path} (a symbolic link to {target}, outside the source; "
                                    "pass follow_symlinks=True to copy it)")
            return
        if stat.S_ISDIR(st.st_mode):
            if target in above:
                self.passed_over.append(f"{path} (a symbolic link to a folder above it: a loop)")
            else:
                stack.append((path, target, above | {target}))
        elif stat.S_ISREG(st.st_mode):
            out[path.replace(os.sep, "/")] = (st.st_size, "")
        else:
            self.passed_over.append(f"{path} (a symbolic link to a special file)")

    def _existing(self, tasks: list[_Task]) -> dict[str, int]:
        """Sizes of destination files that already exist, by destination path."""
        if self.dst_local:
            sizes: dict[str, int] = {}
            if not os.path.exists(self.droot):  # a fresh destination: nothing to stat
                return sizes
            for t in tasks:
                try:
                    sizes[t.dst] = os.stat(t.dst).st_size
                except OSError:
                    continue
            return sizes
        try:
            if not self.dfs.exists(self.droot):
                return {}
            if tasks and tasks[0].rel == "":
                return {self.droot: int(self.dfs.info(self.droot).get("size") or 0)}
            found = self.dfs.find(self.droot, detail=True)
        except FileNotFoundError:
            return {}
        return {path: int(info.get("size") or 0) for path, info in found.items()}

    def _current(self, task: _Task) -> bool:
        """Whether a destination file of the source's size has the source's SHA-256."""
        entry = self.journal.entries.get(task.rel)
        try:
            if self.src_local:
                src_sum: str | None = _sha256_file(task.src)
            else:
                valid = entry is not None and entry.get("size") == task.size and entry.get("version") == task.version
                src_sum = str(entry["sha256"]) if valid and entry is not None else None
            if src_sum is None:
                return False
            if self.dst_local:
                dst_sum: str | None = _sha256_file(task.dst)
            else:
                dst_sum = str(entry["sha256"]) if entry is not None and entry.get("size") == task.size else None
        except OSError:  # gone, or not a regular file any more: copy it (the copy reports what fails)
            return False
        return src_sum == dst_sum

    def split(self, tasks: list[_Task]) -> tuple[list[_Task], list[_Task]]:
        """(to copy, already current), hashing in parallel only the files present at the
        destination with the source's size (the others are copied without a look)."""
        existing = self._existing(tasks)
        candidates = [t for t in tasks if existing.get(t.dst) == t.size]
        with ThreadPoolExecutor(self.workers) as pool:
            current = {t.dst for t, ok in zip(candidates, pool.map(self._current, candidates)) if ok}
        todo = [t for t in tasks if t.dst not in current]
        done = [t for t in tasks if t.dst in current]
        if self.dst_local:
            for t in done:  # a part file left by a killed run for a file that is complete anyway
                Path(_part_path(t.dst)).unlink(missing_ok=True)
        return todo, done

    # -- copying -------------------------------------------------------------------------
    def _makedirs(self, folder: str) -> None:
        if folder not in self._made:
            os.makedirs(folder or ".", exist_ok=True)
            self._made.add(folder)

    def copy(self, task: _Task, advance: Callable[[int], None]) -> None:
        """Copy one file: to a part file and rename (local destination), or straight to the
        object (remote destination); record the hash when a side is remote."""
        if self.dst_local:
            self._makedirs(os.path.dirname(task.dst))
            part = _part_path(task.dst)
            try:
                if self.src_local:
                    self._copy_stable(task.src, part)
                    digest = None
                elif task.size <= CHUNK:
                    with os.fdopen(_create_part(part), "wb") as out:
                        digest = self._stream(task, out.write)
                else:
                    os.close(_create_part(part))  # the library then writes into this fresh, regular file
                    self.sfs.get_file(task.src, part)
                    digest = _sha256_file(part)  # just written: read back from the page cache
                os.replace(part, task.dst)
            except BaseException:
                Path(part).unlink(missing_ok=True)
                raise
        elif self.src_local:
            self.dfs.put_file(task.src, task.dst)
            digest = _sha256_file(task.src)
        else:
            with self.dfs.open(task.dst, "wb") as out:
                digest = self._stream(task, out.write)
        if digest is not None:
            self.journal.record(task, digest)
        advance(task.size)

    @staticmethod
    def _copy_stable(src: str, part: str) -> None:
        """Copy a local file, again if it changed meanwhile (size, times or inode), so the
        part file never holds a mix of two versions."""
        for _ in range(COPY_ATTEMPTS):
            before = _signature(os.stat(src))
            _copy_local(src, part)
            if _signature(os.stat(src)) == before:
                return
        raise _SourceChanged(f"it kept changing while being copied ({COPY_ATTEMPTS} tries); copy it once "
                             "whatever writes it has finished")

    def _stream(self, task: _Task, write: Callable[[bytes], Any]) -> str:
        h = hashlib.sha256()
        if task.size <= CHUNK:
            data: bytes = self.sfs.cat_file(task.src)
            h.update(data)
            write(data)
            return h.hexdigest()
        with self.sfs.open(task.src, "rb", block_size=CHUNK) as src:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                write(chunk)
        return h.hexdigest()

    def run(self, todo: list[_Task], total: int, desc: str) -> tuple[int, int, list[str]]:
        """Copy ``todo`` on the thread pool, in batches (fewer hand-offs for many small files);
        one file's failure does not stop the others."""
        failures: list[str] = []
        copied = moved = 0
        lock = threading.Lock()
        batch = max(1, min(64, len(todo) // (self.workers * 4)))
        with bar(total, desc) as progress, ThreadPoolExecutor(self.workers) as pool:

            def advance(n: int) -> None:
                with lock:
                    progress.update(n)

            def copy_batch(tasks: list[_Task]) -> list[tuple[_Task, BaseException | None]]:
                results: list[tuple[_Task, BaseException | None]] = []
                for task in tasks:
                    try:
                        self.copy(task, advance)
                        results.append((task, None))
                    except Exception as exc:
                        results.append((task, exc))
                return results

            futures = [pool.submit(copy_batch, todo[i:i + batch]) for i in range(0, len(todo), batch)]
            for future in futures:
                for task, exc in future.result():
                    if exc is None:
                        copied += 1
                        moved += task.size
                    else:
                        self.full = self.full or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
                        failures.append(f"{task.rel or task.src}: {type(exc).__name__}: "
                                        + without_credentials(str(exc), self.src, self.dest))
        return copied, moved, failures


def transfer(src: str | os.PathLike[str], dest: str | os.PathLike[str], *, workers: int | None = None,
             journal: str | os.PathLike[str] | None = None, storage_options: dict[str, Any] | None = None,
             before_write: Callable[[int], None] | None = None, desc: str | None = None,
             cpus: int | None = None, follow_symlinks: bool = False) -> StageResult:
    """Copy a file or folder ``src`` to exactly ``dest`` (created; a folder's contents land in
    it), skipping files that are already current. ``journal`` records hashes of remote sides
    (without it, a remote side is never considered current). ``before_write(n)`` is called
    with the number of bytes about to be written; ``cpus`` sizes the default thread count
    (see :func:`default_workers`); ``follow_symlinks`` also copies what links leading out of a
    local source point at. Raises :class:`StagingError` listing the files that failed after
    copying all others, or before copying anything for a destination inside the source."""
    started = time.perf_counter()
    source, target = os.fspath(src), os.fspath(dest)
    if not source or not target:  # "" is the working folder to fsspec and os: never what was meant
        raise StagingError(f"cannot stage {source!r} to {target!r}: an empty path names nothing (it would mean "
                           "the whole working folder). Pass the file or folder to copy, e.g. 'data/train'.")
    failed: StagingError | None = None
    try:  # what the filesystem libraries raise while opening and listing becomes a StagingError
        copier = _Copier(source, target, workers, None if journal is None else Path(journal), storage_options,
                         cpus, follow_symlinks)
        tasks = copier.tasks()
        if copier.passed_over:
            shown = "; ".join(copier.passed_over[:5])
            more = f"; and {len(copier.passed_over) - 5} more" if len(copier.passed_over) > 5 else ""
            warn(f"staging {source}: {len(copier.passed_over)} "
                 f"entr{'y' if len(copier.passed_over) == 1 else 'ies'} not copied: {shown}{more}.")
        todo, done = copier.split(tasks)
    except StagingError:
        raise
    except Exception as exc:
        failed = _backend_error(exc, source, target)
    if failed is not None:
        # Raised here, not in the ``except``: the library's error may quote a credential and
        # must not even be the new error's ``__context__``.
        raise failed
    need = sum(t.size for t in todo)
    if before_write is not None and todo:
        before_write(need)
    if copier.dst_local and not tasks:
        os.makedirs(target, exist_ok=True)
    copied, moved, failures = copier.run(todo, need, desc or f"staging {_basename(source)}")
    result = StageResult(source=source, path=Path(target) if copier.dst_local else target, files=len(tasks),
                         copied=copied, skipped=len(done), bytes_copied=moved,
                         bytes_total=sum(t.size for t in tasks), seconds=time.perf_counter() - started)
    if failures:
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        advice = "run the same call again to resume"
        if copier.full:  # running again cannot help until there is room
            free = (f" ({format_size(shutil.disk_usage(nearest_folder(target)).free)} free there)"
                    if copier.dst_local else "")
            advice = (f"the destination's disk is full{free}: free space, or stage to a folder on a larger disk "
                      "(to='scratch' or another path), then run the same call again to copy the rest")
        raise StagingError(f"{len(failures)} of {len(tasks)} files could not be copied from {source} to "
                           f"{target}: {shown}. The {copied + len(done)} others are in place; {advice}.")
    log.info(result.summary())
    return result


# -- runtime entry points ------------------------------------------------------------------
def _destination(rt: Runtime, source: str, to: str | os.PathLike[str]) -> str:
    if isinstance(to, str) and to in ROLES:
        return str(join(rt.paths[to], _basename(source)))
    return os.fspath(to)


def _journal_for(rt: Runtime, source: str, dest: str) -> Path:
    key = hashlib.sha256(f"{source}\n{dest}".encode()).hexdigest()[:24]
    base = rt.paths.cache if not is_remote(rt.paths.cache) else rt.paths.scratch
    if is_remote(base):
        import tempfile

        base = Path(tempfile.gettempdir()) / "portarun"
    return Path(base) / "staging" / f"{key}.jsonl"


def space_check(rt: Runtime, dest: str) -> Callable[[int], None]:
    """A ``before_write`` callback that warns when ``need`` bytes will not fit at ``dest``: past
    the free space of its disk, or past a quota of this host (:meth:`Provider.quotas
    <portarun.provider.Provider.quotas>`)."""

    def check(need: int) -> None:
        if is_remote(dest):
            return
        target = Path(dest)
        free = shutil.disk_usage(nearest_folder(target)).free
        if need > free:
            warn(f"staging {format_size(need)} to {dest}, but only {format_size(free)} is free on that "
                          "disk; the copy will fail part-way. Free space, or stage to another role "
                          "(to='scratch' or a folder on a larger disk).")
        for folder, (limit, why) in rt.provider.quotas().items():
            root = rt.probe.path(folder)
            try:
                target.resolve().relative_to(root.resolve())
            except ValueError:
                continue
            used = folder_bytes(root)
            if used + need > limit:
                warn(f"staging {format_size(need)} to {dest} would bring {folder} to "
                     f"{format_size(used + need)}, past its {format_size(limit)} limit ({why}); files past "
                     "the limit are lost. Stage large data to rt.paths.scratch instead.")

    return check


def stage(rt: Runtime, src: str | os.PathLike[str], to: str | os.PathLike[str] = "scratch", *,
          workers: int | None = None, storage_options: dict[str, Any] | None = None,
          follow_symlinks: bool = False) -> StageResult:
    """Copy ``src`` (a local path or fsspec URL) into role ``to`` (as ``<role>/<name of src>``)
    or to exactly the path ``to``. See the module docstring for the guarantees."""
    source = os.fspath(src)
    dest = _destination(rt, source, to)
    return transfer(source, dest, workers=workers, journal=_journal_for(rt, source, dest),
                    storage_options=storage_options, before_write=space_check(rt, dest), cpus=rt.cpu.usable,
                    follow_symlinks=follow_symlinks,
                    desc=f"staging {_basename(source)}")


def stage_out(rt: Runtime, path: str | os.PathLike[str], to: str | os.PathLike[str] = "persist", *,
              workers: int | None = None, storage_options: dict[str, Any] | None = None,
              follow_symlinks: bool = False) -> StageResult:
    """Copy results at ``path`` back into role ``to`` (default ``persist``, which may be a
    bucket URL) or to exactly the path/URL ``to``; same guarantees as :func:`stage`."""
    source = os.fspath(path)
    dest = _destination(rt, source, to)
    return transfer(source, dest, workers=workers, journal=_journal_for(rt, source, dest),
                    storage_options=storage_options, before_write=space_check(rt, dest), cpus=rt.cpu.usable,
                    follow_symlinks=follow_symlinks,
                    desc=f"saving {_basename(source)}")
