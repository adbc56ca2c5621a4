"""``rt.dataset(ref)``: a local folder holding a dataset, wherever this runs.

``ref`` is one of:

- a Kaggle handle ``owner/slug`` (or ``owner/slug/versions/N``). The attached copy under
  ``rt.paths.input`` is used when there is one — Kaggle mounts datasets at
  ``/kaggle/input/datasets/<owner>/<slug>`` since 2026 and at ``/kaggle/input/<slug>`` before
  (docs/reference/host-evidence.md §2); locally, ``data/<slug>`` plays the same role. Otherwise
  ``kagglehub.dataset_download`` fetches it into ``rt.paths.cache/kagglehub`` (through
  kagglehub's documented ``KAGGLEHUB_CACHE`` setting); without kagglehub, a
  :class:`~portarun.errors.DatasetError` says how to get it.
- an fsspec URL (``s3://``, ``gs://``, ``https://``, ...): copied with :func:`portarun.staging.stage`
  into ``rt.paths.cache/datasets/<protocol>/<path>`` (resumable; a second call copies nothing new).
  A URL with credentials (``s3://key:secret@bucket/...``, ``?token=...``) never shows them in
  that folder name: the bucket part becomes ``<bucket>-<hash of the full URL>``.
- a local path, such as a Google Drive folder ``/content/drive/MyDrive/...``: returned as it
  is when it exists (use ``rt.stage`` to copy it to fast disk); a missing path that the host's
  provider explains (:meth:`~portarun.provider.Provider.missing_path_hint`: a Drive path before
  Drive is mounted, on Colab) raises with what to do.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ._util.redact import MASK, location_key, shown_location
from .errors import DatasetError
from .paths import is_remote, join

if TYPE_CHECKING:
    from .runtime import Runtime

_HANDLE = re.compile(r"^(?P<owner>[A-Za-z0-9][\w.-]*)/(?P<slug>[A-Za-z0-9][\w.-]*)(?:/versions/(?P<version>\d+))?$")
_kagglehub_lock = threading.Lock()


def attached_candidates(rt: Runtime, owner: str, slug: str) -> list[Path]:
    """Where an attached copy of ``owner/slug`` may be, newest layout first."""
    if is_remote(rt.paths.input):
        return []
    base = Path(rt.paths.input)
    return [base / "datasets" / owner / slug, base / slug]


def resolve(rt: Runtime, ref: str | os.PathLike[str]) -> Path:
    """The local folder (or file) for ``ref``; see the module docstring for the rules."""
    text = os.fspath(ref)
    if not text:  # "" would be the working folder itself
        raise DatasetError("the dataset reference is empty; pass a path, an fsspec URL (s3://bucket/folder) or a "
                           "Kaggle handle owner/slug.")
    if is_remote(text):
        return _from_url(rt, text)
    try:
        local = _local_path(rt, text)
        found = local.exists()
    except OSError as exc:  # a name too long for the filesystem, say
        shown = text if len(text) <= 100 else f"{text[:80]}... ({len(text)} characters)"
        raise DatasetError(f"dataset {shown!r} cannot be used as a path here ({exc.strerror or exc}), and it is "
                           "neither an fsspec URL nor a Kaggle handle owner/slug. Check how it was built.") from None
    if found:
        return local
    match = _HANDLE.match(text)
    if match:
        return _from_kaggle(rt, text, match.group("owner"), match.group("slug"))
    hint = rt.provider.missing_path_hint(text)
    if hint:
        raise DatasetError(f"{text} does not exist: {hint}")
    raise DatasetError(f"dataset {text!r} is neither an existing path, an fsspec URL (s3://, gs://, https://...) "
                       "nor a Kaggle handle owner/slug. Check the spelling.")


def _local_path(rt: Runtime, text: str) -> Path:
    """``text`` as a local path: relative to the working folder; an absolute host path that
    does not exist as given is looked up under the probe's root (a simulated host)."""
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        return rt.probe.cwd / path
    return path if path.exists() else rt.probe.path(path)


def _from_url(rt: Runtime, url: str) -> Path:
    from .staging import stage

    shown = shown_location(url)
    protocol, _, rest = shown.partition("://")
    parts = [p for p in rest.split("?", 1)[0].removeprefix(MASK + "@").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise DatasetError(f"{shown!r} names no bucket or path; give a URL such as s3://bucket/folder.")
    if shown != url:  # credentials in the URL: never in a folder name, yet two users' copies stay apart
        parts[0] += f"-{location_key(url)}"
    if is_remote(rt.paths.cache):
        raise DatasetError(f"rt.paths.cache is the remote location {rt.paths.cache}; datasets need a local cache. "
                           "Unset PORTARUN_CACHE_DIR or point it at a local folder.")
    dest = join(rt.paths.cache, "datasets", protocol, *parts)
    result = stage(rt, url, to=dest)
    return Path(result.path)


def _from_kaggle(rt: Runtime, handle: str, owner: str, slug: str) -> Path:
    looked = attached_candidates(rt, owner, slug)
    for folder in looked:
        if folder.is_dir():
            return folder
    where = ", ".join(str(p) for p in looked) or "nowhere (rt.paths.input is remote)"
    if not rt.probe.has_module("kagglehub"):
        raise DatasetError(
            f"dataset {handle!r} is not attached (looked in {where}) and kagglehub is not installed to download "
            "it. On Kaggle, attach it with 'Add Input'; elsewhere run `pip install kagglehub` (and set "
            "KAGGLE_USERNAME/KAGGLE_KEY or KAGGLE_API_TOKEN for private data)."
        )
    if is_remote(rt.paths.cache):
        raise DatasetError(f"rt.paths.cache is the remote location {rt.paths.cache}; kagglehub needs a local "
                           "cache. Unset PORTARUN_CACHE_DIR or point it at a local folder.")
    import kagglehub

    cache = Path(rt.paths.cache) / "kagglehub"
    with _kagglehub_lock:  # KAGGLEHUB_CACHE is read by kagglehub at call time
        previous = os.environ.get("KAGGLEHUB_CACHE")
        os.environ["KAGGLEHUB_CACHE"] = str(cache)
        try:
            path = kagglehub.dataset_download(handle)
        except Exception as exc:
            raise DatasetError(
                f"kagglehub could not download {handle!r}: {type(exc).__name__}: {exc}. Check the handle "
                "(owner/slug as in the dataset's URL), your network, and Kaggle credentials for private data."
            ) from exc
        finally:
            if previous is None:
                os.environ.pop("KAGGLEHUB_CACHE", None)
            else:
                os.environ["KAGGLEHUB_CACHE"] = previous
    return Path(path)
