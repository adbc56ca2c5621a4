"""Opt-in measured DataLoader autotuning: ``rt.dataloader(ds, batch_size, autotune=True)`` or
``rt.loader.autotune(ds, batch_size, budget_s=10)``.

A few candidate settings (worker counts around the usable CPUs, prefetch 2 and 4, each with the
transfer the shared-memory plan allows, and the rule's worker count with the pipe) are timed on
the real dataset within the budget, the fastest that ran without error wins, and the answer is
cached in ``<rt.paths.cache>/portarun/loader-autotune.json`` keyed by the kind of machine (host,
CPUs, local ranks, device, /dev/shm size, start method), the dataset's signature (class, length,
batch structure, collate function) and the batch size, so the next run starts tuned. A cached
shared-memory answer that no longer fits the free /dev/shm is measured again.

Each candidate is timed in steady state: its first ``workers × prefetch + 1`` batches (worker
start and the initial prefetch; at most a third of the dataset) are not counted.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import fsspec  # type: ignore[import-untyped,unused-ignore]

from ._util.files import read_small_text, write_text_atomic
from ._util.progress import bar
from .errors import LoaderError
from .loader import LoaderOptions, PipeCollate, Transfer, sample_batch, signature
from .paths import is_remote, join

if TYPE_CHECKING:
    Candidate = tuple[int, int | None, Transfer]

#: Where the cache lives under ``rt.paths.cache``.
CACHE_FILE = ("portarun", "loader-autotune.json")


def candidates(options: LoaderOptions) -> list[Candidate]:
    """Settings worth timing, the rule-based choice first: worker counts 0, 1, half, all but
    one and all of this rank's CPUs, each with prefetch 2 and 4, transfer as the plan allows;
    and the rule's worker count with the pipe transfer, which can beat shared memory for small
    batches (each shared-memory batch costs a new segment and a file descriptor handed over)."""
    cpus = max(1, options.facts.cpus // options.facts.local_world_size)
    counts = sorted({0, 1, cpus // 2, cpus - 1, cpus, options.num_workers} - {-1})
    first: Candidate = (options.num_workers, options.prefetch_factor, options.transfer)
    out: list[Candidate] = [first]
    budget, batch = options.shm_budget(), options.batch_bytes
    for workers in counts:
        for prefetch in ((None,) if workers == 0 else (2, 4)):
            if workers == 0:
                transfer: Transfer = "in_process"
            elif budget is None or batch is None or options.shm_needed(workers, prefetch or 2, batch) <= budget:
                transfer = "shared_memory"
            elif workers >= 2:
                transfer = "pipe"
            else:
                continue
            cand: Candidate = (workers, prefetch, transfer)
            if cand not in out:
                out.append(cand)
    if options.num_workers >= 2 and (options.num_workers, 2, "pipe") not in out:
        out.append((options.num_workers, 2, "pipe"))
    return out


def _time(dataset: Any, batch_size: int, options: LoaderOptions,
          collate_fn: Callable[[list[Any]], Any] | None, window_s: float) -> float:
    """Items per second of ``options`` on ``dataset`` in steady state within about ``window_s``."""
    from torch.utils.data import DataLoader

    kwargs = options.kwargs()
    if "persistent_workers" in kwargs:
        kwargs["persistent_workers"] = False  # workers end with the timing
    if collate_fn is not None:
        kwargs["collate_fn"] = PipeCollate(collate_fn) if options.transfer == "pipe" else collate_fn
    loader = DataLoader(dataset, batch_size=batch_size, **kwargs)
    skip = options.num_workers * (options.prefetch_factor or 0) + 1
    try:
        skip = min(skip, len(loader) // 3)  # a short dataset: keep two thirds of it for timing
    except TypeError:  # an iterable dataset without a length
        pass
    iterator = iter(loader)
    try:
        started, counted, seen = time.perf_counter(), 0, 0
        for _ in iterator:
            seen += 1
            if seen <= skip:
                started = time.perf_counter()
            else:
                counted += 1
                if time.perf_counter() - started >= window_s and counted >= 2:
                    break
        if counted < 2:
            raise LoaderError(f"the dataset has {seen} batch(es) of {batch_size}, too few to time a loader; "
                              "autotune needs at least 3 batches.")
        return counted * batch_size / (time.perf_counter() - started)
    finally:
        del iterator


def cache_key(options: LoaderOptions, dataset: Any, batch_size: int,
              collate_fn: Callable[[list[Any]], Any] | None) -> tuple[str, dict[str, Any]]:
    """The cache key (a hash) and what it was made from."""
    batch, _ = sample_batch(dataset, min(batch_size, 2), collate_fn)
    try:
        length: int | None = len(dataset)
    except TypeError:
        length = None
    parts = {
        "machine": options.facts.machine_key,
        "dataset": f"{type(dataset).__module__}.{type(dataset).__qualname__}", "length": length,
        "batch": signature(batch), "batch_size": batch_size,
        "collate": None if collate_fn is None else getattr(collate_fn, "__qualname__", type(collate_fn).__qualname__),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24], parts


def cache_path(options: LoaderOptions) -> str | None:
    """Where the autotune cache lives, or ``None`` when the runtime has no cache role."""
    return None if options.facts.cache is None else str(join(options.facts.cache, *CACHE_FILE))


def _load(path: str) -> dict[str, Any]:
    """The cache, or ``{}`` when it is missing, unreadable or malformed (a local one is read
    without blocking on a planted FIFO, and at most 16 MiB of it)."""
    try:
        if is_remote(path):
            with fsspec.open(path, "r") as f:
                text: str | None = f.read()
        else:
            text = read_small_text(path, 16 << 20)
        data = json.loads(text) if text else {}
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=1, sort_keys=True)
    if is_remote(path):
        with fsspec.open(path, "w") as f:
            f.write(text)
        return
    write_text_atomic(path, text)


def _fits(options: LoaderOptions, transfer: str, workers: int, prefetch: int | None) -> bool:
    budget, batch = options.shm_budget(), options.batch_bytes
    if transfer != "shared_memory" or budget is None or batch is None:
        return True
    return options.shm_needed(workers, prefetch or 2, batch) <= budget


def autotune(options: LoaderOptions, dataset: Any, batch_size: int, budget_s: float = 10.0, *,
             collate_fn: Callable[[list[Any]], Any] | None = None, refresh: bool = False) -> LoaderOptions:
    """The fastest safe settings for ``dataset`` and ``batch_size`` (see the module docstring).
    Raises :class:`~portarun.errors.LoaderError` for a non-positive budget or batch size, and
    re-raises the rule-based setting's error if every candidate fails."""
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not 0 < budget_s < math.inf:
        raise LoaderError(f"budget_s must be a positive, finite number of seconds, not {budget_s!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise LoaderError(f"autotune needs a positive integer batch_size, not {batch_size!r}.")
    if options.batch_bytes is None:
        from .loader import measure_batch_bytes

        options = options.plan(measure_batch_bytes(dataset, batch_size, collate_fn))
    key, parts = cache_key(options, dataset, batch_size, collate_fn)
    path = cache_path(options)
    cache = _load(path) if path else {}
    hit = cache.get(key)
    # A cached answer is used only if it is one of the settings autotune would time here now:
    # an entry edited by hand or by another machine cannot start 10**9 workers.
    if (not refresh and isinstance(hit, dict)
            and (hit.get("num_workers"), hit.get("prefetch_factor"), hit.get("transfer")) in candidates(options)
            and _fits(options, hit["transfer"], hit["num_workers"], hit["prefetch_factor"])):
        return options.with_workers(
            int(hit["num_workers"]), hit.get("prefetch_factor"), hit["transfer"],
            f"autotuned {hit.get('at', '?')}: {hit.get('items_per_s', 0):.0f} items/s, fastest of "
            f"{len(hit.get('measured', []))} settings (cached in {path})")
    cands = candidates(options)
    window = max(0.2, budget_s / len(cands) / 2)  # about half of each slice is worker start-up
    measured: list[dict[str, Any]] = []
    first_error: BaseException | None = None
    t0 = time.perf_counter()
    with bar(len(cands), "portarun autotune", unit="setting") as progress:
        for workers, prefetch, transfer in cands:
            if time.perf_counter() - t0 > budget_s and measured:
                break
            trial = options.with_workers(workers, prefetch, transfer, "autotune candidate")
            try:
                rate = _time(dataset, batch_size, trial, collate_fn, window)
            except LoaderError:
                raise
            except Exception as exc:  # a failing candidate (shared memory, a worker crash) is not chosen
                first_error = first_error or exc
                measured.append({"num_workers": workers, "prefetch_factor": prefetch, "transfer": transfer,
                                 "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"})
            else:
                measured.append({"num_workers": workers, "prefetch_factor": prefetch, "transfer": transfer,
                                 "items_per_s": rate})
                progress.set_postfix_str(f"{workers} workers, prefetch {prefetch}, {transfer}: {rate:.0f} items/s")
            progress.update(1)
    ok = [m for m in measured if "items_per_s" in m]
    if not ok:
        assert first_error is not None
        raise first_error
    best = max(ok, key=lambda m: float(m["items_per_s"]))
    elapsed = time.perf_counter() - t0
    entry = {**best, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "measured": measured,
             "key": parts}
    if path:
        cache[key] = entry
        _save(path, cache)
    base = ok[0]["items_per_s"] if (ok[0]["num_workers"], ok[0]["prefetch_factor"]) == cands[0][:2] else None
    versus = f" vs {base:.0f} for the rule-based choice" if base else ""
    return options.with_workers(
        int(best["num_workers"]), best["prefetch_factor"], best["transfer"],
        f"autotuned: {best['items_per_s']:.0f} items/s{versus}, fastest of {len(ok)} settings timed in "
        f"{elapsed:.1f}s" + (f" (cached in {path})" if path else ""))
