"""Path roles: where input data, scratch, outputs, persistent files, caches and checkpoints live,
and the project that namespaces them.

A role is a local :class:`~pathlib.Path` or an fsspec URL string (``s3://bucket/run``).
Providers say where each role lives on their host (:class:`~portarun.provider.HostLocations`);
this module applies the project namespace and the ``PORTARUN_<ROLE>_DIR`` overrides and checks
the overrides. It creates nothing: looking (``detect()``, ``portarun info``) leaves the disk as
it was, and whatever writes into a role creates its folder first with :func:`ensure_dir`.
"""
from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Union

from ._util.redact import shown_location
from .errors import PathError, warn

if TYPE_CHECKING:
    from hashlib import sha256 as _sha256

    from .probe import Probe
    from .provider import Provider
    from .runtime import Runtime
else:
    # detect() hashes the project's path: CPython's built-in SHA-256 gives the same digest as
    # hashlib's without loading OpenSSL's libcrypto, which costs ~2 ms at every start (the
    # module is _sha2 from CPython 3.12, _sha256 before: python/cpython@2eaf712:Modules/sha2module.c).
    try:
        from _sha2 import sha256 as _sha256
    except ImportError:
        try:
            from _sha256 import sha256 as _sha256
        except ImportError:  # another interpreter, or a build without the built-in module
            from hashlib import sha256 as _sha256


Location = Union[Path, str]
Role = Literal["input", "scratch", "output", "persist", "cache", "checkpoints"]
ROLES: tuple[Role, ...] = ("input", "scratch", "output", "persist", "cache", "checkpoints")
#: Roles portarun writes to; an override for one must be a folder this process can write to.
WRITABLE_ROLES: tuple[Role, ...] = ("scratch", "output", "persist", "cache", "checkpoints")


@dataclass(frozen=True)
class Paths:
    """The six path roles of a runtime. Local roles are :class:`~pathlib.Path`; remote ones are
    fsspec URL strings (see :func:`is_remote`). A role's folder may not exist yet: it is
    created by the first write (:func:`ensure_dir`). ``notes`` say how overrides were read
    (a relative path made absolute, say); ``rt.explain()`` shows them."""

    input: Location
    scratch: Location
    output: Location
    persist: Location
    cache: Location
    checkpoints: Location
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __getitem__(self, role: str) -> Location:
        if role not in ROLES:
            raise PathError(f"unknown path role {role!r}; roles are: {', '.join(ROLES)}.")
        value: Location = getattr(self, role)
        return value

    def as_dict(self) -> dict[str, str]:
        """Each role as a string, in role order."""
        return {role: str(getattr(self, role)) for role in ROLES}

    def __repr__(self) -> str:  # the roles stay usable in full; only what is printed is masked
        from dataclasses import fields

        from ._util.redact import shown_location

        return shown_location("Paths(" + ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)) + ")")


def is_remote(location: Location) -> bool:
    """Whether a location is an fsspec URL rather than a local path."""
    return isinstance(location, str) and "://" in location


def join(location: Location, *parts: str) -> Location:
    """Append path parts to a local path or an fsspec URL."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return Path(location).joinpath(*parts)


def ensure_dir(location: Location, role: str | None = None) -> Location:
    """Create the local folder ``location`` (and its parents) before something writes into it;
    URLs are returned as they are (object stores have no folders to make). Raises
    :class:`~portarun.errors.PathError` saying why it cannot be created and which variable
    moves it. Writers call this; ``detect()`` never does."""
    if is_remote(location):
        return location
    path = Path(location)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = ("a file of that name is in the way" if isinstance(exc, FileExistsError)
                  else (exc.strerror or str(exc)))
        hint = (f"Set PORTARUN_{role.upper()}_DIR to a writable folder or fsspec URL." if role
                else "Choose a writable folder.")
        raise PathError(f"cannot create the {role + ' ' if role else ''}folder {_shown(path)}: "
                        f"{reason}. {hint}") from exc
    return path


# -- project names ---------------------------------------------------------------------------
class ProjectId(NamedTuple):
    """A project: ``name`` is its folder under the persistent storage, ``origin`` says where
    the name came from (``script /home/me/exp/train.py``, ``PORTARUN_PROJECT='实验一'``)."""

    name: str
    origin: str


#: The longest folder name a project gets, in characters (at most 4 UTF-8 bytes each, so
#: far below the 255-byte name limit of ext4, APFS, NTFS and FAT).
_MAX_NAME = 48
#: Names Windows refuses for a file or folder whatever the extension
#: (https://learn.microsoft.com/en-us/windows/win32/fileio/naming-a-file#naming-conventions).
_WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                               *(f"lpt{i}" for i in range(1, 10))})
#: Working folders that hosts impose, which say nothing about the project.
_GENERIC_FOLDERS = frozenset({"", "working", "content", "notebooks", "workspace", "work", "root", "tmp", "home"})


_HASHED = re.compile(r".+-[0-9a-f]{8}")


def slugify(name: str) -> str:
    """``name`` reduced to ASCII letters, digits and ``._-`` (for host names in file names)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")


