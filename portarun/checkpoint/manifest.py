"""The manifest: what a published checkpoint contains, written last, checked on load.

A checkpoint is a folder ``step-<step>`` holding its data files and ``manifest.json``. The
manifest lists every data file with its size and CRC-32 and is written after them, so a folder
without a readable manifest is incomplete by definition; a file whose size or CRC-32 differs
from the manifest is torn or corrupt. CRC-32 (``zlib.crc32``, ~3 GiB/s here) catches torn
writes, truncated uploads and bit flips; it is not a defence against tampering.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from ..errors import CorruptCheckpointError

_FORMAT_PREFIX = "portarun-checkpoint/"
#: The manifest format this version writes, and the newest it reads.
FORMAT_VERSION = 1
FORMAT = f"{_FORMAT_PREFIX}{FORMAT_VERSION}"
MANIFEST = "manifest.json"
#: A manifest is read only up to this size: one entry is under 100 bytes, so this is room for
#: about 150,000 files of a sharded checkpoint, and a hostile ``manifest.json`` cannot exhaust memory.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Steps are stored as JSON integers and used as int64 elsewhere (torch, numpy): 0 to 2**63 - 1.
MAX_STEP = 2**63 - 1
MAX_FILE_SIZE = 2**63 - 1
MAX_WORLD_SIZE = 2**31 - 1
#: 9999-12-31T23:59:59Z: the last second ``datetime`` can show.
MAX_SAVED_AT = 253402300799.0
#: ``torch``: one ``state.pt``; ``dcp``: a ``torch.distributed.checkpoint`` folder.
KINDS = ("torch", "dcp")
_CRC = re.compile(r"^[0-9a-f]{8}$")
#: The file holding a replicated (``torch.save``) state.
STATE_FILE = "state.pt"
_NAME = re.compile(r"^step-(\d+)(?:\.(\d+))?$")
_CHUNK = 8 * 1024 * 1024


def checkpoint_name(step: int, attempt: int = 0) -> str:
    """The folder name of a checkpoint: ``step-000000100``, ``step-000000100.1`` when a
    checkpoint of that step already exists."""
    return f"step-{step:09d}" + (f".{attempt}" if attempt else "")


def parse_name(name: str) -> tuple[int, int] | None:
    """``(step, attempt)`` for a checkpoint folder name, ``None`` for anything else."""
    match = _NAME.match(name)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


@dataclass(frozen=True)
class FileEntry:
    """One data file: its size in bytes and its CRC-32 as 8 hex digits."""

    size: int
    crc32: str


@dataclass(frozen=True)
class Manifest:
    """The contents of ``manifest.json``. ``kind`` is ``torch`` (one ``state.pt`` written by
    ``torch.save``) or ``dcp`` (a ``torch.distributed.checkpoint`` folder)."""

    step: int
    saved_at: float
    files: dict[str, FileEntry]
    kind: str = "torch"
    metrics: dict[str, float] = field(default_factory=dict)
    world_size: int = 1
    format: str = FORMAT

    @property
    def size(self) -> int:
        """Total bytes of the data files."""
        return sum(f.size for f in self.files.values())

    def to_json(self) -> bytes:
        """The manifest as UTF-8 JSON (strict: no NaN or infinity, which :meth:`from_json` refuses)."""
        return json.dumps(asdict(self), indent=1, sort_keys=True, allow_nan=False).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str, name: str | None = None) -> Manifest:
        """Parse and validate a manifest: every field's type and range, file names that stay
        inside the folder, the step of the folder ``name`` when given. Raises
        :class:`CorruptCheckpointError` naming ``where`` and what is wrong, or
        :class:`NewerFormatError` for a format this version does not know yet."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise CorruptCheckpointError(f"{where}: the manifest is {len(data)} bytes or more, larger than any "
                                         f"manifest portarun writes ({MAX_MANIFEST_BYTES} bytes at most).")
        try:
            raw = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        except _Invalid as exc:
            raise CorruptCheckpointError(f"{where}: invalid manifest ({exc}).") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CorruptCheckpointError(f"{where}: unreadable manifest (not valid JSON: {type(exc).__name__}: "
                                         f"{str(exc)[:120]}).") from None
        try:
            return cls._validated(raw, where, name)
        except (_Invalid, ValueError) as exc:  # ValueError: an int of more than 4300 digits
            raise CorruptCheckpointError(f"{where}: invalid manifest ({exc}).") from None

    @classmethod
    def _validated(cls, raw: Any, where: str, name: str | None) -> Manifest:
        if not isinstance(raw, dict):
            raise _Invalid(f"a JSON {type(raw).__name__}, not an object")
        version = _format_version(raw.get("format"))
        if version > FORMAT_VERSION:
            raise NewerFormatError(
                f"{where} is in format {raw['format']!r}, written by a newer portarun; this one reads {FORMAT!r}: "
                "upgrade portarun (pip install -U portarun) to load it.")
        step = _int(raw, "step", 0, MAX_STEP)
        if name is not None:
            parsed = parse_name(name)
            if parsed is None or parsed[0] != step:
                raise _Invalid(f"step {step} does not match the folder name {name!r}")
        saved_at = _number(raw, "saved_at")
        if not 0 <= saved_at <= MAX_SAVED_AT:
            raise _Invalid(f"saved_at {saved_at!r} is not a time between 1970 and 9999")
        kind = raw.get("kind", "torch")
        if kind not in KINDS:
            raise _Invalid(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        files = raw.get("files")
        if not isinstance(files, dict) or not files:
            raise _Invalid("no data files listed")
        entries = {_file_name(file): _file_entry(file, entry) for file, entry in files.items()}
        if kind == "torch" and set(entries) != {STATE_FILE}:
            raise _Invalid(f"a torch checkpoint lists {sorted(entries)[:3]}, not exactly {STATE_FILE!r}")
        metrics = raw.get("metrics", {})
        if not isinstance(metrics, dict):
            raise _Invalid("metrics is not an object")
        return cls(step=step, saved_at=saved_at, files=entries, kind=kind,
                   metrics={str(k): _number(metrics, k) for k in metrics},
                   world_size=_int(raw, "world_size", 1, MAX_WORLD_SIZE, default=1))


class NewerFormatError(CorruptCheckpointError):
    """A checkpoint written in a format newer than this portarun reads; upgrading portarun
    reads it."""


class _Invalid(Exception):
    """A manifest field that is missing, of the wrong type or out of range."""


def _refuse_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not a number a manifest may hold")


def _format_version(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith(_FORMAT_PREFIX):
        raise _Invalid(f"unknown format {value!r}")
    number = value[len(_FORMAT_PREFIX):]
    if not number.isascii() or not number.isdigit() or len(number) > 6:
        raise _Invalid(f"unknown format {value!r}")
    return int(number)


def _int(raw: dict[str, Any], key: str, low: int, high: int, default: int | None = None) -> int:
    value = raw.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise _Invalid(f"{key} {value!r} is not an integer from {low} to {high}")
    return value


def _number(raw: dict[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(f"{key} {value!r} is not a finite number")
    return float(value)


def _file_name(name: Any) -> str:
    """A data file's name: a relative POSIX path that stays inside the checkpoint folder."""
    parts = name.split("/") if isinstance(name, str) else []
    if (not parts or len(name) > 1024 or "\0" in name or "\\" in name
            or any(p in ("", ".", "..") for p in parts) or name == MANIFEST):
        raise _Invalid(f"file name {name!r} is not a relative path inside the checkpoint")
    return str(name)


def _file_entry(name: str, entry: Any) -> FileEntry:
    if not isinstance(entry, dict):
        raise _Invalid(f"the entry of {name!r} is not an object")
    crc = entry.get("crc32")
    if not isinstance(crc, str) or not _CRC.match(crc):
        raise _Invalid(f"the CRC-32 of {name!r} is {crc!r}, not 8 hex digits")
    return FileEntry(_int(entry, "size", 0, MAX_FILE_SIZE), crc)


def crc32_stream(stream: BinaryIO) -> tuple[int, str]:
    """``(size, crc32 hex)`` of everything left in a binary stream, read in 8 MiB chunks."""
    crc, size = 0, 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while True:
        n = stream.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return size, f"{crc:08x}"
        crc = zlib.crc32(view[:n], crc)
        size += n


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a local file for reading only if it is a regular file: a symbolic link (even to
    ``/dev/zero``), a FIFO, a device or a folder planted under a checkpoint's name raises
    ``OSError`` at once, and opening never blocks (``O_NONBLOCK`` matters for a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a regular file (see :func:`open_regular`): a caller
    seeing more than ``limit`` knows the file is too large without having read all of it."""
    chunks: list[bytes] = []
    left = limit + 1
    with open_regular(path) as stream:
        while left > 0 and (chunk := stream.read(min(left, _CHUNK))):  # a FUSE read may return less
            chunks.append(chunk)
            left -= len(chunk)
    return b"".join(chunks)


def crc32_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """``(size, crc32 hex)`` of a local regular file (see :func:`open_regular`)."""
    with open_regular(path) as stream:
        return crc32_stream(stream)


def crc32_bytes(data: bytes) -> str:
    """CRC-32 of an in-memory file, as 8 hex digits."""
    return f"{zlib.crc32(data):08x}"


def check_entry(where: str, name: str, entry: FileEntry, size: int, crc: str | None) -> None:
    """Raise :class:`CorruptCheckpointError` when a file's size (or CRC-32, when given)
    differs from its manifest entry."""
    if size != entry.size:
        raise CorruptCheckpointError(f"{where}/{name}: {size} bytes, the manifest says {entry.size} (torn write).")
    if crc is not None and crc != entry.crc32:
        raise CorruptCheckpointError(f"{where}/{name}: CRC-32 {crc}, the manifest says {entry.crc32} (corrupt data).")
