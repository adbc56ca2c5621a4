"""DataLoader settings fitted to the real machine: ``rt.loader`` and ``rt.dataloader(...)``.

Rules (each choice keeps its reason, shown by :meth:`LoaderOptions.explain`):

- **Workers**: the usable CPUs (the smallest of ``os.cpu_count()``, affinity, the cgroup quota
  and the host's published count) split across the local ranks of a distributed run. With one
  CPU per rank there is nothing to overlap on a CPU device: load in-process (0 workers); with
  an accelerator one worker overlaps loading with its work.
- ``pin_memory`` only with CUDA; ``persistent_workers`` whenever there are workers;
  ``prefetch_factor`` 2 (PyTorch's default) until the shared-memory plan lowers it.
- ``multiprocessing_context``: left to the platform's default (``fork`` on Linux before Python
  3.14, else ``spawn``/``forkserver``, which need an importable dataset), reported in the facts.
- **Shared memory plan** (:meth:`LoaderOptions.plan`): DataLoader workers build each batch in
  ``/dev/shm`` and keep up to ``workers × prefetch`` of them there, and the main process holds
  up to two more; measured with torch 2.13 on a 64 MiB ``/dev/shm`` behind a slow training
  step (docs/data-loading.md), 2 workers × prefetch 2 of 11.5 MiB batches (6 × 11.5 = 69 MiB at
  the peak) fail with "No space left on device". The plan keeps
  ``(workers × prefetch + 2) × batch`` within :data:`SHM_SAFETY` of the free space (shared by
  the local ranks) by lowering prefetch, then workers; where one worker cannot fit it loads
  in-process and says so with a :class:`~portarun.errors.PortarunWarning`. Sending batches
  through the worker pipe (:class:`PipeCollate`) also avoids /dev/shm, but measured slower than
  in-process loading for 73.5 MiB batches on 2 CPUs (0.45x to 0.92x in three runs,
  benchmarks/README.md), so only autotune chooses it, where it measures faster.
"""
from __future__ import annotations

import multiprocessing
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ._machine.sysinfo import default_start_method
from ._util.units import format_size
from .errors import LoaderError, warn

if TYPE_CHECKING:
    from .runtime import Runtime


Transfer = Literal["shared_memory", "pipe", "in_process"]

#: Fraction of the free ``/dev/shm`` the plan may fill; the rest absorbs other users of /dev/shm
#: and allocator slack (crashes were intermittent near the limit, measured in benchmarks/bench_loader.py).
SHM_SAFETY = 0.75
#: Batches in ``/dev/shm`` beyond ``workers × prefetch``: the one the training loop holds and the
#: one just received (measured peak, see the module docstring).
SHM_EXTRA_BATCHES = 2
#: Fraction of available RAM that batches in flight may take (they live in RAM on every path).
MEMORY_SAFETY = 0.5


@dataclass(frozen=True)
class LoaderFacts:
    """What the settings were decided from: usable CPUs (and what bounded them), local ranks,
    the device kind, the start method, free ``/dev/shm`` and available RAM, and a key naming
    this kind of machine for the autotune cache."""

    cpus: int
    cpu_limits: str
    local_world_size: int
    device_kind: str
    start_method: str
    in_kernel: bool
    shm_free: int | None
    memory_available: int
    machine_key: str
    cache: str | None