def short_hash(text: str) -> str:
    """Eight hex digits of the SHA-256 of ``text`` (undecodable bytes kept as they were)."""
    return _sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _clean(name: str) -> str:
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", name):
        keep = ch in "._-" or unicodedata.category(ch)[0] in "LN"
        if not keep and out and out[-1] == "-":
            continue
        out.append(ch if keep else "-")
    return "".join(out).strip("-.")


def readable(name: str) -> str:
    """``name`` in NFC with every character but letters, digits, ``.``, ``_`` and ``-``
    (any script: ``实验一`` and ``exp-α`` stay as they are) replaced by ``-``, runs of ``-``
    merged, leading and trailing ``-``/``.`` removed, cut to 48 characters. May be empty."""
    return _clean(name)[:_MAX_NAME].strip("-.")


def _plain(name: str) -> bool:
    """Whether ``name`` can be a folder name exactly as given on every filesystem: readable
    already, lower case (macOS and Windows ignore case, so ``Exp`` and ``exp`` would share a
    folder there), and not a name Windows reserves."""
    return (bool(name) and readable(name) == name and name.casefold() == name
            and name.split(".", 1)[0] not in _WINDOWS_RESERVED)


def _made_here(name: str) -> bool:
    """Whether ``name`` looks like a folder :func:`project_folder` made (readable part, hash)."""
    return len(name) <= _MAX_NAME + 9 and _clean(name) == name and bool(_HASHED.fullmatch(name))


def origin_text(text: str) -> str:
    """Where a project's name came from, as reports show it: credentials masked, then cut to 300
    characters (cut first, a password running past the cut would lose its ``@`` and show)."""
    return shown_location(text)[:300]


def project_folder(name: str) -> str:
    """The folder of an explicitly named project: ``name`` itself when it is plain (lower-case
    letters of any script, digits, ``._-``) or already a folder this function made; otherwise
    its :func:`readable` form (credentials in a location masked first) plus ``-`` and a
    :func:`short_hash` of the exact name, so different names never share a folder (``My Exp`` →
    ``My-Exp-<hash>``, ``实验一`` stays)."""
    if _plain(name) or _made_here(name):
        return name
    # Named from the masked text (a location typed as a name keeps no credential), hashed exactly.
    return f"{readable(shown_location(name)) or 'project'}-{short_hash(name)}"


def _host_path(probe: Probe, path: Path) -> str:
    """``path`` as the host sees it (a simulation's root removed), for stable hashes."""
    if probe.root == Path("/"):
        return str(path)
    try:
        return "/" + path.relative_to(probe.root).as_posix()
    except ValueError:
        return str(path)


def _own_entry_point(argv0: str) -> bool:
    """Whether ``argv0`` is portarun's own command (``python -m portarun``): it names no project."""
    try:
        return Path(argv0).resolve() == (Path(__file__).parent / "__main__.py").resolve()
    except (OSError, ValueError):
        return False


def script_project(script: str, cwd: Path) -> ProjectId:
    """The project of a script: its name plus a hash of its absolute path (symlinks resolved),
    so two different ``train.py`` never share checkpoints and every run of one script finds
    its own. ``python -m pkg`` (``pkg/__main__.py``) is named after the package."""
    joined = os.path.join(cwd, script)
    try:
        path = os.path.realpath(joined)
    except (OSError, ValueError):  # a NUL byte: no file has that name, so there is no link to resolve
        path = os.path.normpath(joined)
    pure = PurePosixPath(path.replace("\\", "/"))
    stem = pure.parent.name if pure.stem == "__main__" else pure.stem
    return ProjectId(f"{readable(stem) or 'script'}-{short_hash(path)}", origin_text(f"script {path!r}"))


