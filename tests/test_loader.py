"""rt.loader and rt.dataloader: real DataLoaders over a real dataset with the chosen settings."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, Dataset, IterableDataset  # noqa: E402

import portarun  # noqa: E402
from portarun import Detection, PortarunWarning, Provider  # noqa: E402
from portarun.errors import LoaderError  # noqa: E402
from portarun.facts import CpuFacts  # noqa: E402
from portarun.loader import SHM_SAFETY, LoaderOptions, PipeCollate, measure_batch_bytes  # noqa: E402
from portarun.provider import HostLocations  # noqa: E402
from portarun.testing import plugin, simulate  # noqa: E402

MIB = 1024**2
TORCHRUN = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "test"}
Pair = namedtuple("Pair", "image label")


class Images(Dataset):  # type: ignore[type-arg]
    """Each item is a float32 image whose pixels all equal its index, and the index."""

    def __init__(self, n: int = 24, shape: tuple[int, ...] = (3, 8, 8)) -> None:
        self.n, self.shape = n, shape

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return torch.full(self.shape, float(i)), i


class Stream(IterableDataset):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        return iter(torch.ones(4, 10) * i for i in range(100))


def _check_all(loader: DataLoader, n: int) -> None:  # type: ignore[type-arg]
    labels = []
    for images, idx in loader:
        assert torch.equal(images[:, 0, 0, 0], idx.to(images.dtype))
        labels.extend(idx.tolist())
    assert labels == list(range(n))


# -- rule-based choice ----------------------------------------------------------------------
@pytest.mark.parametrize(("cpus", "workers"), [
    (8, 8), (CpuFacts(logical=64, affinity=64, quota=6.0), 6), (CpuFacts(logical=64, affinity=4), 4),
    (CpuFacts(logical=2, affinity=2, quota=0.5), 0), (1, 0),
])
def test_workers_follow_usable_cpus(cpus: int | CpuFacts, workers: int) -> None:
    with simulate(cpus=cpus) as rt:
        opts = rt.loader
        assert opts.num_workers == workers
        assert opts.persistent_workers is (workers > 0)
        assert opts.prefetch_factor == (2 if workers else None)
        assert opts.pin_memory is False
        assert opts.transfer == ("shared_memory" if workers else "in_process")
        assert str(opts.facts.cpus) in opts.reasons["num_workers"]


def test_workers_split_across_two_local_ranks() -> None:
    with simulate(cpus=8, env=TORCHRUN) as rt:
        assert rt.dist.local_world_size == 2
        assert rt.loader.num_workers == 4
        assert "split across 2 local ranks" in rt.loader.reasons["num_workers"]
    with simulate(cpus=2, env=TORCHRUN) as rt:  # one CPU per rank on a CPU device: in-process
        assert rt.loader.num_workers == 0
    with simulate(cpus=2, env=TORCHRUN, gpus=["Tesla T4"] * 2) as rt:  # one worker feeds each GPU
        assert rt.device.kind == "cuda"
        assert rt.loader.num_workers == 1 and rt.loader.pin_memory is True


def test_pin_memory_only_with_cuda() -> None:
    with simulate(cpus=4, gpus=["NVIDIA A100-SXM4-40GB"]) as rt:
        assert rt.loader.pin_memory is True and rt.loader.kwargs()["pin_memory"] is True
    with simulate(cpus=4) as rt:
        assert rt.loader.pin_memory is False


class _Hinted(Provider):
    """A host that publishes its CPU share, like RunPod's RUNPOD_CPU_COUNT."""

    name = "hinted-test"
    display_name = "Hinted (test)"

    @classmethod
    def detect(cls, probe: Any) -> Detection | None:
        return Detection(0.99, ("+0.99 HINTED_CPUS (test)",)) if probe.getenv("HINTED_CPUS") else None

    def locations(self, project: str) -> HostLocations:
        root = self.probe.path("/hinted")
        return HostLocations(root, root, root, root, root)

    def cpu_hint(self) -> int | None:
        return int(self.probe.getenv("HINTED_CPUS") or 0) or None


class _HintPlugin:
    @portarun.hookimpl
    def portarun_register_providers(self, register: Any) -> None:
        register(_Hinted)


def test_provider_cpu_hint_bounds_workers() -> None:
    with plugin(_HintPlugin()), simulate(cpus=64, env={"HINTED_CPUS": "6"}, paths=["/hinted"]) as rt:
        assert rt.host.name == "hinted-test"
        assert rt.loader.num_workers == 6
        assert "host hint 6" in rt.loader.reasons["num_workers"]


def test_plugin_can_override_the_loader() -> None:
    class Fixed:
        @portarun.hookimpl
        def portarun_resolve_loader(self, runtime: Any) -> Any:
            return LoaderOptions.for_runtime(runtime).with_workers(3, 1, "shared_memory", "fixed by a plugin")

    with plugin(Fixed()), simulate(cpus=8) as rt:
        assert rt.loader.num_workers == 3 and rt.loader.reasons["num_workers"] == "fixed by a plugin"


