"""The training state ``resume`` understands: model, optimizer, scheduler, scaler and RNGs.

:func:`training_state` builds ``{"model": ..., "optimizer": ..., "scheduler": ..., "scaler":
..., "rng": ..., "extra": ..., "meta": ...}`` from live objects (absent ones are left out);
:func:`restore` puts such a state back, after :func:`mismatches` found nothing to refuse, so a
refused restore changes nothing. RNG states are stored as tensors and plain values so the
checkpoint loads with ``torch.load(weights_only=True)``. ``meta`` records the model's parameter
names and shapes and the shapes of the optimizer's parameters, group by group (an optimizer's
own state dict numbers its parameters and keeps no shapes); the checkpointer adds ``origin``
(the project and where it came from).
"""
from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError

if TYPE_CHECKING:
    from .checkpointer import CheckpointInfo

#: How many mismatching keys an error names before it says how many more there are.
_NAMED = 5


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
                   *, extra: dict[str, Any] | None = None, rng: bool = True, loader: Any = None,
                   accumulated: int = 0) -> dict[str, Any]:
    """The state of a training run, as :meth:`Checkpointer.resume` restores it. ``extra``
    holds anything else (epoch, best score) as tensors and plain values.

    ``loader``: a loader from ``rt.dataloader`` (torchdata's ``StatefulDataLoader``); its
    ``state_dict()`` (place in the epoch, shuffling generator, workers' random states) is
    stored, and a loader that cannot be continued exactly is named once in a
    :class:`~portarun.errors.PortarunWarning` (:func:`portarun.loader.inexact_parts`).
    ``accumulated``: micro-batches whose gradients are summed in the model's ``.grad`` but not
    yet applied by the optimizer; when above 0 those gradients are stored too, and
    ``resume()`` puts them back and reports the count as ``accumulated``. The run ids of
    experiment trackers (:func:`portarun.integrations.tracking.tracker_run_id`) go into
    ``extra["trackers"]``."""
    check_parts("training_state", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
    if extra is not None and not isinstance(extra, dict):
        raise CheckpointError(f"training_state(): extra must be a dict of names to tensors and plain values, got "
                              f"{type(extra).__name__}.")
    if isinstance(accumulated, bool) or not isinstance(accumulated, int) or accumulated < 0:
        raise CheckpointError(f"accumulated is the number of micro-batches whose gradients wait in .grad (0 or "
                              f"more), got {accumulated!r}.")
    state: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, obj in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None:
            state[key] = obj.state_dict()
    if loader is not None:
        from ..loader import loader_state

        saved = loader_state(loader)
        if saved is not None:
            state["loader"] = saved
            meta["loader"] = loader_shape(loader)
    if accumulated and model is not None:
        state["grads"] = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        extra = {**(extra or {}), "accumulated": int(accumulated)}
    from ..integrations.tracking import run_ids

    if run_ids():  # experiment trackers' runs, continued after a resume (portarun.integrations.tracking)
        extra = {**(extra or {}), "trackers": run_ids()}
    if model is not None:
        meta["model"] = {name: list(value.shape) for name, value in state["model"].items() if hasattr(value, "shape")}
    if optimizer is not None:
        meta["optimizer"] = _group_shapes(optimizer)
        meta["optimizer_class"] = _class_name(optimizer)
    if rng:
        state["rng"] = rng_state()
    if extra:
        state["extra"] = dict(extra)
    state["meta"] = meta
    ranks = _gather_per_rank(state)
    if ranks is not None:
        state["ranks"] = ranks
    return state


#: What differs between the ranks of a distributed run: each rank's random states, its loader's
#: place in its shard of the data and its gradients not yet all-reduced.
_PER_RANK = ("rng", "loader", "grads")


def _gather_per_rank(state: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every rank's own parts of ``state`` (:data:`_PER_RANK`), gathered from all ranks, under an
    initialized ``torch.distributed`` with several ranks; ``None`` otherwise. A collective:
    every rank builds its ``training_state`` at the same step (``maybe_save`` agrees on when)."""
    from .checkpointer import _rank_and_world

    ranks = _rank_and_world()
    if ranks is None or ranks[1] == 1:
        return None
    import torch.distributed as dist

    gathered: list[Any] = [None] * ranks[1]
    dist.all_gather_object(gathered, {key: state[key] for key in _PER_RANK if key in state})
    return gathered


def _this_rank(state: dict[str, Any], where: str) -> dict[str, Any]:
    """``state`` with this rank's own parts, when it holds every rank's; rank 0's (with a
    warning) when the number of ranks changed."""
    saved = state.get("ranks")
    if not isinstance(saved, list):
        return state
    from ..errors import warn
    from .checkpointer import _rank_and_world

    rank, world = _rank_and_world() or (0, 1)
    if world != len(saved):
        warn(f"{where} was saved by {len(saved)} ranks and is resumed by {world}: each rank gets rank 0's "
             "random states and loader position, so the run does not continue exactly as it would have.")
        return state
    return {**{k: v for k, v in state.items() if k not in _PER_RANK}, **saved[rank]}


def _group_shapes(optimizer: Any) -> list[list[list[int]]]:
    """The shape of each parameter of each of ``optimizer``'s param groups."""
    return [[list(p.shape) for p in group["params"]] for group in optimizer.param_groups]


def check_parts(call: str, **parts: Any) -> None:
    """Raise :class:`CheckpointError` for a part (``model=``, ``optimizer=``, ...) that has no
    ``state_dict`` (and, for ``resume``, no ``load_state_dict``): most often ``model.state_dict()`` passed where the
    module belongs, which would fail later with an AttributeError from inside."""
    needs = ("state_dict", "load_state_dict") if call == "resume" else ("state_dict",)
    for key, obj in parts.items():
        if obj is not None and not all(callable(getattr(obj, name, None)) for name in needs):
            hint = f" (a state dict? pass the {key} object itself)" if isinstance(obj, dict) else ""
            raise CheckpointError(f"{call}(): {key} must be an object with {' and '.join(n + '()' for n in needs)}, "
                                  f"such as a torch.nn.Module or torch.optim.Optimizer; got {type(obj).__name__}"
                                  f"{hint}.")


def _shape(value: Any) -> list[int] | None:
    return list(value.shape) if hasattr(value, "shape") else None


def mismatches(state: dict[str, Any], model: Any = None, optimizer: Any = None, *, strict: bool = True) -> list[str]:
    """What keeps ``state`` (a :func:`training_state`) from loading into ``model`` and
    ``optimizer``: keys missing from the state, keys the model lacks (both only when
    ``strict``), shapes that differ, and optimizer param groups of another number or size or
    whose parameters have other shapes. Empty when it fits. Reads only; changes nothing."""
    problems: list[str] = []
    if model is not None and isinstance(state.get("model"), dict):
        saved, live = state["model"], model.state_dict()
        missing = [k for k in live if k not in saved]
        unexpected = [k for k in saved if k not in live]
        shapes = [f"{k}: saved {_shape(saved[k])}, model {_shape(live[k])}" for k in live
                  if k in saved and _shape(saved[k]) != _shape(live[k])]
        if strict:
            problems += _named("missing from the checkpoint", missing)
            problems += _named("not in the model", unexpected)
        problems += _named("shape differs", shapes)
    saved_class = state.get("meta", {}).get("optimizer_class") if isinstance(state.get("meta"), dict) else None
    live_class = _class_name(optimizer) if optimizer is not None else None
    # Only torch's own optimizers are compared: a wrapper (accelerate's, a ZeRO one) holds the
    # same state under another class. torch loads another optimizer's state without a word, and
    # the first step() then fails inside (an SGD state in Adam: KeyError 'step').
    if (isinstance(saved_class, str) and live_class is not None and saved_class != live_class
            and saved_class.startswith("torch.optim.") and live_class.startswith("torch.optim.")):
        problems.append(f"the optimizer is another kind: saved {saved_class}, given {live_class}")
    if optimizer is not None and isinstance(state.get("optimizer"), dict):
        groups = state["optimizer"].get("param_groups", [])
        saved_sizes = [len(g.get("params", [])) for g in groups]
        live_sizes = [len(g["params"]) for g in optimizer.param_groups]
        if saved_sizes != live_sizes:
            problems.append(f"optimizer param group sizes differ: saved {saved_sizes}, optimizer {live_sizes}")
        else:
            saved_shapes = state.get("meta", {}).get("optimizer")
            if isinstance(saved_shapes, list):
                live_shapes = _group_shapes(optimizer)
                differ = [f"group {g} param {i}: saved {s}, optimizer {live_shapes[g][i]}"
                          for g, group in enumerate(saved_shapes[:len(live_shapes)])
                          for i, s in enumerate(group[:len(live_shapes[g])]) if list(s) != live_shapes[g][i]]
                problems += _named("optimizer parameter shape differs", differ)
    return problems


def loader_shape(loader: Any) -> dict[str, Any]:
    """What a loader's saved place depends on: the dataset's length, the batch size,
    ``drop_last`` and the sampler's class (``shuffle=True`` makes it a ``RandomSampler``).
    torchdata applies a saved place at the next ``iter()`` and fails there, deep inside (a
    shorter dataset: ``StopIteration``; another sampler: ``AssertionError``), or, for another
    batch size, silently skips other samples; so :func:`restore` compares these first."""
    try:
        length: int | None = len(loader.dataset)
    except Exception:  # an IterableDataset without a length
        length = None
    return {"dataset_length": length, "batch_size": getattr(loader, "batch_size", None),
            "drop_last": getattr(loader, "drop_last", None), "sampler": type(getattr(loader, "sampler", None)).__name__}


def _loader_mismatches(state: dict[str, Any], loader: Any) -> list[str]:
    meta = state.get("meta")
    saved = meta.get("loader") if isinstance(meta, dict) else None
    if loader is None or "loader" not in state or not isinstance(saved, dict):
        return []
    live = loader_shape(loader)
    differ = [f"{key} saved {saved[key]!r}, loader {live[key]!r}" for key in live
              if saved.get(key) is not None and live[key] is not None and saved[key] != live[key]]
    return _named("the DataLoader differs (build it as saved: same dataset, batch_size, drop_last and "
                  "shuffle or sampler; or resume without loader= to start its epoch afresh)", differ)


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _named(what: str, keys: list[str]) -> list[str]:
    if not keys:
        return []
    more = f" and {len(keys) - _NAMED} more" if len(keys) > _NAMED else ""
    return [f"{what}: {', '.join(keys[:_NAMED])}{more}"]


def restore(state: dict[str, Any], model: Any = None, optimizer: Any = None, scheduler: Any = None,
            scaler: Any = None, *, strict: bool = True, rng: bool = True, loader: Any = None,
            where: str = "the checkpoint") -> None:
    """Load each part of a :func:`training_state` into the given objects.

    Everything is checked first (:func:`mismatches`): when the state does not fit, raises
    :class:`~portarun.errors.CheckpointError` naming ``where`` and the first mismatching keys,
    and no object (nor the RNGs) has been touched."""
    problems = mismatches(state, model, optimizer, strict=strict) + _loader_mismatches(state, loader)
    if problems:
        origin = state.get("meta", {}).get("origin") if isinstance(state.get("meta"), dict) else None
        saved_by = f" It was saved by {_describe_origin(origin)}." if origin else ""
        raise CheckpointError(
            f"{where} does not fit the model, optimizer or loader given to resume(): {'; '.join(problems)}."
            f"{saved_by} "
            "Nothing was restored. If it belongs to another run, give this one its own project "
            "(detect(project=...) or PORTARUN_PROJECT) or checkpoints folder; if the model changed on "
            "purpose, load the state with load() and copy what still fits, or pass strict=False to "
            "skip missing and unexpected keys.")
    state = _this_rank(state, where)
    if loader is not None:  # first: a saved place that does not fit this loader must change nothing else
        _restore_loader(loader, state.get("loader"), where)
    if model is not None and "model" in state:
        model.load_state_dict(state["model"], strict=strict)
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is not None and key in state:
            obj.load_state_dict(state[key])
    if model is not None and "grads" in state:
        for name, p in model.named_parameters():
            p.grad = state["grads"][name].to(p.device) if name in state["grads"] else None
    if rng and "rng" in state:
        set_rng_state(state["rng"])


def _restore_loader(loader: Any, saved: Any, where: str) -> None:
    """Give ``loader`` its saved place; say so when it cannot take one or there is none."""
    from ..errors import warn
    from ..loader import inexact_parts

    if saved is None:
        warn(f"{where} holds no DataLoader state (it was saved without training_state(..., loader=...), or with a "
             "loader that has no place to save, such as a plain torch DataLoader): the loader starts its epoch from "
             "the beginning.")
    elif not callable(getattr(loader, "load_state_dict", None)):
        warn(f"portarun cannot resume this DataLoader exactly: {'; '.join(inexact_parts(loader))}.")
    else:
        try:
            loader.load_state_dict(saved)
            if getattr(loader, "_portarun_delivered_state", None) is not None:
                loader._portarun_delivered_state = None  # rt.wrap_loader's record of an earlier pass is stale now
        except Exception as exc:  # torchdata: StopIteration for a shorter dataset, AssertionError for another sampler
            raise CheckpointError(
                f"{where} holds a DataLoader place that does not fit the loader given to resume() "
                f"({type(exc).__name__}{': ' + str(exc) if str(exc) else ''}): build the loader as it was saved "
                "(the same dataset and length, batch size, shuffle, sampler and drop_last), or resume without "
                "loader= to start its epoch from the beginning. Nothing was restored; build this loader again, "
                "its state may be half set.") from exc


def _describe_origin(origin: Any) -> str:
    if isinstance(origin, dict):
        return ", ".join(f"{k} {v}" for k, v in origin.items() if v) or "an unknown run"
    return str(origin)


class ResumeResult(int):
    """What :meth:`Checkpointer.resume` restored. It is the step to continue from (an ``int``:
    ``range(start, n)``, ``start == 5``, ``bool(start)`` is false when it is 0), with

    * ``step``: the same number; ``epoch``: ``extra["epoch"]`` when the state has one, else ``None``;
    * ``extra``: the state's ``extra`` dict (``{}`` when none);
    * ``checkpoint``: the :class:`~portarun.checkpoint.CheckpointInfo` it came from (``name``,
      ``location``, ``saved_at``...), ``None`` when nothing was resumed; ``resumed`` says which.
    """

    step: int
    epoch: int | None
    extra: dict[str, Any]
    checkpoint: CheckpointInfo | None

    def __new__(cls, step: int = 0, *, extra: dict[str, Any] | None = None,
                checkpoint: CheckpointInfo | None = None) -> ResumeResult:
        self = super().__new__(cls, step)
        self.step = int(step)
        self.extra = dict(extra or {})
        self.epoch = _as_int(self.extra.get("epoch"))
        self.checkpoint = checkpoint
        return self

    @property
    def accumulated(self) -> int:
        """Micro-batches already accumulated into the restored ``.grad`` (``training_state(...,
        accumulated=k)``): the gradient-accumulation cycle continues with micro-batch ``k``."""
        return _as_int(self.extra.get("accumulated")) or 0

    @property
    def resumed(self) -> bool:
        """Whether a checkpoint was restored (a checkpoint of step 0 counts)."""
        return self.checkpoint is not None

    def __str__(self) -> str:
        return str(int(self))  # prints like the step, as code that treated it as one expects

    def __repr__(self) -> str:
        where = f"from {self.checkpoint.name!r}" if self.checkpoint is not None else "nothing resumed"
        return f"ResumeResult(step={int(self)}, epoch={self.epoch}, {where})"


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is one (or a one-element integer tensor), else ``None``."""
    if hasattr(value, "numel") and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
