"""Every error portarun raises derives from :class:`PortarunError`; every warning from
:class:`PortarunWarning`. Messages say what happened and what to do next."""
from __future__ import annotations

from collections.abc import Iterable


class PortarunError(Exception):
    """Base class of every error raised by portarun. Its message never holds a credential: every
    string argument passes through :func:`portarun._util.redact.redact`, so a location such as
    ``s3://key:secret@bucket/run`` in any message (and in ``args``, ``repr``, a pickled copy)
    shows as ``s3://***@bucket/run``, and a quoted ``HF_TOKEN=hf_...`` as ``HF_TOKEN=***``."""

    def __init__(self, *args: object) -> None:
        from ._util.redact import redact

        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class UnknownHostError(PortarunError, LookupError):
    """A host name (``PORTARUN_HOST`` or ``detect(host=...)``) names no registered provider."""

    def __init__(self, name: str, known: Iterable[str], source: str = "host") -> None:
        import difflib

        from ._util.redact import redact_start

        self.name = name
        self.known = tuple(sorted(known))
        close = difflib.get_close_matches(name.strip().lower(), self.known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        super().__init__(  # the name quoted cut short: a 100 kB PORTARUN_HOST would fill the line
            f"unknown {source} {redact_start(name, 100)!r}; {hint}known: {', '.join(self.known)}. "
            "Install the provider plugin for it, or pick one of the known names."
        )


class PluginError(PortarunError):
    """A plugin failed to load or misbehaved while ``PORTARUN_STRICT=1`` is set."""


class PathError(PortarunError):
    """A path role cannot be used: an override points at a missing or unwritable folder."""


class NotAvailableError(PortarunError):
    """A host-specific feature was asked for on a host that does not offer it."""


class PortarunWarning(UserWarning):
    """Base class of every warning emitted by portarun; its message is masked like
    :class:`PortarunError`'s (``warnings.warn(text, PortarunWarning)`` builds one from ``text``)."""

    def __init__(self, *args: object) -> None:
        from ._util.redact import redact

        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


# Frames of these modules are portarun's own or the machinery between it and the caller.
_INTERNAL = ("portarun", "pluggy", "functools", "contextlib", "importlib", "threading")


def warn(message: str, category: type[Warning] = PortarunWarning) -> None:
    """Emit ``message`` as a :class:`PortarunWarning` attributed to the first frame outside
    portarun (and pluggy, contextlib, ...): the user's own line, whatever the depth of the call
    inside portarun, so ``warnings`` filters and the printed location point at their code."""
    import sys
    import warnings

    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".")[0] not in _INTERNAL:
            break
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class SubmissionError(PortarunError, ValueError):
    """A submission failed validation or could not be delivered; nothing was written when
    validation failed. ``problems`` lists each finding as ``(kind, message)``."""

    def __init__(self, message: str, problems: Iterable[tuple[str, str]] = ()) -> None:
        self.problems = tuple(problems)
        super().__init__(message)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kind of each problem (``columns``, ``row_count``, ``missing_ids``, ...)."""
        return tuple(kind for kind, _ in self.problems)


class SecretNotFoundError(PortarunError, LookupError):
    """A secret was not found in any source; the message lists where it was looked for and how
    to add it on this host. It never contains a secret value."""


class SecretsFileError(PortarunError, ValueError):
    """A secrets file (``.env``) cannot be read: not UTF-8, or too large. The message names the
    file and where the problem is (byte offset and line), never its content."""


class DatasetError(PortarunError):
    """A dataset reference cannot be resolved to a local folder."""


class StagingError(PortarunError):
    """Copying files in or out (``rt.stage`` / ``rt.stage_out``) failed."""


class DeviceError(PortarunError):
    """The accelerator cannot be used as asked: a requested kind is absent, or the installed
    torch cannot drive the hardware that is there."""


class DistributedError(PortarunError):
    """A distributed run cannot be started or joined (unknown rendezvous, bad launch options)."""


class CheckpointError(PortarunError):
    """A checkpoint cannot be saved or loaded: nothing to resume from at an explicit step, a
    corrupt checkpoint with no intact one before it, or a failed background write."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's files do not match its manifest (torn write, truncated upload, bit rot)."""


class StorageFullError(CheckpointError, OSError):
    """The checkpoint storage ran out of space or quota (ENOSPC/EDQUOT) while writing; the
    previous checkpoints are intact and the partial files were removed."""


class CheckpointLockedError(CheckpointError):
    """Another process holds the writer lease on the checkpoint folder; the message names it
    (host, pid, since when) and says how to take the lease over once that writer is gone."""


class LoaderError(PortarunError):
    """DataLoader settings cannot be planned or tuned as asked: an empty dataset, a batch size
    that is not positive, a bad autotune budget."""


class IntegrationError(PortarunError):
    """A library integration (:mod:`portarun.integrations`) cannot be set up from this runtime,
    e.g. the library needs a local folder and the path role is a bucket URL."""
