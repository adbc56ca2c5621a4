"""Autotune: real timings of real DataLoaders, the choice, the cache and the progress bar."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import Dataset, get_worker_info  # noqa: E402

from portarun.autotune import cache_path, candidates  # noqa: E402
from portarun.errors import LoaderError  # noqa: E402
from portarun.testing import simulate  # noqa: E402


class Busy(Dataset):  # type: ignore[type-arg]
    """A small CPU-bound dataset: a fixed loop per item, then a tensor equal to the index."""

    def __init__(self, n: int = 400, fail_in_workers: bool = False) -> None:
        self.n, self.fail_in_workers = n, fail_in_workers

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if self.fail_in_workers and get_worker_info() is not None:
            raise RuntimeError("this dataset only works in the main process")
        x = 0
        for k in range(2000):
            x += k
        return torch.full((3, 8, 8), float(i))


def test_candidates_start_with_the_rule_and_respect_the_plan() -> None:
    with simulate(cpus=4, shm="64M", memory="16G") as rt:
        opts = rt.loader.plan(5 * 2**20)
        cands = candidates(opts)
        assert cands[0] == (opts.num_workers, opts.prefetch_factor, opts.transfer)
        assert (0, None, "in_process") in cands
        for w, p, t in cands:
            if t == "shared_memory":
                assert opts.shm_needed(w, p or 0, 5 * 2**20) <= (opts.shm_budget() or 0)
            assert w <= 4
        assert any(t == "pipe" for _, _, t in cands)  # 4 workers × prefetch 4 does not fit: piped


def test_candidates_time_the_pipe_for_the_rules_worker_count() -> None:
    with simulate(cpus=4, shm="8G", memory="16G") as rt:  # everything fits in shared memory
        opts = rt.loader.plan(2**20)
        cands = candidates(opts)
        assert opts.num_workers == 4 and opts.transfer == "shared_memory"
        assert (4, 2, "pipe") in cands
        assert [c for c in cands if c[2] == "pipe"] == [(4, 2, "pipe")]
    with simulate(cpus=1, shm="8G", memory="16G") as rt:  # no workers by rule: nothing to pipe
        assert not any(t == "pipe" for _, _, t in candidates(rt.loader.plan(2**20)))


def test_autotune_measures_caches_and_reuses(capfd: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTARUN_PROGRESS", "1")
    with simulate(cpus=2, shm="1G") as rt:
        ds = Busy()
        tuned = rt.loader.autotune(ds, 8, budget_s=3)
        assert "autotuned:" in tuned.reasons["num_workers"]
        assert "portarun autotune" in capfd.readouterr().err  # the progress bar
        path = Path(cache_path(tuned) or "")
        assert path.is_file() and path.is_relative_to(Path(rt.paths.cache))
        cache = json.loads(path.read_text())
        (entry,) = cache.values()
        assert entry["key"]["batch_size"] == 8 and entry["key"]["dataset"].endswith("Busy")
        assert (tuned.num_workers, tuned.prefetch_factor, tuned.transfer) == (
            entry["num_workers"], entry["prefetch_factor"], entry["transfer"])
        rates = [m["items_per_s"] for m in entry["measured"] if "items_per_s" in m]
        assert len(rates) >= 2 and entry["items_per_s"] == max(rates)

        again = rt.loader.autotune(ds, 8, budget_s=3)  # cached: no measuring
        assert "cached in" in again.reasons["num_workers"]
        assert again.num_workers == tuned.num_workers
        rt.loader.autotune(ds, 16, budget_s=2)  # another batch size: another key
        assert len(json.loads(path.read_text())) == 2


@pytest.mark.parametrize("tampered", [{"num_workers": 10**9, "prefetch_factor": 2, "transfer": "shared_memory"},
                                      {"num_workers": "abc", "prefetch_factor": 2, "transfer": "shared_memory"},
                                      {"num_workers": 1, "prefetch_factor": -3, "transfer": "shared_memory"},
                                      {"num_workers": 1, "prefetch_factor": 2, "transfer": "teleport"}])
def test_a_tampered_cache_entry_is_not_used(tampered: dict[str, object]) -> None:
    with simulate(cpus=2, shm="1G") as rt:
        ds = Busy()
        tuned = rt.loader.autotune(ds, 8, budget_s=2)
        path = Path(cache_path(tuned) or "")
        cache = json.loads(path.read_text())
        (key,) = cache
        cache[key].update(tampered)
        path.write_text(json.dumps(cache))
        again = rt.loader.autotune(ds, 8, budget_s=2)
        assert again.reasons["num_workers"].startswith("autotuned:")  # measured again, not "autotuned <date>"
        assert (again.num_workers, again.prefetch_factor, again.transfer) in candidates(again)


def test_a_fifo_at_the_cache_path_does_not_block() -> None:
    with simulate(cpus=2, shm="1G") as rt:
        ds = Busy()
        path = Path(cache_path(rt.loader) or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        done: list[object] = []
        worker = threading.Thread(target=lambda: done.append(rt.loader.autotune(ds, 8, budget_s=1)), daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert done, "autotune blocked on a FIFO at its cache path"


def test_dataloader_autotune_uses_the_tuned_settings() -> None:
    with simulate(cpus=2, shm="1G") as rt:
        loader = rt.dataloader(Busy(n=200), batch_size=8, autotune=True)
        assert "autotuned" in loader.portarun.reasons["num_workers"]
        assert loader.num_workers == loader.portarun.num_workers
        assert sum(len(b) for b in loader) == 200


def test_failing_candidates_are_not_chosen() -> None:
    with simulate(cpus=2, shm="1G") as rt:
        tuned = rt.loader.autotune(Busy(n=200, fail_in_workers=True), 8, budget_s=3)
        assert tuned.num_workers == 0 and tuned.transfer == "in_process"
        entry = next(iter(json.loads(Path(cache_path(tuned) or "").read_text()).values()))
        assert any("only works in the main process" in m.get("error", "") for m in entry["measured"])


def test_bad_arguments() -> None:
    with simulate(cpus=2) as rt:
        with pytest.raises(LoaderError, match="budget_s"):
            rt.loader.autotune(Busy(), 8, budget_s=0)
        with pytest.raises(LoaderError, match="batch_size"):
            rt.loader.autotune(Busy(), 0)
        with pytest.raises(LoaderError, match="too few"):
            rt.loader.autotune(Busy(n=3), 8, budget_s=1)