@dataclass(frozen=True)
class LoaderOptions:
    """DataLoader settings with the reason for each (``reasons``: setting → why).

    ``transfer`` says how batches reach the main process: ``shared_memory`` (PyTorch's way),
    ``pipe`` (pickled through the worker's pipe by :class:`PipeCollate`, never in /dev/shm) or
    ``in_process`` (no workers). ``batch_bytes`` is the batch size the plan was made for.
    """

    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: int | None
    multiprocessing_context: str | None
    facts: LoaderFacts
    reasons: Mapping[str, str]
    transfer: Transfer = "shared_memory"
    batch_bytes: int | None = None
    overridden: Mapping[str, str] = field(default_factory=dict)

    # -- building -------------------------------------------------------------------------
    @classmethod
    def for_runtime(cls, rt: Runtime) -> LoaderOptions:
        """The settings for a runtime before any batch is seen (what ``rt.loader`` returns)."""
        probe, cpu = rt.probe, rt.cpu
        cpus = cpu.usable
        limits = (f"os.cpu_count {cpu.logical}, affinity {cpu.affinity}, cgroup quota "
                  f"{'none' if cpu.quota is None else f'{cpu.quota:g}'}, host hint "
                  f"{'none' if not cpu.hint else cpu.hint}")
        local = max(1, rt.dist.local_world_size)
        kind = rt.device.kind
        if probe.simulated:
            method = default_start_method(probe.platform.system, sys.version_info[:2])
        else:
            method = multiprocessing.get_start_method(allow_none=True) or default_start_method(
                probe.platform.system, sys.version_info[:2])
        shm, mem = probe.shm, probe.memory
        machine_key = "|".join(str(x) for x in (
            rt.host.name, f"cpus={cpus}/{cpu.logical}", f"local={local}", f"device={kind}x{rt.device.count}",
            f"shm={shm.total}", f"start={method}", probe.platform.system, probe.platform.machine))
        facts = LoaderFacts(cpus=cpus, cpu_limits=limits, local_world_size=local, device_kind=kind,
                            start_method=method, in_kernel=probe.in_kernel, shm_free=shm.free,
                            memory_available=mem.available, machine_key=machine_key,
                            cache=str(rt.paths.cache))
        per_rank = cpus // local
        split = f"{cpus} usable CPUs (min of {limits})" + (f" split across {local} local ranks" if local > 1 else "")
        if per_rank >= 2:
            workers, why = per_rank, f"{split}: one worker per CPU; the main process mostly waits on them"
        elif per_rank == 1 and kind != "cpu":
            workers, why = 1, f"{split}: one worker overlaps loading with the {kind} device's work"
        else:
            workers, why = 0, (f"{split}: {per_rank} CPU per rank on a CPU device, "
                               "so workers would only add transfer costs")
        context_why = (f"platform default {method!r}" + ("" if method == "fork" else
                       "; the dataset and collate_fn must be importable (not defined in a notebook)"))
        reasons = {
            "num_workers": why,
            "pin_memory": "CUDA device: page-locked batches copy faster" if kind == "cuda"
            else f"{kind} device: pinning only helps CUDA",
            "persistent_workers": "keep workers between epochs (no restart cost)" if workers else "no workers",
            "prefetch_factor": "PyTorch's default of 2 batches per worker" if workers else "no workers",
            "multiprocessing_context": context_why if workers else "no workers",
            "transfer": "shared memory (PyTorch's default); no batch measured yet to plan /dev/shm" if workers
            else "in-process: no workers",
        }
        return cls(num_workers=workers, pin_memory=kind == "cuda", persistent_workers=workers > 0,
                   prefetch_factor=2 if workers else None, multiprocessing_context=None, facts=facts,
                   reasons=reasons, transfer="shared_memory" if workers else "in_process")

    def with_workers(self, num_workers: int, prefetch_factor: int | None, transfer: Transfer,
                     reason: str) -> LoaderOptions:
        """A copy with other worker settings, all for ``reason`` (used by the plan and autotune)."""
        if num_workers == 0:
            prefetch_factor, transfer = None, "in_process"
        reasons = dict(self.reasons)
        for key in ("num_workers", "prefetch_factor", "transfer"):
            reasons[key] = reason
        reasons["persistent_workers"] = reasons["persistent_workers"] if num_workers else "no workers"
        return replace(self, num_workers=num_workers, prefetch_factor=prefetch_factor, transfer=transfer,
                       persistent_workers=num_workers > 0,
                       multiprocessing_context=self.multiprocessing_context if num_workers else None,
                       reasons=reasons)

    # -- the shared-memory plan -------------------------------------------------------------
    def shm_budget(self) -> int | None:
        """Bytes of ``/dev/shm`` this rank's batches may use, or ``None`` where unknown."""
        free = self.facts.shm_free
        return None if free is None else int(free * SHM_SAFETY / self.facts.local_world_size)

    def shm_needed(self, num_workers: int, prefetch_factor: int, batch_bytes: int) -> int:
        """Peak ``/dev/shm`` bytes of a loader with these settings (see the module docstring)."""
        return (num_workers * prefetch_factor + SHM_EXTRA_BATCHES) * batch_bytes

    def plan(self, batch_bytes: int) -> LoaderOptions:
        """These settings made safe for batches of ``batch_bytes``: prefetch, then workers lowered
        until the batches in flight fit in the free ``/dev/shm`` and RAM; where even one worker
        cannot fit, loading is in-process, announced with a
        :class:`~portarun.errors.PortarunWarning`."""
        if isinstance(batch_bytes, bool) or not isinstance(batch_bytes, int) or batch_bytes <= 0:
            raise LoaderError(f"batch_bytes must be a positive number of bytes, not {batch_bytes!r}.")
        planned = replace(self, batch_bytes=batch_bytes)
        if self.num_workers == 0 or self.prefetch_factor is None:
            return planned
        batch = format_size(batch_bytes)
        ram = int(self.facts.memory_available * MEMORY_SAFETY / self.facts.local_world_size)
        budget = self.shm_budget()
        if budget is None:
            return planned.with_workers(self.num_workers, self.prefetch_factor, "shared_memory",
                                        f"no /dev/shm size known here; PyTorch's defaults for {batch} batches")
        w, p = self.num_workers, self.prefetch_factor
        limit = min(budget, ram)
        while self.shm_needed(w, p, batch_bytes) > limit and p > 1:
            p -= 1
        while self.shm_needed(w, p, batch_bytes) > limit and w > 1:
            w -= 1
        need = self.shm_needed(w, p, batch_bytes)
        where = (f"{int(SHM_SAFETY * 100)}% of free /dev/shm {format_size(self.facts.shm_free)}"
                 + (f" / {self.facts.local_world_size} local ranks" if self.facts.local_world_size > 1 else ""))
        if need <= limit:
            changed = (w, p) != (self.num_workers, self.prefetch_factor)
            reason = (f"{batch} batches × ({w} workers × prefetch {p} + {SHM_EXTRA_BATCHES}) = {format_size(need)} "
                      f"fits in {where}" + (f" (lowered from {self.num_workers} workers × prefetch "
                                            f"{self.prefetch_factor})" if changed else ""))
            if ram < budget:
                reason += f" and in half the available RAM ({format_size(self.facts.memory_available)})"
            return planned.with_workers(w, p, "shared_memory", reason)
        one = self.shm_needed(1, 1, batch_bytes)
        reason = (f"{batch} batches: even 1 worker × prefetch 1 needs {format_size(one)} of /dev/shm, more than "
                  f"{where}; loading in-process (measured faster than sending such batches through the "
                  "worker pipe; autotune=True times the pipe too)")
        warn(f"portarun DataLoader: {reason}. Smaller batches, or a larger /dev/shm (docker run "
                      "--shm-size=8g), restore shared-memory loading.")
        return planned.with_workers(0, None, "in_process", reason)

    # -- output ---------------------------------------------------------------------------
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``torch.utils.data.DataLoader(dataset, batch_size, **kwargs)``:
        only those valid together (PyTorch rejects ``prefetch_factor`` and
        ``multiprocessing_context`` without workers); pipe transfer adds a ``collate_fn``."""
        out: dict[str, Any] = {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
        if self.num_workers > 0:
            out["persistent_workers"] = self.persistent_workers
            out["prefetch_factor"] = self.prefetch_factor
            if self.multiprocessing_context is not None:
                out["multiprocessing_context"] = self.multiprocessing_context
            if self.transfer == "pipe":
                out["collate_fn"] = PipeCollate()
        return out

    def as_dict(self) -> dict[str, Any]:
        """Settings, facts and reasons as JSON-able values (the ``loader`` report section)."""
        return {
            "num_workers": self.num_workers, "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers, "prefetch_factor": self.prefetch_factor,
            "multiprocessing_context": self.multiprocessing_context, "transfer": self.transfer,
            "batch_bytes": self.batch_bytes,
            "facts": {"cpus": self.facts.cpus, "cpu_limits": self.facts.cpu_limits,
                      "local_world_size": self.facts.local_world_size, "device_kind": self.facts.device_kind,
                      "start_method": self.facts.start_method, "shm_free_bytes": self.facts.shm_free,
                      "memory_available_bytes": self.facts.memory_available},
            "reasons": dict(self.reasons),
            "overridden": dict(self.overridden),
        }

    def explain(self) -> str:
        """Each setting, its value and why, as text (also in ``portarun info``)."""
        values = {"num_workers": self.num_workers, "prefetch_factor": self.prefetch_factor,
                  "persistent_workers": self.persistent_workers, "pin_memory": self.pin_memory,
                  "multiprocessing_context": self.multiprocessing_context, "transfer": self.transfer}
        lines = ["DataLoader settings (yours where you passed them, else portarun's):"]
        previous = ""
        for key, value in values.items():
            if key in self.overridden:  # the value that won comes first, portarun's choice in its note
                lines.append(f"  {key:<24} {'(yours)':<14} {self.overridden[key]}")
                continue
            reason = self.reasons.get(key, "")
            lines.append(f"  {key:<24} {value!s:<14} {'(same reason)' if reason == previous else reason}")
            previous = reason
        for key, note in self.overridden.items():
            if key not in values:
                lines.append(f"  {key:<24} {'(yours)':<14} {note}")
        f = self.facts
        lines.append(f"  facts: {f.cpus} usable CPUs ({f.cpu_limits}); {f.local_world_size} local rank(s); "
                     f"device {f.device_kind}; start method {f.start_method}; /dev/shm free "
                     f"{format_size(f.shm_free)}; RAM available {format_size(f.memory_available)}"
                     + (f"; batch {format_size(self.batch_bytes)}" if self.batch_bytes else ""))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """These settings as a table in Jupyter (:func:`portarun.display.loader_html`)."""
        from .display import loader_html

        return loader_html(self)

    # -- autotune -------------------------------------------------------------------------
    def autotune(self, dataset: Any, batch_size: int, budget_s: float = 10.0, *,
                 collate_fn: Callable[[list[Any]], Any] | None = None, refresh: bool = False) -> LoaderOptions:
        """Time a few safe settings on the real ``dataset`` within ``budget_s`` seconds and return
        the fastest, cached under ``rt.paths.cache`` by machine, dataset signature and batch
        size (``refresh=True`` measures again). See :mod:`portarun.autotune`."""
        from .autotune import autotune

        return autotune(self, dataset, batch_size, budget_s, collate_fn=collate_fn, refresh=refresh)


# -- pipe transfer --------------------------------------------------------------------------
def _tensor_from_pipe(data: Any, dtype: str, shape: tuple[int, ...]) -> Any:
    """Rebuild a tensor in the receiving process from its bytes (plain memory, no /dev/shm)."""
    import torch

    return torch.from_numpy(data).view(getattr(torch, dtype)).reshape(shape)


class _PipedTensor:
    """A tensor that pickles as its bytes (a NumPy array), so a worker's queue sends it through
    the pipe instead of moving its storage to /dev/shm; unpickling gives the tensor back."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __reduce__(self) -> tuple[Any, ...]:
        t = self.tensor.detach().contiguous()
        data = t.reshape(-1).view(__import__("torch").uint8).numpy()
        return (_tensor_from_pipe, (data, str(t.dtype).removeprefix("torch."), tuple(t.shape)))


