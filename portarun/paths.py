"""Path roles: where input data, scratch, outputs, persistent files, caches and checkpoints live.

A role is a local :class:`~pathlib.Path` or an fsspec URL string (``s3://bucket/run``).
Providers say where each role lives on their host (:class:`~portarun.provider.HostLocations`);
this module applies the project namespace and the ``PORTARUN_<ROLE>_DIR`` overrides, checks
them, and creates the writable local folders, so every path a runtime hands out can be used.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal, Union

from .errors import PathError, PortarunWarning

if TYPE_CHECKING:
    from .probe import Probe
    from .provider import Provider


Location = Union[Path, str]
Role = Literal["input", "scratch", "output", "persist", "cache", "checkpoints"]
ROLES: tuple[Role, ...] = ("input", "scratch", "output", "persist", "cache", "checkpoints")
#: Roles portarun writes to; they are created (or checked writable) when a runtime is built.
WRITABLE_ROLES: tuple[Role, ...] = ("scratch", "output", "persist", "cache", "checkpoints")


@dataclass(frozen=True)
class Paths:
    """The six path roles of a runtime. Local roles are :class:`~pathlib.Path`; remote ones are
    fsspec URL strings (see :func:`is_remote`)."""

    input: Location
    scratch: Location
    output: Location
    persist: Location
    cache: Location
    checkpoints: Location

    def __getitem__(self, role: str) -> Location:
        if role not in ROLES:
            raise PathError(f"unknown path role {role!r}; roles are: {', '.join(ROLES)}.")
        value: Location = getattr(self, role)
        return value

    def as_dict(self) -> dict[str, str]:
        """Each role as a string, in role order."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def is_remote(location: Location) -> bool:
    """Whether a location is an fsspec URL rather than a local path."""
    return isinstance(location, str) and "://" in location


def join(location: Location, *parts: str) -> Location:
    """Append path parts to a local path or an fsspec URL."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return Path(location).joinpath(*parts)


_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slugify(name: str) -> str:
    """A project name usable as one folder name on every filesystem."""
    slug = _SLUG.sub("-", name).strip("-.")
    return slug or "default"


def default_project(probe: Probe, argv0: str | None) -> str:
    """The project name when none is given: ``PORTARUN_PROJECT``; else the notebook's name
    inside a kernel (``JPY_SESSION_NAME``, set by Jupyter and Colab); else the running script's
    name; else the notebook name a ``!python`` child inherits; else the working folder's name,
    unless that is a host's generic folder (``/kaggle/working``, ``/content``): then ``default``."""
    if probe.getenv("PORTARUN_PROJECT"):
        return slugify(probe.getenv("PORTARUN_PROJECT") or "")
    notebook = probe.getenv("JPY_SESSION_NAME", "") or ""
    notebook_stem = PurePosixPath(notebook).stem if notebook.endswith(".ipynb") else ""
    if probe.in_kernel and notebook_stem:
        return slugify(notebook_stem)
    if argv0 and argv0.endswith(".py") and not probe.in_kernel:
        return slugify(PurePosixPath(argv0.replace("\\", "/")).stem)
    if notebook_stem:
        return slugify(notebook_stem)
    name = probe.cwd.name
    if name.lower() in _GENERIC_FOLDERS or (probe.simulated and probe.cwd == probe.root):
        return "default"
    return slugify(name)


#: Working folders that hosts impose, which say nothing about the project.
_GENERIC_FOLDERS = frozenset({"", "working", "content", "notebooks", "workspace", "work", "root", "tmp", "home"})


def _override(role: Role, value: str, probe: Probe) -> Location:
    var = f"PORTARUN_{role.upper()}_DIR"
    if value.startswith("file://"):
        value = value[len("file://"):]
    if "://" in value:
        import fsspec

        protocol = value.split("://", 1)[0]
        if protocol not in fsspec.available_protocols():
            raise PathError(
                f"{var}={value!r} uses the unknown fsspec protocol {protocol!r}. Use a local folder "
                f"or a URL with a known protocol (s3, gcs, gs, az, hf, http, ...)."
            )
        return value.rstrip("/")
    path = probe.path(os.path.expanduser(value))
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise PathError(
            f"{var} points at {value!r}, which {what}. Create the folder (mkdir -p {value}) or unset "
            f"{var} to use the host's default {role} location."
        )
    if role in WRITABLE_ROLES and not os.access(path, os.W_OK):
        raise PathError(
            f"{var} points at {value!r}, which this process cannot write to. Give it write permission "
            f"or point {var} at a writable folder."
        )
    return path


def resolve(provider: Provider, project: str) -> Paths:
    """The paths of ``provider`` for ``project`` with overrides applied and folders created."""
    probe = provider.probe
    loc = provider.locations(project)
    roles: dict[str, Location] = {
        "input": loc.input, "scratch": loc.scratch, "output": loc.output,
        "persist": join(loc.persist, project), "cache": loc.cache,
    }
    overridden: set[str] = set()
    for role in ROLES:
        override = probe.getenv(f"PORTARUN_{role.upper()}_DIR")
        if override:
            roles[role] = _override(role, override, probe)
            overridden.add(role)
    if "checkpoints" not in overridden:
        roles["checkpoints"] = join(roles["persist"], "checkpoints")
    if loc.persist_warning and "persist" not in overridden:
        warnings.warn(loc.persist_warning, PortarunWarning, stacklevel=5)
    for role in WRITABLE_ROLES:
        location = roles[role]
        if role in overridden or is_remote(location):
            continue
        try:
            Path(location).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = "a file of that name is in the way" if isinstance(exc, FileExistsError) else (exc.strerror or str(exc))
            raise PathError(
                f"cannot create the {role} folder {location}: {reason}. Set "
                f"PORTARUN_{role.upper()}_DIR to a writable folder or fsspec URL."
            ) from exc
    return Paths(**roles)