# -- real DataLoaders -----------------------------------------------------------------------
def test_kwargs_build_a_working_dataloader() -> None:
    with simulate(cpus=2, shm="1G") as rt:
        loader = DataLoader(Images(), batch_size=4, **rt.loader.kwargs())
        assert loader.num_workers == 2 and loader.prefetch_factor == 2 and loader.persistent_workers
        _check_all(loader, 24)
        _check_all(loader, 24)  # a second epoch with the same persistent workers


def test_dataloader_measures_a_real_batch_and_plans() -> None:
    with simulate(cpus=2, shm="1G") as rt:
        loader = rt.dataloader(Images(), batch_size=4)
        assert loader.portarun.batch_bytes == 4 * 3 * 8 * 8 * 4 + 4 * 8
        assert loader.portarun.transfer == "shared_memory"
        assert "fits in" in loader.portarun.reasons["num_workers"]
        _check_all(loader, 24)


def test_measure_batch_bytes_scales_short_datasets_and_reads_iterables() -> None:
    assert measure_batch_bytes(Images(n=2), 8) == 8 * (3 * 8 * 8 * 4 + 8)
    assert measure_batch_bytes(Stream(), 5) == 5 * 4 * 10 * 4
    with pytest.raises(LoaderError, match="empty"):
        measure_batch_bytes(Images(n=0), 4)


def test_plan_lowers_prefetch_then_workers() -> None:
    with simulate(cpus=4, shm="64M", memory="16G") as rt:
        budget = int(64 * MIB * SHM_SAFETY)
        assert rt.loader.plan(4 * MIB).num_workers == 4  # (4×2+2)×4 = 40 MiB fits
        lowered = rt.loader.plan(8 * MIB)  # (4×2+2)×8 = 80 > 48: prefetch 1 gives (4+2)×8 = 48
        assert (lowered.num_workers, lowered.prefetch_factor) == (4, 1)
        fewer = rt.loader.plan(10 * MIB)  # prefetch 1: 60 > 48; 3 workers 50 > 48; 2 workers 40
        assert (fewer.num_workers, fewer.prefetch_factor, fewer.transfer) == (2, 1, "shared_memory")
        assert "lowered from 4 workers" in fewer.reasons["num_workers"]
        for opts in (lowered, fewer):
            assert opts.shm_needed(opts.num_workers, opts.prefetch_factor or 0, opts.batch_bytes or 0) <= budget


def test_plan_shares_shm_between_local_ranks() -> None:
    with simulate(cpus=8, shm="64M", memory="16G", env=TORCHRUN) as rt:
        opts = rt.loader.plan(4 * MIB)  # 24 MiB per rank: (w×p+2)×4 ≤ 24 → 4 workers × prefetch 1
        assert (opts.num_workers, opts.prefetch_factor) == (4, 1)
        assert "/ 2 local ranks" in opts.reasons["num_workers"]


def test_plan_falls_back_to_in_process_with_a_warning() -> None:
    with simulate(cpus=4, shm="64M", memory="16G") as rt:
        with pytest.warns(PortarunWarning, match="loading in-process"):
            solo = rt.loader.plan(77 * MIB)
        assert solo.transfer == "in_process" and solo.kwargs() == {"num_workers": 0, "pin_memory": False}
        assert "autotune=True times the pipe too" in solo.reasons["num_workers"]
    with pytest.raises(LoaderError, match="positive"):
        rt.loader.plan(0)


def test_plan_without_dev_shm_keeps_defaults() -> None:
    with simulate(cpus=4, platform=("Darwin", "arm64")) as rt:
        assert rt.loader.facts.shm_free is None and rt.loader.facts.start_method == "spawn"
        opts = rt.loader.plan(100 * MIB)
        assert (opts.num_workers, opts.transfer) == (4, "shared_memory")
        assert "no /dev/shm size known" in opts.reasons["num_workers"]


