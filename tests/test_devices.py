"""rt.device: the decision, diagnostics, torch devices (real CPU torch), a recording stand-in
for torch_xla, and the helpers (to_device, wrap_loader, seed, memory)."""
from __future__ import annotations

import dataclasses
import importlib.abc
import json
import random
import subprocess
import sys
import types
from collections import OrderedDict, defaultdict, namedtuple
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import portarun
from portarun._cli import report
from portarun._machine.catalog import GIB
from portarun.devices import (
    DeviceInfo,
    arch_problem,
    arch_supported,
    cpu_build_problem,
    installed_torch_cuda,
)
from portarun.errors import DeviceError, PortarunWarning
from portarun.testing import plugin, simulate

# Architecture lists of PyTorch 2.8's CUDA 12.6 and 12.8 wheels (TORCH_CUDA_ARCH_LIST in
# pytorch .ci/manywheel/build_cuda.sh, as quoted in jhj0517/Whisper-WebUI#653).
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
CU128 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


class XlaRecorder:
    """A stand-in torch_xla package that records every call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, Any]] = []
        pkg = types.ModuleType("torch_xla")
        pkg.__path__ = []  # type: ignore[attr-defined]
        pkg.device = self._record("device", lambda: torch.device("xla", 0))  # type: ignore[attr-defined]
        pkg.manual_seed = self._record("manual_seed", lambda n: None)  # type: ignore[attr-defined]
        pkg.launch = self._record("launch", self._launch)  # type: ignore[attr-defined]
        runtime = types.ModuleType("torch_xla.runtime")
        for name, value in (("world_size", 8), ("global_ordinal", 3), ("local_ordinal", 3),
                            ("local_process_count", 8), ("addressable_device_count", 1)):
            setattr(runtime, name, self._record(name, lambda v=value: v))
        distributed = types.ModuleType("torch_xla.distributed")
        distributed.__path__ = []  # type: ignore[attr-defined]
        loader_mod = types.ModuleType("torch_xla.distributed.parallel_loader")
        recorder = self

        class MpDeviceLoader:
            def __init__(self, loader: Any, device: Any) -> None:
                recorder.calls.append(("MpDeviceLoader", (loader, device)))
                self.loader, self.device = loader, device

        loader_mod.MpDeviceLoader = MpDeviceLoader  # type: ignore[attr-defined]
        for name, module in (("torch_xla", pkg), ("torch_xla.runtime", runtime),
                             ("torch_xla.distributed", distributed),
                             ("torch_xla.distributed.parallel_loader", loader_mod)):
            monkeypatch.setitem(sys.modules, name, module)
        pkg.runtime = runtime  # type: ignore[attr-defined]
        pkg.distributed = distributed  # type: ignore[attr-defined]
        distributed.parallel_loader = loader_mod  # type: ignore[attr-defined]

    def _record(self, name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, (args, kwargs)))
            return fn(*args, **kwargs)
        return wrapper

    def _launch(self, fn: Any, args: tuple[Any, ...] = (), debug_single_process: bool = False) -> None:
        fn(0, *args)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class ImportSpy(importlib.abc.MetaPathFinder):
    """Records (and refuses) every attempt to import torch_xla."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] == "torch_xla":
            self.attempts.append(name)
            raise ImportError(f"{name} must not be imported here")
        return None


@pytest.fixture
def import_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImportSpy]:
    for name in [m for m in sys.modules if m.split(".")[0] == "torch_xla"]:
        monkeypatch.delitem(sys.modules, name)
    spy = ImportSpy()
    sys.meta_path.insert(0, spy)
    try:
        yield spy
    finally:
        sys.meta_path.remove(spy)


# -- the decision -------------------------------------------------------------------------------
def test_two_t4s() -> None:
    with simulate(gpus=["Tesla T4"] * 2) as rt:
        d = rt.device
    assert (d.kind, d.count, d.names) == ("cuda", 2, ("Tesla T4", "Tesla T4"))
    assert d.memory == (15 * GIB, 15 * GIB) and d.compute_capability == ((7, 5), (7, 5))
    assert (d.bf16, d.amp_dtype) == (False, "float16")
    assert d.decision[0] == "provider 'local' order: cuda, xla, mps, cpu"


def test_p100_uses_float16_and_a100_bfloat16() -> None:
    with simulate(gpus=["Tesla P100-PCIE-16GB"]) as rt:
        assert (rt.device.bf16, rt.device.amp_dtype) == (False, "float16")
    with simulate(gpus=["NVIDIA A100-SXM4-40GB"]) as rt:
        assert (rt.device.bf16, rt.device.amp_dtype, rt.device.memory) == (True, "bfloat16", (40 * GIB,))


