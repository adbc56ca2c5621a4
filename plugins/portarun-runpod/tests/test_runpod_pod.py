"""RunPod pods: detected from RUNPOD_* variables, the pod's CPU share as the CPU hint, and
never fooled by images that merely use /workspace or /content as their WORKDIR."""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime
from portarun.testing import preset, simulate
from portarun_runpod.pod import PodResources, RunPodProvider


def confidence(rt: Runtime) -> float:
    return next(v.confidence for v in rt.verdicts if v.provider == "runpod")


def test_pod_is_detected_with_workspace_volume_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate("runpod", root=root, project="sdxl", cpus=128) as rt:
        assert rt.host.name == "runpod"
        assert rt.host.confidence >= 0.8
        assert (rt.host.plugin, rt.host.version) == ("runpod", version("portarun-runpod"))
        workspace = root / "workspace"
        assert rt.paths.persist == workspace / "portarun/sdxl"
        assert rt.paths.checkpoints == workspace / "portarun/sdxl/checkpoints"
        assert rt.paths.output == workspace / "portarun/sdxl/outputs"
        assert rt.paths.cache == workspace / ".cache"
        assert rt.paths.scratch == root / "tmp/portarun-scratch"
        for role, value in rt.paths.as_dict().items():
            assert Path(value).is_relative_to(root), (role, value)
        assert rt.session.limit is None
        provider = rt.provider
        assert isinstance(provider, RunPodProvider)
        assert rt.probe.cpu.logical == 128  # what nproc shows inside a pod: the whole host
        assert provider.cpu_hint() == 6
        assert provider.resources() == PodResources(cpus=6, memory_gb=23.0, gpus=1)
        assert any("RUNPOD_API_KEY" in line and "not evidence" in line for line in rt.host.evidence)


def test_missing_or_malformed_resource_variables_give_no_hint() -> None:
    with simulate("runpod", env={"RUNPOD_CPU_COUNT": "six", "RUNPOD_MEM_GB": "-1", "RUNPOD_GPU_COUNT": ""}) as rt:
        provider = rt.provider
        assert isinstance(provider, RunPodProvider)
        assert provider.resources() == PodResources(cpus=None, memory_gb=None, gpus=None)
        assert provider.cpu_hint() is None


def test_pod_without_a_volume_warns_that_persist_is_lost_on_stop(tmp_path: Path) -> None:
    with pytest.warns(PortarunWarning, match="no volume at /workspace"):
        # The preset's variables without its /workspace volume.
        with simulate(env={**preset("runpod").env, "PWD": "/"}, root=tmp_path / "root") as rt:
            assert rt.host.name == "runpod"


@pytest.mark.parametrize("workdir", ["/workspace", "/content"])
def test_an_image_that_only_sets_a_workdir_is_not_a_pod(workdir: str) -> None:
    with simulate(env={"HOME": "/root", "PWD": workdir}, paths=[workdir]) as rt:
        assert rt.host.name == "local"
        assert confidence(rt) < 0.5


def test_laptop_with_a_runpod_api_key_is_not_a_pod() -> None:
    with simulate(env={"HOME": "/home/me", "RUNPOD_API_KEY": "rpa_laptopkey"}) as rt:
        assert rt.host.name == "local"
        assert confidence(rt) == 0.0


def test_listed_gpu_prices_become_cost_estimates() -> None:
    from portarun.monitor.budgets import usage_lines
    from portarun_runpod.pod import PRICE_READ, gpu_price_model

    assert [gpu_price_model(n) for n in ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL",
                                         "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "Tesla T4",
                                         "NVIDIA A100-SXM4-40GB")] == [
        "H100 SXM", "H100 PCIe", "H100 NVL", "A100 SXM 80GB", "A100 PCIe 80GB", None, None]
    with simulate("runpod", gpus=["NVIDIA H100 80GB HBM3"] * 2, env={"RUNPOD_GPU_COUNT": "2"}) as rt:
        budgets = rt.provider.budgets()
    assert [(b.amount, b.unit, b.checked) for b in budgets] == [(7.98, "USD/h", PRICE_READ),
                                                                 (5.38, "USD/h", PRICE_READ)]
    lines = usage_lines(budgets, 1800, gpus=2, tpu=False)
    assert "≈ $3.99 at the RunPod Secure Cloud list price for 2 x H100 SXM" in "\n".join(lines)
    assert all("estimate" in line for line in lines[1:])
    with simulate("runpod", gpus=["Tesla T4"]) as rt:
        assert rt.provider.budgets() == ()  # a model without a sourced price: no guess