def default_project(probe: Probe, argv0: str | None) -> ProjectId:
    """The project when none is given, first match wins:

    1. ``PORTARUN_PROJECT`` (through :func:`project_folder`);
    2. inside a notebook kernel, the notebook: its name plus a hash of ``JPY_SESSION_NAME``
       (its path, set by Jupyter and Colab);
    3. the running script: :func:`script_project`;
    4. the notebook a ``!python -c`` child inherits ``JPY_SESSION_NAME`` from;
    5. the working folder: its name plus a hash of its path, or ``default`` in a host's
       generic folder (``/kaggle/working``, ``/content``).
    """
    explicit = probe.getenv("PORTARUN_PROJECT")
    if explicit:
        return ProjectId(project_folder(explicit), origin_text(f"PORTARUN_PROJECT={explicit!r}"))
    notebook = probe.getenv("JPY_SESSION_NAME", "") or ""
    if probe.in_kernel and notebook:
        return _notebook_project(notebook)
    if argv0 and argv0.endswith(".py") and not probe.in_kernel and not _own_entry_point(argv0):
        return script_project(argv0, probe.cwd)
    if notebook:
        return _notebook_project(notebook)
    where = _host_path(probe, probe.cwd)
    name = probe.cwd.name
    if name.lower() in _GENERIC_FOLDERS or (probe.simulated and probe.cwd == probe.root):
        return ProjectId("default", f"the host's generic working folder {where!r}")
    return ProjectId(f"{readable(name) or 'folder'}-{short_hash(where)}", origin_text(f"working folder {where!r}"))


def _notebook_project(session_name: str) -> ProjectId:
    last = shown_location(session_name).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem = last[: -len(".ipynb")] if last.endswith(".ipynb") else last
    return ProjectId(f"{readable(stem) or 'notebook'}-{short_hash(session_name)}",
                     origin_text(f"notebook JPY_SESSION_NAME={session_name!r}"))


# -- overrides -------------------------------------------------------------------------------
def _shown(value: str | os.PathLike[str]) -> str:
    """A path or URL as a message may show it: credentials masked, escapes for undecodable
    bytes and control characters, long values cut."""
    text = repr(shown_location(value))
    return text if len(text) <= 160 else text[:120] + "…" + text[-30:]


#: Kernel pseudo-filesystems: writes there reach the kernel, not a disk (proc(5), sysfs(5)).
_PSEUDO = ("/proc", "/sys", "/dev")


def _kind(mode: int) -> tuple[str, str]:
    """What a non-folder is: a phrase for the message and a short noun."""
    for test, what, noun in ((stat.S_ISREG, "a file", "file"), (stat.S_ISFIFO, "a FIFO (named pipe)", "FIFO"),
                             (stat.S_ISSOCK, "a socket", "socket"), (stat.S_ISCHR, "a character device", "device"),
                             (stat.S_ISBLK, "a block device", "device")):
        if test(mode):
            return what, noun
    return "something other than a folder", "entry"


def _url_override(var: str, value: str) -> str:
    """A URL override, checked without importing its filesystem: a known protocol whose
    package is installed, and a bucket or path after ``://``."""
    import importlib.util

    from fsspec.registry import known_implementations, registry

    protocol, _, rest = value.partition("://")
    if not rest.strip("/"):
        raise PathError(f"{var}={_shown(value)} names no bucket or folder after {protocol}://. Write the "
                        f"whole location, like {protocol}://my-bucket/runs, or unset {var}.")
    known = known_implementations.get(protocol)
    if known is None and protocol not in registry:
        raise PathError(
            f"{var}={_shown(value)} uses the unknown fsspec protocol {protocol!r}. Use a local folder "
            f"or a URL with a known protocol (s3, gcs, gs, az, hf, http, ...)."
        )
    if known is not None:
        module = known["class"].rsplit(".", 1)[0]
        try:
            missing = importlib.util.find_spec(module.split(".", 1)[0]) is None
        except (ImportError, ValueError):
            missing = True
        if missing:
            raise PathError(f"{var}={_shown(value)} needs the package that provides {protocol}:// "
                            f"({known.get('err', module)}). Install it, or unset {var}.")
    return value.rstrip("/")


def _expand_home(var: str, value: str, probe: Probe) -> str:
    if value == "~" or value.startswith("~/"):
        return _host_path(probe, probe.home) + value[1:]
    expanded = os.path.expanduser(value) if not probe.simulated else value
    if expanded.startswith("~"):
        raise PathError(f"{var}={_shown(value)} starts with '~' but names no user this machine has. "
                        f"Write the folder's full path.")
    return expanded


