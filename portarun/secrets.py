"""Secrets from wherever this host keeps them: ``rt.secret("WANDB_API_KEY")``.

Sources, in order (the first that has the name wins):

1. The host's own secret stores, from its provider's
   :meth:`~portarun.provider.Provider.secret_sources`: Colab's secrets panel
   (``google.colab.userdata``, inside the notebook kernel only) on Colab, Kaggle's
   "Add-ons → Secrets" (``kaggle_secrets``) on Kaggle, whatever a plugin's host offers.
2. Environment variables (as the probe sees them, so simulations work).
3. A ``.env`` file in the project folder (the working folder), parsed by python-dotenv
   (``pip install python-dotenv``).

Values come back wrapped in :class:`Secret`, whose ``repr``/``str``/``format`` never show the
value; call :meth:`Secret.reveal` at the point of use. Errors name the sources that were
consulted and how to add the secret on this host, never a value.
"""
from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

from ._util.redact import MASK
from .errors import SecretNotFoundError, SecretsFileError

if TYPE_CHECKING:
    from .runtime import Runtime

ENV_FILE: Final = ".env"
#: The largest ``.env`` read (bytes).
ENV_FILE_LIMIT: Final = 1 << 20


class Secret:
    """A secret value that does not print itself.

    ``repr``, ``str`` and f-strings show ``Secret('NAME', source='env', value=***)``; pickling
    is refused so values do not leak into checkpoints or multiprocessing payloads. Use
    :meth:`reveal` to get the string.
    """

    __slots__ = ("name", "source", "_value")

    def __init__(self, name: str, value: str, source: str) -> None:
        self.name = name
        self.source = source
        self._value = value

    def reveal(self) -> str:
        """The secret's value. Pass it straight to the API that needs it; do not log it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, source={self.source!r}, value={MASK})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.name == self.name and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self.name))

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{self!r} cannot be pickled; pass secret.reveal() where it is needed.")


@dataclass(frozen=True)
class Lookup:
    """One source's answer: the value (or ``None``) and, when it was skipped or failed, why."""

    value: str | None
    note: str | None = None


@dataclass(frozen=True)
class Source:
    """A place secrets live: ``usable(rt)`` says why it cannot be read now (or ``None``),
    ``get(rt, name)`` looks the name up, ``how_to_add`` tells the user how to put one there,
    ``offered(rt)`` whether the advice is worth giving here. A provider returns its host's stores
    from :meth:`~portarun.provider.Provider.secret_sources`; ``get`` may import the host's client
    (it runs only when ``usable`` said yes) and must never put a value in a note."""

    name: str
    usable: Callable[[Runtime], str | None]
    get: Callable[[Runtime, str], Lookup]
    how_to_add: str
    offered: Callable[[Runtime], bool] = lambda _rt: True


# -- environment and .env -------------------------------------------------------------------
def _env_get(rt: Runtime, name: str) -> Lookup:
    return Lookup(rt.probe.getenv(name))


def env_file(rt: Runtime) -> Path:
    """The ``.env`` file consulted: ``<working folder>/.env``."""
    return rt.probe.cwd / ENV_FILE


def _dotenv_usable(rt: Runtime) -> str | None:
    path = env_file(rt)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return f"no file {path}"
    if not stat.S_ISREG(mode):
        return f"{path} is not a regular file (a FIFO, device or folder), so it is not read"
    return None


