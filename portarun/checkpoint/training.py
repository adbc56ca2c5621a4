"""The training state ``resume`` understands: model, optimizer, scheduler, scaler and RNGs.

:func:`training_state` builds ``{"model": ..., "optimizer": ..., "scheduler": ..., "scaler":
..., "rng": ..., "extra": ...}`` from live objects (absent ones are left out); :func:`restore`
puts such a state back. RNG states are stored as tensors and plain values so the checkpoint
loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import random
import sys
from typing import Any


def rng_state() -> dict[str, Any]:
    """Python's, numpy's (if numpy is imported) and torch's CPU and CUDA RNG states."""
    import torch

    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        kind, keys, pos, has_gauss, cached = numpy.random.get_state()
        state["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (parts missing on either side are skipped)."""
    import torch

    if "python" in state:
        py = state["python"]
        random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if "numpy" in state:
        import numpy

        np_state = state["numpy"]
        numpy.random.set_state((np_state["kind"], np_state["keys"].numpy().astype("uint32"), np_state["pos"],
                                np_state["has_gauss"], np_state["cached_gaussian"]))


def training_state(model: Any = None, optimizer: Any = None, scheduler: Any = None, scaler: Any = None,
                   *, extra: dict[str, Any] | None = None, rng: bool = True) -> dict[str, Any]:
    """The state of a training run, as :meth:`Checkpointer.resume` restores it. ``extra``
    holds anything else (epoch, best score, data-loader position) as tensors and plain values."""
    state: dict[str, Any] = {}
    for key, obj in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            state[key] = obj.state_dict()
    if rng:
        state["rng"] = rng_state()
    if extra:
        state["extra"] = dict(extra)
    return state


def restore(state: dict[str, Any], model: Any = None, optimizer: Any = None, scheduler: Any = None,
            scaler: Any = None, *, strict: bool = True, rng: bool = True) -> None:
    """Load each part of a :func:`training_state` into the given objects."""
    if model is not None and "model" in state:
        model.load_state_dict(state["model"], strict=strict)
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None and key in state:
            obj.load_state_dict(state[key])
    if rng and "rng" in state:
        set_rng_state(state["rng"])
