"""Accelerator inventory: real-format /proc/driver/nvidia trees, a sysfs PCI tree for TPUs,
CUDA_VISIBLE_DEVICES and SLURM renumbering, nvidia-smi output, NVML through a stand-in."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from portarun._machine.accelerators import (
    inventory,
    parse_information,
    parse_nvidia_smi,
    read_gpus,
    read_proc_gpus,
    read_tpu,
)
from portarun._machine.catalog import GIB
from portarun.probe import Probe
from portarun.testing import simulate

FIXTURES = Path(__file__).parent / "fixtures" / "nvidia"
T4_A = "GPU-415fe7a8-f784-6e3d-a958-92ecffacafe2"
T4_B = "GPU-9c1e4a27-0b3d-55f2-8e61-d2a7f03b4c19"


def probe_at(root: Path, **env: str) -> Probe:
    return Probe(env=env, root=root)


def test_information_keeps_colons_in_values() -> None:
    text = (FIXTURES / "v100/proc/driver/nvidia/gpus/0000:00:1e.0/information").read_text()
    info = parse_information(text)
    assert info["Bus Location"] == "0000:00:1e.0"
    assert info["Model"] == "Tesla V100-SXM2-16GB"
    assert info["GPU UUID"] == "GPU-8eaaebb8-bb64-8489-fda2-62256e821983"


def test_proc_gpus_fill_memory_and_capability_from_catalog() -> None:
    (gpu,) = read_proc_gpus(FIXTURES / "v100")
    assert gpu.name == "Tesla V100-SXM2-16GB"
    assert gpu.memory == 16 * GIB and gpu.compute_capability == (7, 0)
    assert gpu.source.endswith("0000:00:1e.0")


def test_two_t4s_in_minor_order() -> None:
    gpus = read_gpus(probe_at(FIXTURES / "t4x2"))
    assert [g.uuid for g in gpus] == [T4_A, T4_B]
    assert [g.index for g in gpus] == [0, 1]
    assert all(g.compute_capability == (7, 5) for g in gpus)


@pytest.mark.parametrize(("visible", "uuids"), [
    ("1", [T4_B]),
    ("1,0", [T4_B, T4_A]),
    ("", []),
    ("0,7,1", [T4_A]),             # CUDA stops at the first index naming no device
    ("GPU-9c1e4a27", [T4_B]),      # a unique UUID prefix
    ("0,0", [T4_A]),               # a repeated device ends the list too
    ("MIG-4b2e9d1c-3f5a", [T4_A, T4_B]),  # MIG ids cannot be mapped without NVML: keep all
])
def test_cuda_visible_devices(visible: str, uuids: list[str]) -> None:
    gpus = read_gpus(probe_at(FIXTURES / "t4x2", CUDA_VISIBLE_DEVICES=visible))
    assert [g.uuid for g in gpus] == uuids
    assert [g.index for g in gpus] == list(range(len(uuids)))


@pytest.mark.parametrize("visible", ["0", "1"])
def test_slurm_job_gpu_with_and_without_device_cgroup(visible: str) -> None:
    # With device cgroups SLURM renumbers the job's GPU 1 as 0; without them it passes 1 through.
    gpus = read_gpus(probe_at(FIXTURES / "t4x2", SLURM_JOB_GPUS="1", CUDA_VISIBLE_DEVICES=visible))
    assert [g.uuid for g in gpus] == [T4_B]


def test_no_driver_means_no_gpus(tmp_path: Path) -> None:
    assert read_gpus(probe_at(tmp_path)) == ()


def test_nvidia_smi_rows_with_and_without_compute_cap() -> None:
    new = parse_nvidia_smi("0, Tesla T4, GPU-aa, 15360, 7.5\n1, NVIDIA A100-SXM4-80GB, GPU-bb, 81920, 8.0\n")
    assert [(g.name, g.memory, g.compute_capability) for g in new] == [
        ("Tesla T4", 15360 * 1024**2, (7, 5)), ("NVIDIA A100-SXM4-80GB", 81920 * 1024**2, (8, 0))]
    old = parse_nvidia_smi("0, Tesla P100-PCIE-16GB, GPU-cc, 16280\n")  # 470 driver: no compute_cap
    assert old[0].compute_capability == (6, 0) and old[0].source == "nvidia-smi"


def test_nvml_names_as_bytes_and_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def record(name: str, value: object = None) -> object:
        def fn(*args: object) -> object:
            calls.append(name)
            return value(*args) if callable(value) else value
        return fn

    nvml.NVMLError = NVMLError  # type: ignore[attr-defined]
    nvml.nvmlInit = record("init")  # type: ignore[attr-defined]
    nvml.nvmlShutdown = record("shutdown")  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = record("count", 2)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByIndex = record("handle", lambda i: i)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetName = record("name", lambda h: [b"Tesla T4", b"NVIDIA L4"][h])  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUUID = record("uuid", lambda h: f"GPU-{h}")  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMemoryInfo = record(  # type: ignore[attr-defined]
        "mem", lambda h: types.SimpleNamespace(total=[15 * GIB, 22 * GIB][h]))
    nvml.nvmlDeviceGetCudaComputeCapability = record("cc", lambda h: [(7, 5), (8, 9)][h])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    gpus = read_gpus(Probe(env={"CUDA_VISIBLE_DEVICES": "1"}))
    assert [(g.index, g.name, g.memory, g.compute_capability, g.source) for g in gpus] == [
        (0, "NVIDIA L4", 22 * GIB, (8, 9), "nvml")]
    assert calls[0] == "init" and calls[-1] == "shutdown"


def make_pci(root: Path, devices: list[tuple[str, str]]) -> Path:
    for i, (vendor, device) in enumerate(devices):
        d = root / "sys/bus/pci/devices" / f"0000:00:{i + 4:02x}.0"
        d.mkdir(parents=True)
        (d / "vendor").write_text(vendor + "\n")
        (d / "device").write_text(device + "\n")
    return root


def test_tpu_pci_scan_counts_google_chips(tmp_path: Path) -> None:
    root = make_pci(tmp_path, [("0x1ae0", "0x0063")] * 4 + [("0x8086", "0x0063"), ("0x1ae0", "0x1234")])
    tpu = read_tpu(probe_at(root, TPU_ACCELERATOR_TYPE="v5litepod-4"))
    assert tpu is not None and (tpu.chips, tpu.generation, tpu.accelerator_type) == (4, "v5e", "v5litepod-4")


def test_kaggle_hard_coded_v3_8_is_not_believed(tmp_path: Path) -> None:
    root = make_pci(tmp_path, [("0x1ae0", "0x006f")] * 8)
    tpu = read_tpu(probe_at(root, TPU_ACCELERATOR_TYPE="v3-8", ISTPUVM="1"))
    assert tpu is not None and (tpu.chips, tpu.generation, tpu.accelerator_type) == (8, "v6e", None)


def test_shared_v2_v3_id_uses_the_declared_generation(tmp_path: Path) -> None:
    root = make_pci(tmp_path, [("0x1ae0", "0x0027")] * 4)
    assert read_tpu(probe_at(root, TPU_ACCELERATOR_TYPE="v2-8")).generation == "v2"  # type: ignore[union-attr]
    assert read_tpu(probe_at(root)).generation == "v3"  # type: ignore[union-attr]


def test_no_pci_tree_means_no_tpu(tmp_path: Path) -> None:
    assert read_tpu(probe_at(tmp_path, TPU_ACCELERATOR_TYPE="v3-8", COLAB_TPU_ADDR="10.0.0.2:8470")) is None


@pytest.mark.parametrize(("platform", "mps"), [(("Darwin", "arm64"), True), (("Darwin", "x86_64"), False),
                                               (("Linux", "aarch64"), False)])
def test_mps_needs_apple_silicon(platform: tuple[str, str], mps: bool) -> None:
    with simulate(platform=platform) as rt:
        assert inventory(rt.probe).mps is mps


def test_inventory_of_a_simulation_and_hints() -> None:
    with simulate(gpus=["Tesla T4"] * 2, cpus=4, env={"CUDA_VISIBLE_DEVICES": "0,1"}) as rt:
        inv = inventory(rt.probe)
    assert [g.name for g in inv.gpus] == ["Tesla T4", "Tesla T4"]
    assert inv.tpu is None and inv.cpus == 4
    assert inv.hints == ("CUDA_VISIBLE_DEVICES=0,1",)
