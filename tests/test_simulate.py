"""portarun.testing.simulate works exactly as documented."""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

import portarun
from portarun.errors import PortarunError, UnknownHostError
from portarun.probe import Probe
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
    ({"gpus": [""]}, "GPU model '' is not a GPU name"),
    ({"gpus": ["T4\n"]}, "is not a GPU name"),
    ({"tpu": "v9z"}, "TPU spec 'v9z' is not an accelerator type"),
])
def test_bad_hardware_keywords(kwargs, message) -> None:
    with pytest.raises(PortarunError, match=message):
        with simulate(**kwargs):
            pass


def test_a_gpu_model_missing_from_the_catalog_is_simulated_with_unknown_specs() -> None:
    """As the probe reads an unknown model on a real machine: present, memory unknown."""
    with simulate(gpus=["Voodoo 5", "NVIDIA RTX A6000"]) as rt:
        unknown, known = rt.probe.gpus
        assert (unknown.name, unknown.memory, unknown.compute_capability) == ("Voodoo 5", None, None)
        assert (known.memory, known.compute_capability) == (48 * 1024**3, (8, 6))
        assert rt.device.kind == "cuda" and rt.device.count == 2


# -- a simulation leaves nothing behind and says nothing about its own stand-ins ----------

_COLAB_SESSION = """
import warnings
import portarun
from portarun.testing import simulate

warnings.simplefilter("error", portarun.PortarunWarning)
with simulate("colab") as rt:
    assert rt.paths.checkpoints.is_relative_to(rt.probe.path("/content/drive/MyDrive"))
    rt.checkpoints.save({"w": [1.0, 2.0]}, step=1)        # on the simulated Drive
    rt.checkpoints.wait()
    sample = rt.probe.path("/content/sample_submission.csv")
    sample.write_text("id,target\\n1,0\\n2,0\\n")
    rt.submit({"id": [1, 2], "target": [0.5, 0.25]}, sample=sample)  # offered for download on Colab
print("done")
"""


def test_colab_stand_ins_raise_no_warnings_during_or_after_the_block(tmp_path) -> None:
    """Colab's Drive flush (also at interpreter exit) and download offer, against the stand-in
    google.colab: under ``error::PortarunWarning`` a user's suite must not fail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    env["TMPDIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # this checkout's portarun
    result = subprocess.run([sys.executable, "-c", _COLAB_SESSION],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-3000:]
    assert "Warning" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-3000:]
    assert os.listdir(tmp_path) == []  # the temporary root is gone, and nothing wrote after it


@pytest.fixture
def temp_folder(tmp_path, monkeypatch) -> Path:
    """The temporary folder simulate() makes its roots in."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_temporary_roots_are_removed_on_errors_and_when_nested(temp_folder: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with simulate("kaggle"):
            1 / 0
    with simulate("kaggle") as outer:
        with simulate("colab") as inner:
            assert outer.probe.root != inner.probe.root
            assert sorted(temp_folder.iterdir()) == sorted([outer.probe.root, inner.probe.root])
        assert list(temp_folder.iterdir()) == [outer.probe.root]
    with simulate("paperspace") as rt:  # a folder the code under test made read-only
        locked = rt.paths.output / "locked"
        (locked / "inner").mkdir(parents=True)
        (locked / "inner" / "file").write_text("x")
        locked.chmod(0o500)
        (locked / "inner").chmod(0o500)
    assert list(temp_folder.iterdir()) == []


@pytest.mark.parametrize("kwargs", [{"memory": "lots"}, {"gpus": [""]}, {"tpu": "v9z"}, {"shm": "-1"}])
def test_a_refused_keyword_leaves_no_root(temp_folder: Path, kwargs) -> None:
    with pytest.raises(PortarunError):
        with simulate("kaggle", **kwargs):
            pass
    assert list(temp_folder.iterdir()) == []


@pytest.mark.parametrize("host", presets())
def test_presets_read_unset_hardware_from_the_real_machine(host: str) -> None:
    """As documented: a preset names a host, not a machine; asking for hardware still works."""
    real = Probe.real()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", portarun.PortarunWarning)  # colab-nodrive's "Drive is not mounted"
        with simulate(host) as rt:
            assert rt.probe.cpu == real.cpu and rt.probe.memory.total == real.memory.total
            assert rt.loader.facts.cpus <= real.cpu.usable
        with simulate(host, cpus=96, memory="330G") as rt:
            assert rt.probe.cpu.usable == 96 and rt.probe.memory.total == 330 * 1024**3
