"""Path roles: defaults per host, overrides (folders and fsspec URLs), clear errors."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types

import pytest

import portarun
from portarun.errors import NotAvailableError, PathError
from portarun.paths import ROLES, join, slugify
from portarun.testing import simulate


def test_kaggle_layout(tmp_path) -> None:
    with simulate("kaggle", root=tmp_path, project="demo") as rt:
        assert rt.paths.input == tmp_path / "kaggle/input"
        assert rt.paths.output == tmp_path / "kaggle/working"
        assert rt.paths.scratch == tmp_path / "kaggle/temp"
        assert rt.paths.persist == tmp_path / "kaggle/working/demo"
        assert rt.paths.checkpoints == tmp_path / "kaggle/working/demo/checkpoints"
        for role in ROLES:
            if role != "input":
                assert rt.paths[role].is_dir()


def test_kaggle_without_temp_uses_tmp(tmp_path) -> None:
    with simulate(env=dict(portarun.testing.PRESETS["kaggle"].env), paths=["/kaggle/input", "/kaggle/working"],
                  modules=["kaggle_secrets"], root=tmp_path) as rt:
        assert rt.paths.scratch == tmp_path / "tmp/portarun-scratch"


def test_local_layout_follows_platformdirs_under_the_simulated_home(tmp_path) -> None:
    with simulate(env={"HOME": "/home/u"}, root=tmp_path, project="p") as rt:
        assert rt.paths.input == tmp_path / "data"
        assert rt.paths.output == tmp_path / "outputs"
        assert str(rt.paths.persist).startswith(str(tmp_path / "home/u"))
        assert rt.paths.persist.name == "p"


def test_folder_override(tmp_path) -> None:
    target = tmp_path / "mnt/out"
    target.mkdir(parents=True)
    with simulate("kaggle", env={"PORTARUN_OUTPUT_DIR": "/mnt/out", "PORTARUN_PERSIST_DIR": "/mnt/out"}, root=tmp_path) as rt:
        assert rt.paths.output == target
        assert rt.paths.persist == target  # an override is the folder itself, not namespaced
        assert rt.paths.checkpoints == target / "checkpoints"


def test_url_override_for_persist(tmp_path) -> None:
    with simulate("colab-nodrive", env={"PORTARUN_PERSIST_DIR": "s3://bucket/runs/"}, root=tmp_path) as rt:
        assert rt.paths.persist == "s3://bucket/runs"
        assert rt.paths.checkpoints == "s3://bucket/runs/checkpoints"


def test_url_override_with_unknown_protocol() -> None:
    with pytest.raises(PathError, match=r"PORTARUN_CACHE_DIR=.*unknown fsspec protocol 'nosuch'"):
        with simulate(env={"PORTARUN_CACHE_DIR": "nosuch://x"}):
            pass


def test_missing_override_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(PathError, match=r"PORTARUN_CHECKPOINTS_DIR points at '/nope', which does not exist\. Create"):
        with simulate(env={"PORTARUN_CHECKPOINTS_DIR": "/nope"}, root=tmp_path):
            pass


def test_override_pointing_at_a_file(tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PathError, match="which is not a folder"):
        with simulate(env={"PORTARUN_OUTPUT_DIR": "/afile"}, root=tmp_path):
            pass


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare for a read-only mount")
def test_unwritable_override_is_a_clear_error(tmp_path) -> None:
    """A real read-only mount (root ignores permission bits, so chmod cannot test this)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    code = (
        "import portarun\n"
        "try:\n    portarun.detect()\n"
        "except portarun.PathError as e:\n    print('PathError:', e)\n"
    )
    script = f"mount -t tmpfs -o ro,size=1m tmpfs {ro} && {sys.executable} -c \"{code}\""
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PORTARUN_OUTPUT_DIR": str(ro), "PORTARUN_HOST": "local"})
    if "Operation not permitted" in proc.stderr:
        pytest.skip("this machine forbids mount namespaces")
    assert "PathError: PORTARUN_OUTPUT_DIR points at" in proc.stdout, proc.stderr
    assert "cannot write to" in proc.stdout


def test_default_folder_that_cannot_be_created(tmp_path) -> None:
    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle/working").write_text("a file where a folder should be")
    env = {"KAGGLE_KERNEL_RUN_TYPE": "Batch", "KAGGLE_URL_BASE": "x"}
    with pytest.raises(PathError, match=r"cannot create the output folder .*working: a file of that name is in the way\. Set PORTARUN_OUTPUT_DIR"):
        with simulate(env=env, root=tmp_path, paths=["/kaggle/input"]):
            pass


def test_project_names_are_slugs() -> None:
    assert slugify("My Exp #3/final") == "My-Exp-3-final"
    assert slugify("../..") == "default"
    assert join("s3://b/x/", "a", "b") == "s3://b/x/a/b"


def test_unknown_role_lists_the_roles() -> None:
    with simulate("local") as rt:
        with pytest.raises(PathError, match="roles are: input, scratch, output, persist, cache, checkpoints"):
            rt.paths["outputs"]


def test_mount_drive_off_colab_says_why() -> None:
    with simulate("local") as rt:
        with pytest.raises(NotAvailableError, match="only be mounted from Colab.*PORTARUN_PERSIST_DIR"):
            rt.mount_drive()


def test_mount_drive_on_colab_moves_persist_to_drive(tmp_path) -> None:
    calls: list[str] = []

    def mount(mountpoint: str) -> None:  # what google.colab.drive.mount does, at the package boundary
        calls.append(mountpoint)
        os.makedirs(os.path.join(mountpoint, "MyDrive"))

    with pytest.warns(portarun.PortarunWarning, match="Drive is not mounted"):
        with simulate("colab-nodrive", root=tmp_path, project="p") as rt:
            sys.modules["google.colab"].drive = types.SimpleNamespace(mount=mount)  # type: ignore[attr-defined]
            mounted = rt.mount_drive()
            assert calls == [str(tmp_path / "content/drive")]
            assert mounted.paths.persist == tmp_path / "content/drive/MyDrive/portarun/p"
            assert portarun.detect(project="p") is mounted