def read_env_text(path: Path) -> str:
    """The text of a ``.env`` file, or :class:`SecretsFileError` naming the file and the byte
    offset and line of the first byte that is not UTF-8 (python-dotenv's own decoding would raise
    a ``UnicodeDecodeError`` whose ``repr`` holds the whole file, every secret in it included).
    A file over :data:`ENV_FILE_LIMIT` bytes is refused unread: a ``.env`` is a few lines."""
    try:
        # Non-blocking, and only a regular file: a FIFO swapped in after the check above must
        # not hang the lookup.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SecretsFileError(f"{path} is not a regular file (a FIFO, device or folder); remove it or "
                                       "replace it with a file of NAME=value lines.")
            data = f.read(ENV_FILE_LIMIT + 1)
    except OSError as exc:
        raise SecretsFileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}. Fix its permissions "
                               "or remove it.") from None
    if len(data) > ENV_FILE_LIMIT:
        raise SecretsFileError(f"{path} is over {ENV_FILE_LIMIT // 1024} KiB, too large for a .env file of "
                               "NAME=value lines; check that it is the right file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start
    # Raised outside the ``except``: the UnicodeDecodeError holds the file's bytes and must not
    # even be the new error's ``__context__``.
    line, byte = data.count(b"\n", 0, offset) + 1, data[offset]
    del data  # nor a local of the frame that error trackers and --showlocals print
    raise SecretsFileError(
        f"{path} is not UTF-8: byte {offset} (line {line}) is 0x{byte:02x}. Save the file as "
        "UTF-8 (the value on that line is not shown here)."
    )


def _dotenv_get(rt: Runtime, name: str) -> Lookup:
    try:
        from dotenv import dotenv_values
    except ImportError:
        return Lookup(None, f"{env_file(rt)} exists but python-dotenv is not installed to read it "
                            "(pip install python-dotenv)")
    text = read_env_text(env_file(rt))
    _check_expansion_cost(env_file(rt), text)
    value = dotenv_values(stream=io.StringIO(text)).get(name)
    return Lookup(value)


#: The most work python-dotenv's ``${VAR}`` expansion may do on one line, in characters scanned
#: (about a tenth of a second).
_EXPANSION_BUDGET: Final = 10_000_000


def _check_expansion_cost(path: Path, text: str) -> None:
    """Refuse a line whose ``${VAR}`` expansion would take minutes or hours. python-dotenv
    (``dotenv/variables.py``, ``_posix_variable``) matches each ``${`` with a pattern that scans
    up to the next ``}`` or ``:``, so a line of unclosed ``${`` costs (their count) x (the line's
    length): 100,000 of them in 200 kB took minutes. Measured per line, generously."""
    for number, line in enumerate(text.splitlines(), 1):
        references = line.count("${")
        if references and references * len(line) > _EXPANSION_BUDGET:
            raise SecretsFileError(
                f"{path} line {number} holds {references} '${{' in {len(line)} characters: python-dotenv's "
                "${VAR} expansion would take minutes or hours on it. Shorten that line or remove the stray '${' "
                "(the value on that line is not shown here).")


#: The sources every host has, after the host's own.
COMMON_SOURCES: tuple[Source, ...] = (
    Source("env", lambda _rt: None, _env_get, "set the environment variable: export {name}=..."),
    Source("dotenv", _dotenv_usable, _dotenv_get,
           "add a line {name}=... to {env_file} (and keep .env out of version control)"),
)


def sources(rt: Runtime) -> tuple[Source, ...]:
    """The sources consulted on ``rt``'s host, in order: the provider's, then the common ones."""
    return (*rt.provider.secret_sources(), *COMMON_SOURCES)


def _search(rt: Runtime, name: str) -> tuple[Secret | None, list[str]]:
    trail: list[str] = []
    for source in sources(rt):
        why_not = source.usable(rt)
        if why_not is not None:
            trail.append(f"{source.name}: skipped ({why_not})")
            continue
        lookup = source.get(rt, name)
        if lookup.value is not None:
            return Secret(name, lookup.value, source.name), trail
        trail.append(f"{source.name}: not found" + (f" ({lookup.note})" if lookup.note else ""))
    return None, trail


def fallback(name: str, default: object) -> Secret:
    """The :class:`Secret` ``rt.secret(name, default=...)`` returns when ``name`` is nowhere: the
    default's value, taken from a :class:`Secret` with :meth:`Secret.reveal` (its ``str`` is the
    masked text, which would silently become the value), else ``str(default)``."""
    value = default.reveal() if isinstance(default, Secret) else str(default)
    return Secret(name, value, "default")


def find(rt: Runtime, name: str) -> Secret:
    """The secret ``name`` from the first source that has it, or :class:`SecretNotFoundError`
    saying where it was looked for and how to add it on this host."""
    if not name or not isinstance(name, str):
        raise SecretNotFoundError(f"secret names are non-empty strings, got {type(name).__name__} {name!r}.")
    # Shown shortened: a 10 kB name would otherwise fill the message three times over.
    shown = name if len(name) <= 100 else f"{name[:80]}...({len(name)} characters)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # never pasted raw into a message or a log line
        raise SecretNotFoundError(f"secret names cannot hold control characters (newline, NUL, escape, ...), got "
                                  f"{shown!r}; no environment variable, .env line or secrets panel can hold it. "
                                  "Check how the name was built.")
    found, trail = _search(rt, name)
    if found is not None:
        return found
    ways = [s.how_to_add.format(name=shown, env_file=env_file(rt)) for s in sources(rt) if s.offered(rt)]
    raise SecretNotFoundError(
        f"secret {shown!r} was not found on {rt.host.display_name}. Looked in: " + "; ".join(trail)
        + ". To add it: " + "; or ".join(ways) + "."
    )