def test_pipe_transfer_returns_the_same_batches() -> None:
    class Mixed(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> Any:
            return {"x": Pair(torch.full((2, 3), float(i), dtype=torch.bfloat16), i),
                    "np": torch.arange(3).numpy() + i, "name": f"item{i}", "flag": torch.tensor(i % 2 == 0)}

    plain = list(DataLoader(Mixed(), batch_size=4))
    piped = list(DataLoader(Mixed(), batch_size=4, num_workers=2, collate_fn=PipeCollate()))
    assert len(plain) == len(piped) == 3
    for a, b in zip(plain, piped):
        assert isinstance(b["x"], Pair)
        assert b["x"].image.dtype == torch.bfloat16 and torch.equal(a["x"].image, b["x"].image)
        assert torch.equal(a["x"].label, b["x"].label) and torch.equal(a["np"], b["np"])
        assert a["name"] == b["name"] and torch.equal(a["flag"], b["flag"])


def test_pipe_collate_wraps_a_user_collate() -> None:
    def as_sum(samples: list[Any]) -> Any:
        return torch.stack([s[0] for s in samples]).sum(0)

    out = list(DataLoader(Images(n=8), batch_size=4, num_workers=2, collate_fn=PipeCollate(as_sum)))
    assert [float(t[0, 0, 0]) for t in out] == [6.0, 22.0]


def test_dataloader_with_in_process_fallback_iterates_everything() -> None:
    with simulate(cpus=2, shm="1M", memory="16G") as rt:
        with pytest.warns(PortarunWarning, match="in-process"):
            loader = rt.dataloader(Images(n=20, shape=(3, 96, 96)), batch_size=5)
        assert loader.portarun.transfer == "in_process" and loader.num_workers == 0
        _check_all(loader, 20)


def test_pipe_transfer_options_build_a_pipe_loader() -> None:
    with simulate(cpus=2, shm="1M", memory="16G") as rt:
        piped = rt.loader.with_workers(2, 2, "pipe", "chosen by autotune")
        with pytest.warns(PortarunWarning, match="in-process"):  # the plan's own choice, overridden
            loader = rt.dataloader(Images(n=20, shape=(3, 96, 96)), batch_size=5, **piped.kwargs())
        assert isinstance(loader.collate_fn, PipeCollate) and loader.num_workers == 2
        _check_all(loader, 20)


# -- overrides ------------------------------------------------------------------------------
def test_user_overrides_win_and_are_recorded() -> None:
    with simulate(cpus=2, shm="1G") as rt:
        loader = rt.dataloader(Images(), batch_size=4, num_workers=1, shuffle=False, drop_last=True)
        assert loader.num_workers == 1 and loader.drop_last
        assert "set by you; portarun chose 2" in loader.portarun.overridden["num_workers"]
        worker_lines = [line for line in loader.portarun.explain().splitlines() if "num_workers" in line]
        # one line per setting, the value that won first: the user's, with portarun's choice as a note
        assert len(worker_lines) == 1 and worker_lines[0].split()[1] == "(yours)"
        labels = [i for _, idx in loader for i in idx.tolist()]
        assert labels == list(range(24))


def test_worker_only_override_without_workers_is_reported() -> None:
    with simulate(cpus=1) as rt:
        with pytest.warns(PortarunWarning, match="prefetch_factor ignored because portarun chose num_workers=0"):
            loader = rt.dataloader(Images(), batch_size=4, prefetch_factor=4)
        assert loader.num_workers == 0 and "dropped" in loader.portarun.overridden["prefetch_factor"]
        _check_all(loader, 24)


def test_unsafe_override_is_warned() -> None:
    with simulate(cpus=2, shm="64M", memory="16G") as rt:
        with pytest.warns(PortarunWarning, match="No space left on device"):
            rt.dataloader(Images(), batch_size=4, batch_bytes=12 * MIB, num_workers=2, prefetch_factor=2)


def test_user_collate_fn_is_kept_and_measured() -> None:
    def first_only(samples: list[Any]) -> Any:
        return torch.stack([s[0] for s in samples])

    with simulate(cpus=2, shm="1G") as rt:
        loader = rt.dataloader(Images(), batch_size=4, collate_fn=first_only)
        assert loader.collate_fn is first_only and loader.portarun.batch_bytes == 4 * 3 * 8 * 8 * 4
        assert [b.shape[0] for b in loader] == [4] * 6


# -- reporting ------------------------------------------------------------------------------
def test_explain_and_info_report_every_setting() -> None:
    with simulate(cpus=4, shm="64M") as rt:
        text = rt.loader.explain()
        for key in ("num_workers", "prefetch_factor", "persistent_workers", "pin_memory",
                    "multiprocessing_context", "transfer", "4 usable CPUs"):
            assert key in text
        from portarun._cli import report

        data = report.build(rt)
        assert data["loader"]["num_workers"] == 4
        assert data["loader"]["reasons"]["num_workers"] == rt.loader.reasons["num_workers"]
        assert "LOADER" in report.render(data)


def test_loader_settings_do_not_import_torch(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys, portarun
        rt = portarun.detect()
        rt.loader.explain(); rt.loader.kwargs()
        bad = [m for m in ("torch", "numpy", "IPython") if m in sys.modules]
        assert not bad, bad
    """)
    env = {**os.environ, "PORTARUN_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_real_torchrun_splits_workers_between_two_ranks(tmp_path: Path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(textwrap.dedent("""
        import json, sys, portarun
        rt = portarun.detect()
        # one write per line: with unbuffered stdout (PYTHONUNBUFFERED), print() writes the text
        # and the newline separately, and the two ranks' lines can interleave
        sys.stdout.write(json.dumps({"rank": rt.dist.rank, "local": rt.dist.local_world_size,
                                     "cpus": rt.loader.facts.cpus, "workers": rt.loader.num_workers}) + "\\n")
    """))
    env = {**os.environ, "PORTARUN_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    for var in TORCHRUN:
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           "--master_port=0", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    for r in rows:
        assert r["local"] == 2
        per_rank = r["cpus"] // 2
        assert r["workers"] == (per_rank if per_rank >= 2 else 0)
