"""Point the caches of Hugging Face, torch and kagglehub at ``rt.paths.cache``: ``rt.configure_caches()``.

Variables (and when each library reads it):

* ``HF_HOME`` → ``<cache>/huggingface``: read once, when ``huggingface_hub`` is imported
  (``huggingface_hub/constants.py``; transformers and datasets import it).
* ``HF_DATASETS_CACHE`` → ``<cache>/huggingface/datasets``: read when ``datasets`` is imported
  (``datasets/config.py``); set only when ``HF_HOME`` was not yours, since it defaults to
  ``$HF_HOME/datasets``.
* ``TORCH_HOME`` → ``<cache>/torch``: read by ``torch.hub.get_dir()`` at each call
  (``torch/hub.py`` ``_get_torch_home``), so torch being imported already does not matter.
* ``KAGGLEHUB_CACHE`` → ``<cache>/kagglehub``: read at each download (kagglehub
  ``config.py`` ``get_cache_folder``).

A variable you already set is never changed. When a library that reads its variable at import
is already imported, the new value comes too late for it: a
:class:`~portarun.errors.PortarunWarning` says so and what to do.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import IntegrationError, warn
from ..paths import is_remote

if TYPE_CHECKING:
    from ..runtime import Runtime


@dataclass(frozen=True)
class CacheVariable:
    """A cache variable: its folder under ``rt.paths.cache``, the modules that read it at import
    (too late to set it after them), and a variable that, when set by the user, makes this one
    follow it (so it is left alone)."""

    name: str
    folder: str
    read_at_import_by: tuple[str, ...] = ()
    follows: str | None = None


VARIABLES = (
    CacheVariable("HF_HOME", "huggingface", ("huggingface_hub",)),
    CacheVariable("HF_DATASETS_CACHE", "huggingface/datasets", ("datasets",), follows="HF_HOME"),
    CacheVariable("TORCH_HOME", "torch"),
    CacheVariable("KAGGLEHUB_CACHE", "kagglehub"),
)


def configure_caches(rt: Runtime) -> dict[str, str]:
    """Set each cache variable of :data:`VARIABLES` that is unset in ``os.environ`` to its
    folder under ``rt.paths.cache`` (created), and return every variable's value now. A folder
    that cannot be created raises :class:`~portarun.errors.IntegrationError` before any variable
    is set. Warns, setting nothing, when ``rt.paths.cache`` is a bucket URL (the libraries need
    a local folder), and warns for each variable set after a library that reads it was imported."""
    cache = rt.paths.cache
    if is_remote(cache):
        warn(f"rt.paths.cache is {cache}, a URL; Hugging Face, torch and kagglehub need a local cache "
                      "folder, so no cache variable was set. Point PORTARUN_CACHE_DIR at a local folder.")
        return {v.name: os.environ[v.name] for v in VARIABLES if v.name in os.environ}
    user_set = {v.name for v in VARIABLES if os.environ.get(v.name)}
    chosen = [(variable, Path(cache) / variable.folder) for variable in VARIABLES
              if variable.name not in user_set and (variable.follows is None or variable.follows not in user_set)]
    for variable, folder in chosen:  # every folder first: a failure leaves the environment as it was
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IntegrationError(f"cannot create the cache folder {folder} for {variable.name} "
                                   f"({exc.strerror or type(exc).__name__}); no cache variable was set. Remove what "
                                   "is in the way, or point PORTARUN_CACHE_DIR at a writable folder.") from None
    for variable, folder in chosen:
        os.environ[variable.name] = str(folder)
        late = [m for m in variable.read_at_import_by if m in sys.modules]
        if late:
            warn(f"{variable.name} was set to {folder}, but {', '.join(late)} is already imported and read "
                          "the old value: call rt.configure_caches() before importing it (restart the kernel "
                          "in a notebook).")
    return {v.name: os.environ[v.name] for v in VARIABLES if v.name in os.environ}
