"""Detection is right in every situation issue #2 names, each built at the probe seam with the
markers real environment dumps show (docs/reference/host-evidence.md)."""
from __future__ import annotations

from datetime import timedelta

import pytest

import portarun
from portarun.errors import UnknownHostError
from portarun.testing import PRESETS, simulate

COLAB = PRESETS["colab"]
KAGGLE = PRESETS["kaggle"]


def test_kaggle_interactive_beats_the_colab_markers_it_carries() -> None:
    with simulate("kaggle") as rt:
        assert rt.host.name == "kaggle"
        assert rt.session.interactive
        colab = next(v for v in rt.verdicts if v.provider == "colab")
        assert colab.confidence < rt.host.confidence
        assert any("COLAB_RELEASE_TAG" in line for line in colab.detection.evidence)


def test_kaggle_batch_commit_run() -> None:
    with simulate("kaggle-batch") as rt:
        assert rt.host.name == "kaggle"
        assert not rt.session.interactive
        assert any("KAGGLE_KERNEL_RUN_TYPE=Batch" in line for line in rt.host.evidence)


def test_kaggle_tpu_vm_has_the_nine_hour_limit() -> None:
    with simulate("kaggle-tpu") as rt:
        assert rt.host.name == "kaggle"
        assert rt.session.limit is not None and rt.session.limit.total_seconds() == 9 * 3600


@pytest.mark.parametrize("gpu_env, gpus", [("", None), ("1", ["Tesla T4"])], ids=["cpu", "gpu"])
def test_colab_cpu_and_gpu_runtimes(gpu_env: str, gpus: list[str] | None) -> None:
    with simulate("colab", env={"COLAB_GPU": gpu_env}, gpus=gpus) as rt:
        assert rt.host.name == "colab"
        assert rt.session.limit is not None and rt.session.limit.total_seconds() == 12 * 3600


def test_colab_tpu_runtime() -> None:
    with simulate("colab-tpu") as rt:
        assert rt.host.name == "colab"
        assert rt.probe.tpu is not None and rt.probe.tpu.generation == "v5e"


def test_colab_with_drive_persists_on_drive(tmp_path) -> None:
    with simulate("colab", root=tmp_path, project="exp1") as rt:
        drive = tmp_path / "content/drive/MyDrive"
        assert rt.paths.persist == drive / "portarun/exp1"
        assert rt.paths.checkpoints == drive / "portarun/exp1/checkpoints"
        assert rt.paths.output == drive / "portarun/exp1/outputs"


def test_colab_with_legacy_my_drive_folder(tmp_path) -> None:
    with simulate("colab-nodrive", paths=["/content/drive/My Drive"], root=tmp_path, project="p") as rt:
        assert rt.paths.persist == tmp_path / "content/drive/My Drive/portarun/p"


def test_colab_without_drive_warns_that_files_die_with_the_session(tmp_path) -> None:
    with pytest.warns(portarun.PortarunWarning,
                      match="Drive is not mounted.*deleted when the session ends.*mount_drive"):
        with simulate("colab-nodrive", root=tmp_path, project="p") as rt:
            assert rt.host.name == "colab"
            assert rt.paths.persist == tmp_path / "content/portarun/p"


def test_script_started_from_a_colab_cell() -> None:
    """`!python train.py`: same environment and files, but no kernel in this process."""
    with simulate("colab", kernel=False, env={"JPY_SESSION_NAME": "/v2/external/notebooks/intro.ipynb"}) as rt:
        assert rt.host.name == "colab"
        assert not rt.session.interactive
    from portarun.runtime import build_runtime

    with simulate("colab", kernel=False) as rt:
        assert build_runtime(rt.probe, argv0="/content/train.py").project.startswith("train-")


def test_notebook_kernel_names_the_project_after_the_notebook() -> None:
    with simulate("colab", env={"JPY_SESSION_NAME": "/v2/external/notebooks/my exp.ipynb"}) as rt:
        assert rt.project.startswith("my-exp-")  # plus a hash of the notebook's path


def test_colab_with_stray_kaggle_folders() -> None:
    """Colab VMs carry an empty /kaggle, and kagglehub mounts its cache at /kaggle/input there."""
    with simulate("colab", paths=["/kaggle/input"]) as rt:
        assert rt.host.name == "colab"
        kaggle = next(v for v in rt.verdicts if v.provider == "kaggle")
        assert not kaggle.matched


def test_colab_enterprise() -> None:
    """Colab Enterprise runtimes have no 12-hour cap and keep /content only as long as the
    runtime: neither free Colab's limit nor its advice to mount Drive applies."""
    with pytest.warns(portarun.PortarunWarning, match="On Colab Enterprise.*deleted with the runtime.*gs://") as record:
        with simulate(env={"VERTEX_PRODUCT": "COLAB_ENTERPRISE", "COLAB_RELEASE_TAG": "x"},
                      modules=["google.colab"]) as rt:
            assert rt.host.name == "colab"
            assert rt.session.limit is None and "Colab Enterprise" in rt.session.source
            assert rt.paths.persist == rt.probe.path("/content/portarun") / rt.project
            with pytest.raises(portarun.NotAvailableError, match="Colab Enterprise cannot mount Google Drive"):
                rt.mount_drive()
    assert not any("mount_drive" in str(w.message) for w in record)