def _override(role: Role, value: str, probe: Probe, notes: list[str]) -> Location:
    """The location an override names, or a :class:`PathError` saying what is wrong with it."""
    var = f"PORTARUN_{role.upper()}_DIR"
    if "\x00" in value:
        raise PathError(f"{var} contains a NUL byte, which no path can hold: {_shown(value)}. Fix the variable.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError(f"{var} holds bytes that are not UTF-8 ({_shown(value)}). Point it at a folder whose "
                        "name is valid UTF-8.") from None
    if value.startswith("file://"):
        value = value[len("file://"):]
    if "://" in value:
        return _url_override(var, value)
    path_text = _expand_home(var, value, probe)
    if not os.path.isabs(path_text):
        base = _host_path(probe, probe.cwd)
        path_text = os.path.join(base, path_text)
        notes.append(f"{var}={value!r} is relative: taken from the working folder at detect(), {base!r}.")
    normal = os.path.normpath(path_text)
    if ".." in PurePosixPath(path_text).parts:
        notes.append(f"{var}={value!r}: '..' resolved to {normal!r}.")
    path = probe.path(normal)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise PathError(
            f"{var} points at {_shown(value)}, which does not exist ({_shown(path)}). Create the folder "
            f"(mkdir -p {_shown(path)}) or unset {var} to use the host's default {role} location."
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PathError(f"{var} points at {_shown(value)}, which cannot be used: {reason}. Point {var} at an "
                        "existing folder.") from None
    if not stat.S_ISDIR(mode):
        what, noun = _kind(mode)
        raise PathError(
            f"{var} points at {_shown(value)}, which is {what}, not a folder. Point {var} at a folder "
            f"(or move that {noun} away and create a folder in its place), or unset {var}."
        )
    real = _host_path(probe, Path(os.path.realpath(path)))
    pseudo = next((p for p in _PSEUDO if real == p or real.startswith(p + "/")), None)
    if pseudo and not real.startswith("/dev/shm"):
        raise PathError(f"{var} points at {_shown(value)}, which is {real!r} inside {pseudo}, a kernel "
                        f"pseudo-filesystem where nothing can be stored. Point {var} at a folder on a disk.")
    if role in WRITABLE_ROLES and not os.access(path, os.W_OK):
        raise PathError(
            f"{var} points at {_shown(value)}, which this process cannot write to. Give it write permission "
            f"or point {var} at a writable folder."
        )
    return path


def resolve(provider: Provider, project: str) -> Paths:
    """The paths of ``provider`` for ``project`` with overrides applied. Nothing is created:
    each writer makes its folder on first write (:func:`ensure_dir`)."""
    probe = provider.probe
    loc = provider.locations(project)
    roles: dict[str, Location] = {
        "input": loc.input, "scratch": loc.scratch, "output": loc.output,
        "persist": join(loc.persist, project), "cache": loc.cache,
    }
    overridden: set[str] = set()
    notes: list[str] = []
    for role in ROLES:
        override = probe.getenv(f"PORTARUN_{role.upper()}_DIR")
        if override:
            roles[role] = _override(role, override, probe, notes)
            overridden.add(role)
    if "checkpoints" not in overridden:
        roles["checkpoints"] = join(roles["persist"], "checkpoints")
    if loc.persist_warning and "persist" not in overridden:
        warn(loc.persist_warning)
    return Paths(**roles, notes=tuple(notes))


def projects_section(rt: Runtime) -> dict[str, Any]:
    """The ``projects`` section of ``portarun info``: this report's project and where its name
    came from, and the projects found under the persistent storage with their checkpoint
    counts, so a report run from a shell can be pointed at a script's project."""
    from .checkpoint import Checkpointer

    section: dict[str, Any] = {
        "current": rt.project, "origin": rt.project_origin,
        "hint": "a script's project is its name plus a hash of its path; see it with "
                "`portarun info --script train.py`, or pick one with `portarun info --project NAME`",
    }
    if rt.probe.getenv("PORTARUN_PERSIST_DIR") or rt.probe.getenv("PORTARUN_CHECKPOINTS_DIR"):
        section["found"] = "not listed: persist or checkpoints is set by a PORTARUN_*_DIR override"
        return section
    root = rt.provider.locations(rt.project).persist
    section["root"] = str(root)
    if is_remote(root):
        section["found"] = "not listed: the persistent storage is remote"
        return section
    found: dict[str, Any] = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        section["found"] = {} if isinstance(exc, FileNotFoundError) else f"cannot list {root}: {exc.strerror}"
        return section
    for entry in entries[:200]:
        folder = Path(entry.path) / "checkpoints"
        if entry.is_dir(follow_symlinks=False) and folder.is_dir():
            try:
                found[entry.name] = len(Checkpointer(folder, handle_signals=False, mode="blocking").list())
            except Exception as exc:  # a damaged folder is reported, never fails the report
                found[entry.name] = f"error: {type(exc).__name__}: {exc}"
    section["found"] = found
    return section