@pytest.mark.parametrize(("spec", "count", "name", "memory"), [
    ("v3-8", 8, "TPU v3", 16 * GIB),   # 4 chips, two TensorCores each
    ("v5e-8", 8, "TPU v5e", 16 * GIB),
])
def test_tpu_hosts(spec: str, count: int, name: str, memory: int) -> None:
    with simulate(tpu=spec) as rt:
        d = rt.device
    assert ((d.kind, d.count, d.names[0], d.memory[0], d.bf16, d.amp_dtype)
            == ("xla", count, name, memory, True, "bfloat16"))


def test_apple_silicon_gets_mps_and_intel_mac_cpu() -> None:
    with simulate(platform=("Darwin", "arm64")) as rt:
        assert (rt.device.kind, rt.device.amp_dtype) == ("mps", "float16")
    with simulate(platform=("Darwin", "x86_64")) as rt:
        assert rt.device.kind == "cpu"


def test_provider_order_decides() -> None:
    # Colab's provider lists cuda, xla, cpu: an (imagined) Apple-silicon Colab still uses the CPU.
    with simulate("colab", platform=("Darwin", "arm64")) as rt:
        assert rt.device.kind == "cpu"
        assert rt.device.decision[0] == "provider 'colab' order: cuda, xla, cpu"
    with simulate(gpus=["Tesla T4"], tpu="v5e-8") as rt:
        assert rt.device.kind == "cuda"


def test_cpu_has_no_amp_unless_asked() -> None:
    with simulate(memory="30G") as rt:
        assert (rt.device.kind, rt.device.amp_dtype, rt.device.memory) == ("cpu", None, (30 * GIB,))
    with simulate(env={"PORTARUN_AMP_DTYPE": "bfloat16"}) as rt:
        assert rt.device.amp_dtype == "bfloat16"
    with simulate(env={"PORTARUN_AMP_DTYPE": "fp8"}) as rt, pytest.raises(DeviceError, match="PORTARUN_AMP_DTYPE"):
        rt.device


def test_forced_by_environment_and_by_detect() -> None:
    with simulate(gpus=["Tesla T4"], env={"PORTARUN_DEVICE": "cpu"}) as rt:
        assert rt.device.kind == "cpu" and rt.device.decision[0] == "forced by PORTARUN_DEVICE=cpu"
    with simulate(gpus=["Tesla T4"]):
        rt = portarun.detect(device="cpu")
        assert rt.device.kind == "cpu" and rt.device.decision[0] == "forced by detect(device=...)=cpu"
    with simulate(tpu="v5e-8", env={"PORTARUN_DEVICE": "tpu"}) as rt:
        assert rt.device.kind == "xla"


def test_absent_or_unknown_request_is_an_error() -> None:
    with simulate(env={"PORTARUN_DEVICE": "cuda"}) as rt, pytest.raises(DeviceError) as err:
        rt.device
    assert "'cuda' was requested by PORTARUN_DEVICE=cuda" in str(err.value) and "cpu:" in str(err.value)
    with simulate(env={"PORTARUN_DEVICE": "cuda:1"}) as rt, pytest.raises(DeviceError, match="known: auto, cpu"):
        rt.device


def test_a_plugin_can_resolve_the_device() -> None:
    class Plugin:
        @portarun.hookimpl
        def portarun_resolve_device(self, runtime: Any) -> DeviceInfo:
            return DeviceInfo("cpu", 1, ("plugin cpu",), (None,), False, None)

    with plugin(Plugin()), simulate(gpus=["Tesla T4"]) as rt:
        assert rt.device.names == ("plugin cpu",)


# -- diagnostics ---------------------------------------------------------------------------------
def test_torch_xla_on_a_gpu_machine_is_warned() -> None:
    with simulate(gpus=["Tesla T4"], modules=["torch_xla"]) as rt:
        with pytest.warns(PortarunWarning, match="torch_xla is installed on this GPU machine"):
            d = rt.device
        assert d.kind == "cuda" and "pip uninstall -y torch-xla" in d.diagnostics[0]


def test_legacy_colab_tpu_node_is_warned() -> None:
    with simulate("colab", env={"COLAB_TPU_ADDR": "10.0.0.2:8470"}) as rt:
        with pytest.warns(PortarunWarning, match="legacy Colab TPU node"):
            assert rt.device.kind == "cpu"