def _stack(batch: Sequence[Any], *, collate_fn_map: Any = None) -> Any:
    import torch

    return torch.stack(list(batch), 0)


def _pipe_tree(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return _PipedTensor(obj)
    if isinstance(obj, Mapping):
        return {k: _pipe_tree(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_pipe_tree(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_pipe_tree(v) for v in obj)
    return obj


class PipeCollate:
    """A ``collate_fn`` for pipe transfer: collates samples (with ``collate_fn``, default: PyTorch's
    default collation without its /dev/shm allocation in workers) and wraps every tensor of the
    batch so it crosses the worker pipe as bytes; the main process receives ordinary tensors.
    Picklable, so it works with every start method. A ``collate_fn`` of yours that calls
    ``default_collate`` inside a worker still builds that batch in /dev/shm."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None = None) -> None:
        self.collate_fn = collate_fn

    def __call__(self, samples: list[Any]) -> Any:
        if self.collate_fn is not None:
            return _pipe_tree(self.collate_fn(samples))
        import torch
        from torch.utils.data._utils.collate import collate, default_collate_fn_map

        return _pipe_tree(collate(samples, collate_fn_map={**default_collate_fn_map, torch.Tensor: _stack}))

    def __repr__(self) -> str:
        return f"PipeCollate({self.collate_fn!r})"


# -- measuring a batch ----------------------------------------------------------------------
def nbytes(obj: Any) -> int:
    """Bytes of the tensors, arrays and byte strings in a (nested) batch."""
    if isinstance(obj, _PipedTensor):
        return nbytes(obj.tensor)
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):
        return int(obj.element_size() * obj.nelement())
    if hasattr(obj, "nbytes") and not isinstance(obj, type):
        return int(obj.nbytes)
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    if isinstance(obj, Mapping):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0


def signature(obj: Any) -> Any:
    """The structure of a batch (types, shapes, dtypes) as JSON-able values."""
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return [type(obj).__name__, list(obj.shape), str(obj.dtype)]
    if isinstance(obj, Mapping):
        return {str(k): signature(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [signature(v) for v in obj]
    return type(obj).__name__


def sample_batch(dataset: Any, batch_size: int,
                 collate_fn: Callable[[list[Any]], Any] | None = None) -> tuple[Any, int]:
    """One real batch of the first ``batch_size`` samples, collated in this process, and the
    number of samples in it (fewer where the dataset is shorter)."""
    from torch.utils.data import IterableDataset, default_collate

    if isinstance(dataset, IterableDataset):
        samples: list[Any] = []
        for item in dataset:
            samples.append(item)
            if len(samples) == batch_size:
                break
    else:
        samples = [dataset[i] for i in range(min(batch_size, len(dataset)))]
    if not samples:
        raise LoaderError("the dataset is empty: there is no batch to measure. Check the dataset, or pass "
                          "batch_bytes= to plan for a known batch size.")
    batch = (collate_fn or default_collate)(samples)
    return batch, len(samples)


def measure_batch_bytes(dataset: Any, batch_size: int, collate_fn: Callable[[list[Any]], Any] | None = None) -> int:
    """Bytes of one real batch, scaled to ``batch_size`` when the dataset is shorter. An error
    raised by the dataset or the collate function is the user's to see, as it is, with a note
    saying that portarun was reading one batch to plan the loader."""
    try:
        batch, n = sample_batch(dataset, batch_size, collate_fn)
    except LoaderError:
        raise
    except Exception as exc:
        add_note = getattr(exc, "add_note", None)  # Python 3.11+; older ones show the error as it is
        if add_note is not None:
            add_note(f"portarun raised this while reading one batch of {batch_size} samples from the dataset to "
                     "plan the DataLoader's workers and shared memory; the loader itself would meet it too. "
                     "Pass batch_bytes= to plan without reading a batch.")
        raise
    return max(1, nbytes(batch) * batch_size // n)


# -- rt.dataloader --------------------------------------------------------------------------
_WORKER_ONLY = ("prefetch_factor", "persistent_workers", "multiprocessing_context", "timeout")


def build_dataloader(rt: Runtime, dataset: Any, batch_size: int | None = 1, *, autotune: bool = False,
                     batch_bytes: int | None = None, stateful: bool | None = None, **overrides: Any) -> Any:
    """A ``torch.utils.data.DataLoader`` with ``rt.loader``'s settings planned for one real batch
    (or ``batch_bytes``), autotuned if asked; ``overrides`` (any DataLoader argument) always win,
    and one that differs from portarun's choice is recorded in ``loader.portarun.explain()``.
    A worker-only argument (``timeout`` too) that cannot apply with 0 workers, or an override that does not fit
    the shared-memory plan, is reported with a :class:`~portarun.errors.PortarunWarning`.

    ``stateful`` (default: whenever torchdata is installed) builds torchdata's
    ``StatefulDataLoader`` instead, whose ``state_dict()`` holds its place in the epoch, the
    shuffling generator and, through :class:`WorkerRNG`, each worker's random states, so
    ``training_state(..., loader=loader)`` and ``resume(..., loader=loader)`` continue it exactly;
    ``stateful=True`` without torchdata raises :class:`~portarun.errors.LoaderError`."""
    from torch.utils.data import DataLoader

    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        # Checked here: the batch measured below would call 0 "an empty dataset" and 2.5 a TypeError.
        raise LoaderError(f"batch_size must be a positive integer, or None for a loader that yields samples one "
                          f"by one; got {batch_size!r}.")
    loader_class = _stateful_class(stateful)
    user_collate = overrides.get("collate_fn")
    options = rt.loader
    if batch_size is not None:
        if batch_bytes is None:
            batch_bytes = measure_batch_bytes(dataset, batch_size, user_collate)
        options = options.plan(batch_bytes)
        if autotune:
            options = options.autotune(dataset, batch_size, collate_fn=user_collate)
    ours = options.kwargs()
    final = {**ours, **overrides}
    notes: dict[str, str] = {}
    for key, value in overrides.items():
        if key in ours and key != "collate_fn" and ours[key] != value:
            notes[key] = f"{value!r} set by you; portarun chose {ours[key]!r}: {options.reasons.get(key, '')}"
    workers = final.get("num_workers", 0)
    if workers == 0:
        dropped = [k for k in _WORKER_ONLY if k in overrides and overrides[k] not in (None, False)]
        if dropped:
            why = ("you set num_workers=0" if "num_workers" in overrides
                   else f"portarun chose num_workers=0 ({options.reasons['num_workers']})")
            warn(f"portarun DataLoader: {', '.join(dropped)} ignored because {why}; pass num_workers "
                 "too to load with workers.")
            notes.update({key: f"{overrides[key]!r} set by you, dropped: {why}" for key in dropped})
        for key in _WORKER_ONLY:
            final.pop(key, None)
        if isinstance(final.get("collate_fn"), PipeCollate) and user_collate is None:
            final.pop("collate_fn")
    elif options.transfer == "pipe":
        final["collate_fn"] = PipeCollate(user_collate)
    prefetch = final.get("prefetch_factor") or 2
    budget = options.shm_budget()
    if (workers and options.transfer == "shared_memory" and batch_bytes and budget is not None
            and ("num_workers" in overrides or "prefetch_factor" in overrides)
            and options.shm_needed(workers, prefetch, batch_bytes) > budget):
        warn(f"portarun DataLoader: your num_workers={workers}, prefetch_factor={prefetch} keep about "
             f"{format_size(options.shm_needed(workers, prefetch, batch_bytes))} of batches in /dev/shm, "
             f"more than the safe {format_size(budget)}; expect 'No space left on device' or 'Bus error'. "
             "Leave them to portarun to stay within /dev/shm.")
    if loader_class is not None:
        if workers and not _is_iterable(dataset):
            dataset = WorkerRNG(dataset)
        if final.get("generator") is None:
            import torch

            # Drawn from the global RNG once, here, so seeding it still decides the order.
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            final["generator"] = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():
        # torchdata 0.11's StatefulDataLoader.__init__ calls torch.set_vital, which torch 2.13
        # deprecates with a UserWarning at every loader built: noise about torchdata, not the user's code.
        warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)
        loader = (loader_class or DataLoader)(dataset, batch_size=batch_size, **final)
    loader.portarun = replace(options, overridden=notes)
    return loader


# -- a loader's place in the data -----------------------------------------------------------
def _stateful_class(stateful: bool | None) -> Any:
    """torchdata's ``StatefulDataLoader`` when asked for (or, with ``None``, when installed)."""
    if stateful is False:
        return None
    try:
        from torchdata.stateful_dataloader import StatefulDataLoader
    except ImportError:
        if stateful:
            raise LoaderError("stateful=True needs torchdata's StatefulDataLoader, which is not installed: "
                              "pip install 'portarun[resume]' (or torchdata), or pass stateful=False.") from None
        return None
    return _resumable(StatefulDataLoader)


_RESUMABLE: list[Any] = []


def _resumable(base: Any) -> Any:
    """``StatefulDataLoader`` that also keeps its ``generator`` where it was.

    Every ``iter()`` draws the workers' base seed from the loader's generator (torch's global
    RNG when it has none), including the ``iter()`` that continues a restored epoch, whose seed
    torchdata then replaces with the saved one: that stray draw would move the generator (or
    the training loop's own RNG) off the uninterrupted run's course. So ``rt.dataloader`` gives
    every stateful loader a generator of its own, and this class saves its state and puts it
    back after the iterators that a restore creates have drawn from it. (Sources, torch 2.13 and
    torchdata 0.11.0: pytorch/pytorch ``torch/utils/data/dataloader.py``,
    ``_BaseDataLoaderIter.__init__`` draws ``_base_seed`` with ``random_(generator=loader.generator)``;
    pytorch/data ``torchdata/stateful_dataloader/stateful_dataloader.py``,
    ``_StatefulMultiProcessingDataLoaderIter.__init__`` then sets it from the snapshot.)"""
    if _RESUMABLE:
        return _RESUMABLE[0]

    class ResumableDataLoader(base):  # type: ignore[misc]
        _portarun_generator: Any = None

        def _get_iterator(self) -> Any:
            iterator = super()._get_iterator()
            if self._portarun_generator is not None and self.generator is not None:
                # After the restoring iterator's stray draws; an epoch that had ended then
                # starts in the next iterator, which draws from the saved state.
                self.generator.set_state(self._portarun_generator)
            self._portarun_generator = None
            return iterator

        def state_dict(self) -> dict[str, Any]:
            state = dict(super().state_dict())
            if self.generator is not None:
                state["portarun_generator"] = self.generator.get_state()
            return state

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            state = dict(state_dict)
            saved = state.pop("portarun_generator", None)
            super().load_state_dict(state)
            if saved is not None and self.generator is not None:
                self.generator.set_state(saved)
                self._portarun_generator = saved

    ResumableDataLoader.__module__ = __name__
    _RESUMABLE.append(ResumableDataLoader)
    return ResumableDataLoader


def _is_iterable(dataset: Any) -> bool:
    from torch.utils.data import IterableDataset

    return isinstance(dataset, IterableDataset)


class WorkerRNG:
    """A map-style dataset as it is, plus the random states of the DataLoader worker that reads it.

    A worker seeds Python's ``random``, torch and numpy once, when it starts, and every random
    augmentation then moves those generators on. torchdata's ``StatefulDataLoader`` asks each
    worker's dataset for ``state_dict()`` along with every batch and gives it back through
    ``load_state_dict`` when a restored loader starts its workers, so storing the generators
    here makes a resumed worker draw what the interrupted one would have drawn next. In the main
    process (no workers) it stores nothing: those generators belong to the training loop, and
    ``training_state`` saves them itself. A dataset that has its own ``state_dict`` keeps it.
    Other attributes are the wrapped dataset's (``loader.dataset.dataset`` is the dataset itself).
    (Source, torchdata 0.11.0: pytorch/data ``torchdata/stateful_dataloader/worker.py``,
    ``_make_state_dict`` serialises a map-style dataset that has ``state_dict``/``load_state_dict``
    with each batch, and ``_worker_loop`` restores it after seeding the restarted worker.)
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet while unpickling in a worker: no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def state_dict(self) -> dict[str, Any]:
        """The worker's random states (and the dataset's own state); ``{}`` outside a worker."""
        from torch.utils.data import get_worker_info

        from .checkpoint.training import rng_state

        if get_worker_info() is None:
            return {}
        state: dict[str, Any] = {"rng": rng_state()}
        if callable(getattr(self.dataset, "state_dict", None)):
            state["dataset"] = self.dataset.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`state_dict` stored, in a worker only."""
        from torch.utils.data import get_worker_info

        from .checkpoint.training import set_rng_state

        if get_worker_info() is None or not state:
            return
        set_rng_state(state["rng"])
        if "dataset" in state and callable(getattr(self.dataset, "load_state_dict", None)):
            self.dataset.load_state_dict(state["dataset"])

    def __repr__(self) -> str:
        return f"WorkerRNG({self.dataset!r})"


def _stateful(obj: Any) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))


