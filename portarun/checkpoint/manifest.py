"""The manifest: what a published checkpoint contains, written last, checked on load.

A checkpoint is a folder ``step-<step>`` holding its data files and ``manifest.json``. The
manifest lists every data file with its size and CRC-32 and is written after them, so a folder
without a readable manifest is incomplete by definition; a file whose size or CRC-32 differs
from the manifest is torn or corrupt. CRC-32 (``zlib.crc32``, ~3 GiB/s here) catches torn
writes, truncated uploads and bit flips; it is not a defence against tampering.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from ..errors import CorruptCheckpointError

FORMAT = "portarun-checkpoint/1"
MANIFEST = "manifest.json"
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
        """The manifest as UTF-8 JSON."""
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """Parse a manifest; raises :class:`CorruptCheckpointError` naming ``where``."""
        try:
            raw: dict[str, Any] = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError(f"unknown format {raw.get('format')!r}")
            files = {name: FileEntry(int(e["size"]), str(e["crc32"])) for name, e in raw["files"].items()}
            return cls(step=int(raw["step"]), saved_at=float(raw["saved_at"]), files=files,
                       kind=str(raw.get("kind", "torch")), metrics={k: float(v) for k, v in raw["metrics"].items()},
                       world_size=int(raw.get("world_size", 1)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptCheckpointError(f"{where}: unreadable manifest ({exc}).") from exc


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


def crc32_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """``(size, crc32 hex)`` of a local file."""
    with open(path, "rb", buffering=0) as stream:
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