def test_cpu_only_torch_next_to_a_gpu_real_build() -> None:
    build = installed_torch_cuda()
    assert build == (str(torch.__version__), torch.version.cuda)  # read without importing, same answer
    with simulate(gpus=["Tesla T4"]) as rt:
        message = cpu_build_problem(rt.probe.gpus, (build[0], None))
    assert message is not None and "CPU-only build" in message and "PORTARUN_DEVICE=cpu" in message
    assert cpu_build_problem(rt.probe.gpus, ("2.8.0+cu128", "12.8")) is None


@pytest.mark.skipif(torch.version.cuda is not None, reason="needs the CPU-only torch build")
def test_cuda_device_with_cpu_only_torch_raises_with_the_fix() -> None:
    with simulate(gpus=["Tesla T4"]) as rt, pytest.raises(DeviceError, match="CPU-only build"):
        rt.device.torch()


def test_p100_with_a_build_that_lacks_sm_60() -> None:
    with simulate(gpus=["Tesla P100-PCIE-16GB"]) as rt:
        info = rt.device
    problem = arch_problem(info, CU128, "2.8.0+cu128")
    assert problem is not None and "sm_60" in problem and "whl/cu126" in problem
    assert arch_problem(info, CU126, "2.8.0+cu126") is None


@pytest.mark.parametrize(("cap", "archs", "ok"), [
    ((8, 9), ["sm_80", "sm_86"], True),      # same-major cubin runs on a newer minor
    ((6, 0), ["sm_70", "sm_75"], False),
    ((12, 0), ["sm_90", "compute_90"], True),  # PTX is JIT-compiled for newer GPUs
    ((9, 0), ["sm_90a"], True),
    ((10, 0), ["sm_90a"], False),
])
def test_arch_supported(cap: tuple[int, int], archs: list[str], ok: bool) -> None:
    assert arch_supported(cap, archs) is ok


def test_report_lists_diagnostics_without_warning() -> None:
    with simulate(gpus=["Tesla T4"], modules=["torch_xla"]) as rt:
        data = report.build(rt)
    assert data["accelerators"]["device"]["kind"] == "cuda"
    assert data["accelerators"]["gpus"][0]["compute_capability"] == "7.5"
    assert any("torch_xla is installed" in p for p in data["diagnostics"]["problems"])
    with simulate(env={"PORTARUN_DEVICE": "mps"}) as rt:
        data = report.build(rt)
    assert data["accelerators"]["device"] is None
    assert "'mps' was requested" in data["diagnostics"]["problems"][0]


# -- torch devices -------------------------------------------------------------------------------
def test_cpu_and_mps_torch_devices() -> None:
    with simulate() as rt:
        assert rt.device.torch() == torch.device("cpu")
    with simulate(platform=("Darwin", "arm64")) as rt:
        assert rt.device.torch() == torch.device("mps")


def test_tpu_calls_torch_xla_device_and_sets_pjrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    xla = XlaRecorder(monkeypatch)
    with simulate(tpu="v5e-8") as rt:
        device = rt.device.torch()
    assert device == torch.device("xla", 0)
    assert "device" in xla.names()
    import os
    assert os.environ["PJRT_DEVICE"] == "TPU"


def test_tpu_keeps_a_pjrt_device_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PJRT_DEVICE", "CPU")
    XlaRecorder(monkeypatch)
    with simulate(tpu="v5e-1") as rt:
        rt.device.torch()
    import os
    assert os.environ["PJRT_DEVICE"] == "CPU"


def test_no_tpu_chips_no_torch_xla_import(import_spy: ImportSpy) -> None:
    for kwargs in ({}, {"gpus": ["Tesla T4"]}, {"env": {"TPU_ACCELERATOR_TYPE": "v3-8"}}):
        with simulate(**kwargs) as rt:  # type: ignore[arg-type]
            rt.device
            rt.dist
            rt.wrap_loader([1, 2])
            report.build(rt)
            if rt.device.kind == "cpu":
                rt.device.torch()
                rt.to_device(torch.ones(1))
                rt.seed(1)
                rt.memory()
    assert import_spy.attempts == []


# -- helpers -------------------------------------------------------------------------------------
Pair = namedtuple("Pair", "x y")


@dataclasses.dataclass
class Batch:
    image: Any
    label: Any
    note: str = "keep"


class Movable:
    def __init__(self) -> None:
        self.moved_to: Any = None

    def to(self, device: Any) -> Movable:
        self.moved_to = device
        return self


