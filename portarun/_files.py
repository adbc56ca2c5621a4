"""Small files written whole or not at all, and on/off environment flags."""
from __future__ import annotations

import os
from pathlib import Path

_OFF = ("0", "false", "no", "off")


def flag(value: str | None, default: bool) -> bool:
    """An on/off setting from an environment variable's value: ``default`` when unset or empty,
    off for ``0``/``false``/``no``/``off`` (any case), on for anything else."""
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in _OFF


def write_text_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> None:
    """:func:`write_bytes_atomic` of ``text`` encoded as UTF-8 (newlines written as given)."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename, so a reader
    sees the old file or the whole new one; ``durable`` fsyncs before the rename (for results a
    crash must not lose). The folder is created; the temporary file is removed on any failure."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.portarun-part")
    try:
        with open(part, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
