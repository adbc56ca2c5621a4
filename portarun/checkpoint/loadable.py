"""Refusing, at ``save()``, a state that ``torch.load(weights_only=True)`` would refuse later.

``load`` and ``resume`` read checkpoints with ``weights_only=True``: torch's restricted
unpickler, which rebuilds tensors, containers and plain values and refuses any other class
unless ``torch.serialization.add_safe_globals`` allowed it. A state holding such an object
(a config class, a ``pathlib.Path``, a numpy array) would be written without complaint and
then never load. :func:`check_loadable` pickles the state's skeleton the way ``torch.save``
does (protocol 2), with every plain tensor and storage set aside under a persistent id so no
tensor data is copied, and reads it back with torch's own restricted unpickler: the verdict is
torch's, not an imitation of its rules. Cost: one pickle and one pure-Python unpickle of the
state's structure (milliseconds for thousands of tensors; no tensor bytes).
"""
from __future__ import annotations

import io
import pickle
from typing import Any

from ..errors import CheckpointError


def check_loadable(state: Any) -> None:
    """Raise :class:`~portarun.errors.CheckpointError` naming the first part of ``state``
    that ``torch.load(weights_only=True)`` would refuse (or that cannot be pickled at all),
    what it is, and how to make it loadable. Returns quietly when the whole state loads."""
    reason = _refusal(state)
    if reason is None:
        return
    try:
        path, culprit, why = _culprit(state, "state", reason)
    except RecursionError:  # nested deeper than pickle (and this search) can go: the whole state is it
        path, culprit, why = "state", state, reason
    kind = type(culprit)
    what = f"save() refused the state: {path} is a {kind.__module__}.{kind.__qualname__}"
    plain = ("Store tensors and plain values instead (numbers, strings, lists, dicts; torch.from_numpy(array), "
             "dataclasses.asdict(obj))")
    if why.startswith(_UNPICKLABLE):
        raise CheckpointError(f"{what}, which {why}, so torch.save cannot write it. {plain}.")
    raise CheckpointError(
        f"{what}, which torch.load(weights_only=True) refuses ({why}); load() and resume() could never read "
        f"this checkpoint back. {plain}; or, if that global is harmless, allow it with "
        "torch.serialization.add_safe_globals([...]) both where you save and where you resume; or "
        "save(..., weights_only=False) to write it anyway, then readable only by load(..., weights_only=False) "
        "or resume(..., weights_only=False), which run code from the file: only for files you trust.")


_UNPICKLABLE = "cannot be pickled"


def _culprit(obj: Any, path: str, reason: str) -> tuple[str, Any, str]:
    """The deepest refused part of ``obj`` (a refused container whose children all load is
    itself the culprit): its path, the object and torch's reason."""
    children: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in obj.items()]
        children += [(f"a key of {path}", k) for k in obj]
    elif isinstance(obj, (list, tuple)):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    for child_path, child in children:
        child_reason = _refusal(child)
        if child_reason is not None:
            return _culprit(child, child_path, child_reason)
    return path, obj, reason


def _refusal(obj: Any) -> str | None:
    """Why the restricted unpickler refuses ``obj``'s skeleton, or ``None`` if it loads."""
    import torch
    from torch import _weights_only_unpickler

    plain = (torch.Tensor, torch.nn.Parameter)
    # Tensors and storages travel beside the pickle, as torch.save's do; reading back hands the
    # same objects to torch's rebuild functions (a tensor subclass is rebuilt on them, no copy).
    aside: list[Any] = []

    class Skeleton(pickle.Pickler):
        def persistent_id(self, item: Any) -> Any:
            if type(item) in plain or isinstance(item, (torch.UntypedStorage, torch.storage.TypedStorage)):
                aside.append(item)
                return ("storage", len(aside) - 1)
            return None

    buffer = io.BytesIO()
    try:
        Skeleton(buffer, protocol=2).dump(obj)
    except Exception as exc:  # a lock, a lambda, an open file: torch.save itself would fail
        return f"{_UNPICKLABLE}: {type(exc).__name__}: {exc}"
    buffer.seek(0)
    unpickler = _weights_only_unpickler.Unpickler(buffer, encoding="utf-8")
    unpickler.persistent_load = lambda pid: aside[pid[1]]  # type: ignore[method-assign]
    try:
        unpickler.load()  # type: ignore[no-untyped-call]
    except Exception as exc:
        # torch's first sentence names the refused global; the rest is advice check_loadable gives.
        text = str(exc).strip().split(". Please use")[0].rstrip(".")
        return text or type(exc).__name__
    return None