def test_to_device_keeps_structure() -> None:
    movable = Movable()
    dd: defaultdict[str, list[Any]] = defaultdict(list, {"t": [torch.ones(2)]})
    batch = {"a": torch.zeros(3), "b": [torch.ones(1), (torch.ones(1), "s")], "p": Pair(torch.ones(1), 3),
             "d": Batch(torch.ones(2), torch.tensor(1)), "o": OrderedDict(z=torch.ones(1)), "dd": dd,
             "m": movable, "n": None, "s": "text"}
    with simulate() as rt:
        out = rt.to_device(batch)
    assert out is not batch and out["b"] is not batch["b"]
    assert isinstance(out["p"], Pair) and out["p"].y == 3
    assert isinstance(out["d"], Batch) and out["d"].note == "keep" and torch.equal(out["d"].image, torch.ones(2))
    assert type(out["o"]) is OrderedDict and type(out["dd"]) is defaultdict and out["dd"].default_factory is list
    assert out["b"][1][1] == "s" and out["n"] is None and out["s"] == "text"
    assert movable.moved_to == torch.device("cpu")
    assert all(t.device.type == "cpu" for t in (out["a"], out["b"][0], out["o"]["z"], out["dd"]["t"][0]))


def test_wrap_loader_passes_through_off_tpu_and_uses_mpdeviceloader_on_tpu(monkeypatch: pytest.MonkeyPatch) -> None:
    loader = [torch.ones(1)]
    with simulate() as rt:
        assert rt.wrap_loader(loader) is loader
    xla = XlaRecorder(monkeypatch)
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    with simulate(tpu="v5e-8") as rt:
        wrapped = rt.wrap_loader(loader)
    assert type(wrapped).__name__ == "MpDeviceLoader"
    assert ("MpDeviceLoader", (loader, torch.device("xla", 0))) in xla.calls


def draws() -> tuple[float, float, float]:
    import numpy

    return random.random(), float(numpy.random.rand()), float(torch.rand(1))


def test_seed_repeats_every_generator() -> None:
    with simulate() as rt:
        assert rt.seed(1234) == 1234
        first = draws()
        rt.seed(1234)
        assert draws() == first
        rt.seed(1235)
        assert draws() != first


def test_seed_per_rank_and_on_tpu(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "none"}
    with simulate(env=env) as rt:
        assert rt.seed(10) == 10 and rt.seed(10, per_rank=True) == 11
    xla = XlaRecorder(monkeypatch)
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    with simulate(tpu="v5e-8") as rt:
        rt.seed(7)
    assert ("manual_seed", ((7,), {})) in xla.calls
    with simulate() as rt, pytest.raises(ValueError):
        rt.seed(-1)


def test_memory_on_cpu_reports_host_ram() -> None:
    with simulate(memory="30G") as rt:
        mem = rt.memory()
    assert (mem.kind, mem.allocated, mem.free) == ("cpu", None, None)
    assert mem.host_total == 30 * GIB


def run_python(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_detect_and_device_import_no_torch_in_a_fresh_process() -> None:
    out = run_python(
        "import sys, json, portarun\n"
        "from portarun._cli import report\n"
        "rt = portarun.detect(); rt.device; rt.dist; report.build(rt)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'torch_xla', 'numpy', 'IPython', 'pandas') "
        "if m in sys.modules)))")
    assert json.loads(out) == []


@pytest.mark.slow
def test_info_imports_torch_only_with_the_flag() -> None:
    code = ("import json, sys, io, contextlib\nfrom portarun._cli.main import main\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf): main(['info', '--json', *sys.argv[1:]])\n"
            "data = json.loads(buf.getvalue())\n"
            "print(json.dumps([data['accelerators']['torch'], 'torch' in sys.modules]))")
    torch_view, imported = json.loads(run_python(code))
    assert torch_view is None and imported is False
    torch_view, imported = json.loads(run_python(code, "--torch"))
    assert imported is True and torch_view["version"] == str(torch.__version__)
    assert torch_view["cuda_available"] is torch.cuda.is_available()


# -- real CUDA (runs wherever a GPU is present) ---------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(),
                         reason="no CUDA GPU here (torch.cuda.is_available() is False): real-GPU checks skipped")


@pytest.mark.gpu
@gpu
def test_real_gpu_device_memory_and_to_device() -> None:
    from portarun.probe import Probe
    from portarun.runtime import build_runtime

    rt = build_runtime(Probe.real())  # the real machine, even under --portarun-host
    assert rt.device.kind == "cuda" and rt.device.count == torch.cuda.device_count()
    assert rt.device.torch() == torch.device("cuda", 0)
    pinned = torch.ones(1024).pin_memory()
    moved = rt.to_device({"x": pinned})
    assert moved["x"].device.type == "cuda"
    mem = rt.memory()
    assert mem.total and mem.free is not None and mem.allocated is not None and mem.allocated >= 4096
    assert rt.device.names[0] == torch.cuda.get_device_name(0)
