"""Small files read without surprises or written whole or not at all, and on/off environment
flags."""
from __future__ import annotations

import os
import stat
from pathlib import Path

_OFF = ("0", "false", "no", "off")


def flag(value: str | None, default: bool) -> bool:
    """An on/off setting from an environment variable's value: ``default`` when unset or empty,
    off for ``0``/``false``/``no``/``off`` (any case), on for anything else."""
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in _OFF


def read_small(path: str | os.PathLike[str], limit: int = 1 << 20) -> bytes | None:
    """At most ``limit`` bytes of the regular file at ``path``, or ``None`` when it is missing,
    unreadable or not a regular file. Never blocks: the file is opened non-blocking, so a FIFO or
    device planted where a kernel, driver or cache file should be is refused instead of hanging
    the reader (proc and sysfs files are regular files to ``fstat``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):  # missing, no permission, ENAMETOOLONG, a NUL byte
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        left = limit
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_small_text(path: str | os.PathLike[str], limit: int = 1 << 20) -> str | None:
    """:func:`read_small` decoded as UTF-8 with undecodable bytes replaced."""
    data = read_small(path, limit)
    return None if data is None else data.decode("utf-8", errors="replace")


def nearest_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` itself if it is a folder, else its nearest parent that is (where a disk's free
    space can be asked before anything is created); the root when none can be checked."""
    candidate = Path(path)
    for folder in (candidate, *candidate.parents):
        try:
            if folder.is_dir():
                return folder
        except (OSError, ValueError):  # unreadable, a name too long, a NUL byte
            continue
    return Path(candidate.anchor or "/")


def folder_bytes(folder: str | os.PathLike[str]) -> int:
    """Bytes of the files under ``folder`` (links not followed; unreadable entries skipped)."""
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def write_text_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> None:
    """:func:`write_bytes_atomic` of ``text`` encoded as UTF-8 (newlines written as given)."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename, so a reader
    sees the old file or the whole new one; ``durable`` fsyncs before the rename (for results a
    crash must not lose). The folder is created; the temporary file is removed on any failure."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A new name that no one can have planted a link at (O_EXCL, random part), short whatever
    # the target's length, so any name the filesystem allows can be written.
    part = target.with_name(f".{target.name[:64]}.{os.getpid()}.{os.urandom(4).hex()}.portarun-part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with open(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
