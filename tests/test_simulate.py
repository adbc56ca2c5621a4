"""portarun.testing.simulate works exactly as documented."""
from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest

import portarun
from portarun.errors import PortarunError, UnknownHostError
from portarun.testing import presets, simulate


def test_the_documented_example(tmp_path) -> None:
    with simulate(env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive", "KAGGLE_URL_BASE": "https://www.kaggle.com"},
                  paths=["/kaggle/input", "/kaggle/working"], modules=["kaggle_secrets"], root=tmp_path) as rt:
        assert rt.host.name == "kaggle"
        assert rt.paths.output == tmp_path / "kaggle/working"
        assert rt.paths.output.is_dir()
        assert portarun.detect() is rt


def test_preset_with_root(tmp_path) -> None:
    with simulate("paperspace", root=tmp_path) as rt:
        assert rt.paths.output == tmp_path / "notebooks"
    assert tmp_path.is_dir()  # a given root is left in place


def test_temporary_root_is_removed() -> None:
    with simulate("kaggle") as rt:
        root = rt.probe.root
        assert root.is_dir()
    assert not root.exists()


def test_stand_in_modules_exist_inside_only() -> None:
    # A name no preset uses: this suite also runs inside a session-wide simulated host.
    name = "acme_vendor_sdk.secrets"
    assert "acme_vendor_sdk" not in sys.modules
    with simulate("kaggle", modules=[name]) as rt:
        assert importlib.import_module(name).__doc__.startswith("portarun.testing stand-in")
        assert importlib.util.find_spec(name) is not None  # stand-ins carry a spec
        assert rt.probe.has_module(name)
    assert "acme_vendor_sdk" not in sys.modules and name not in sys.modules


def test_host_modules_not_listed_are_absent() -> None:
    with simulate(env={}) as rt:
        assert not rt.probe.has_module("google.colab")
        assert not rt.probe.has_module("kaggle_secrets")
        assert rt.probe.has_module("json")  # everything else is the real import system


def test_leaving_restores_the_previous_runtime() -> None:
    with simulate("kaggle") as outer:
        with simulate("colab") as inner:
            assert portarun.detect() is inner
        assert portarun.detect() is outer


def test_unknown_preset() -> None:
    with pytest.raises(UnknownHostError, match="unknown simulated host 'kagle'"):
        with simulate("kagle"):
            pass
    assert "kaggle-batch" in presets()


def test_hardware_keywords() -> None:
    with simulate("kaggle", gpus=["Tesla T4"] * 2, cpus=4, memory="30G", shm="64M") as rt:
        assert [g.name for g in rt.probe.gpus] == ["Tesla T4", "Tesla T4"]
        assert rt.probe.gpus[0].compute_capability == (7, 5)
        assert rt.probe.cpu.usable == 4
        assert rt.probe.memory.total == 30 * 1024**3
        assert rt.probe.shm.total == 64 * 1024**2
    with simulate(tpu="v3-8") as rt:
        assert rt.probe.tpu is not None and rt.probe.tpu.chips == 4 and rt.probe.tpu.generation == "v3"
    with simulate(platform=("Darwin", "arm64")) as rt:
        assert rt.probe.platform.system == "Darwin"


@pytest.mark.parametrize("kwargs, message", [
    ({"memory": "lots"}, "memory 'lots' is not a size"),
    ({"gpus": ["Voodoo 5"]}, "unknown GPU model 'Voodoo 5'"),
    ({"tpu": "v9z"}, "TPU spec 'v9z' is not an accelerator type"),
])
def test_bad_hardware_keywords(kwargs, message) -> None:
    with pytest.raises(PortarunError, match=message):
        with simulate(**kwargs):
            pass