def test_free_colab_keeps_its_limit_and_drive_advice() -> None:
    with pytest.warns(portarun.PortarunWarning, match="Drive is not mounted.*mount_drive"):
        with simulate("colab-nodrive") as rt:
            assert rt.session.limit == timedelta(hours=12)


def test_paperspace_gradient_notebook() -> None:
    with simulate("paperspace") as rt:
        assert rt.host.name == "paperspace"
        assert rt.paths.persist == rt.probe.path("/storage/portarun") / rt.project
        assert rt.paths.input == rt.probe.path("/datasets")


def test_laptop_with_kaggle_api_credentials() -> None:
    env = {"KAGGLE_USERNAME": "alice", "KAGGLE_KEY": "0123456789abcdef", "HOME": "/home/alice"}
    with simulate(env=env) as rt:
        assert rt.host.name == "local"
        kaggle = next(v for v in rt.verdicts if v.provider == "kaggle")
        assert kaggle.confidence == 0.0
        assert "0123456789abcdef" not in rt.explain()
        assert "KAGGLE_KEY set (API credential" in rt.explain()


def test_laptop_with_paperspace_api_key() -> None:
    with simulate(env={"PAPERSPACE_API_KEY": "pk-secret-value"}) as rt:
        assert rt.host.name == "local"
        assert "pk-secret-value" not in rt.explain()


@pytest.mark.parametrize("folders", [["/content"], ["/storage"], ["/storage", "/notebooks", "/datasets"]])
def test_laptop_with_stray_folders(folders: list[str]) -> None:
    with simulate(env={"HOME": "/home/bob"}, paths=folders) as rt:
        assert rt.host.name == "local"


def test_kaggle_docker_image_on_a_laptop() -> None:
    """Kaggle's modules importable and Colab's image variables baked in, but none of the
    variables Kaggle injects at run time and no /kaggle/input."""
    env = {"COLAB_RELEASE_TAG": KAGGLE.env["COLAB_RELEASE_TAG"], "COLAB_IMAGE_TYPE": "gpu", "HOME": "/root"}
    with simulate(env=env, modules=["kaggle_secrets", "kaggle_web_client", "google.colab"],
                  paths=["/kaggle/working", "/content"]) as rt:
        assert rt.host.name == "local", rt.explain()


def test_kaggle_run_type_alone_is_not_proof() -> None:
    with simulate(env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}) as rt:
        assert rt.host.name == "local"


def test_env_is_the_whole_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real environment is not consulted inside a simulation."""
    for key, value in KAGGLE.env.items():
        monkeypatch.setenv(key, value)
    with simulate(env={}) as rt:
        assert rt.host.name == "local"


def test_override_forces_a_provider() -> None:
    with pytest.warns(portarun.PortarunWarning, match="forces the paperspace provider, but nothing here looks like it"):
        with simulate("kaggle", env={"PORTARUN_HOST": "paperspace"}) as rt:
            assert rt.host.name == "paperspace" and rt.host.forced
        assert rt.host.evidence[0] == "forced by PORTARUN_HOST=paperspace"
    with simulate("kaggle") as rt:
        forced = portarun.detect(host="local")
        assert forced.host.name == "local" and forced.host.evidence[0].startswith("forced by detect(host=...)")


def test_unknown_host_lists_the_known_ones() -> None:
    with simulate("local"):
        with pytest.raises(UnknownHostError, match=r"unknown host 'kagle'; did you mean 'kaggle'\? known: ") as info:
            portarun.detect(host="kagle")
    # every built-in is listed, in order, whatever plugins are installed beside them
    known = str(info.value).split("known: ", 1)[1].split(". ", 1)[0].split(", ")
    builtin = ["colab", "kaggle", "local", "paperspace"]
    assert [n for n in known if n in builtin] == builtin
    with pytest.raises(UnknownHostError, match="PORTARUN_HOST"):
        with simulate(env={"PORTARUN_HOST": "nope"}):
            pass


def test_explain_shows_every_verdict_with_evidence() -> None:
    with simulate("kaggle") as rt:
        text = rt.explain()
    for name in ("kaggle", "colab", "paperspace", "local"):
        assert name in text
    assert "*1. kaggle" in text
    assert "+0.40 env KAGGLE_KERNEL_RUN_TYPE=Interactive" in text
    assert "folder /kaggle/input (weak" in text


def test_detect_is_cached_and_refreshable() -> None:
    with simulate("kaggle") as rt:
        assert portarun.detect() is rt
        assert portarun.detect(refresh=True) is not rt
        assert portarun.detect().host.name == "kaggle"