def _from_torchdata(sampler: Any) -> bool:
    """torchdata's own samplers, whose iterators carry the state (``StatefulDataLoader`` puts
    them in for ``shuffle=True`` and ``batch_size``)."""
    return type(sampler).__module__.startswith("torchdata.")


def inexact_parts(loader: Any) -> list[str]:
    """What keeps ``loader``'s saved state from continuing it exactly, each part named; empty
    when nothing does. Reads only."""
    from torch.utils.data import BatchSampler, SequentialSampler
    from torch.utils.data.distributed import DistributedSampler

    if not _stateful(loader):
        return [f"{type(loader).__name__} {loader!r} keeps no position in its data (a plain torch DataLoader "
                "restarts its epoch); build it with rt.dataloader(...) with torchdata installed "
                "(pip install 'portarun[resume]')"]
    problems: list[str] = []
    dataset = getattr(loader, "dataset", None)
    # Orders that are a function of their settings (and of set_epoch) are re-created and fast-forwarded.
    ordered = (SequentialSampler, DistributedSampler)
    if _is_iterable(dataset):
        if not _stateful(dataset):
            problems.append(f"the IterableDataset {dataset!r} has no state_dict()/load_state_dict(), so a "
                            "resumed loader restarts it (give it both, or use a map-style dataset)")
    else:
        sampler = getattr(loader, "sampler", None)
        if (sampler is not None and not _stateful(sampler) and not isinstance(sampler, ordered)
                and not _from_torchdata(sampler)):
            problems.append(f"the sampler {sampler!r} has no state_dict()/load_state_dict(): its order after "
                            "a resume is whatever it draws then (give it both, or use shuffle=True with a generator)")
        batch_sampler = getattr(loader, "batch_sampler", None)
        if (batch_sampler is not None and type(batch_sampler) is not BatchSampler and not _stateful(batch_sampler)
                and not _from_torchdata(batch_sampler)):
            problems.append(f"the batch sampler {batch_sampler!r} has no state_dict()/load_state_dict()")
        if getattr(loader, "num_workers", 0) and not isinstance(dataset, WorkerRNG) and not _stateful(dataset):
            problems.append(f"the workers' random states of {dataset!r} are not saved (build the loader with "
                            "rt.dataloader(...), which wraps the dataset in portarun.loader.WorkerRNG)")
    return problems


def loader_state(loader: Any) -> dict[str, Any] | None:
    """``loader.state_dict()`` for a checkpoint, or ``None`` when it has none. The first time a
    loader cannot be continued exactly (:func:`inexact_parts`), one
    :class:`~portarun.errors.PortarunWarning` names what and why."""
    if not getattr(loader, "_portarun_checked", False):
        problems = inexact_parts(loader)
        if problems:
            warn("portarun cannot resume this DataLoader exactly: " + "; ".join(problems) + ".")
        try:
            loader._portarun_checked = True
        except AttributeError:  # a loader with __slots__: warned again next time, nothing worse
            pass
    # Iterated through rt.wrap_loader on TPU, the loader has been read ahead of the training
    # loop: the state of the last batch the loop received is the one to continue from.
    delivered = getattr(loader, "_portarun_delivered_state", None)
    if delivered is not None:
        return dict(delivered)
    return dict(loader.state_dict()) if _stateful(loader) else None


def loader_section(rt: Runtime) -> dict[str, Any]:
    """The ``loader`` section of ``portarun info``: settings, facts and the reason for each."""
    return rt.loader.as_dict()
