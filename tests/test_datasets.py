"""rt.dataset: attached Kaggle copies in both layouts, kagglehub (stand-in at the package
boundary) into rt.paths.cache, fsspec URLs from the loopback S3 server, Drive paths."""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from portarun.errors import DatasetError, PortarunWarning
from portarun.testing import simulate


def test_kaggle_2026_layout(tmp_path):
    with simulate("kaggle", root=tmp_path / "h", paths=["/kaggle/input/datasets/yasserh/titanic-dataset",
                                                        "/kaggle/input/titanic-dataset"]) as rt:
        path = rt.dataset("yasserh/titanic-dataset")
        assert path == rt.probe.path("/kaggle/input/datasets/yasserh/titanic-dataset")


def test_kaggle_legacy_layout(tmp_path):
    with simulate("kaggle", root=tmp_path / "h", paths=["/kaggle/input/titanic-dataset"]) as rt:
        assert rt.dataset("yasserh/titanic-dataset") == rt.probe.path("/kaggle/input/titanic-dataset")


def _kagglehub(calls: list[tuple[str, str | None]]):
    def dataset_download(handle: str, path: str | None = None, *, force_download: bool = False) -> str:
        cache = os.environ["KAGGLEHUB_CACHE"]
        calls.append((handle, cache))
        owner, slug, *rest = handle.split("/")
        version = rest[1] if rest else "1"
        folder = Path(cache) / "datasets" / owner / slug / "versions" / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train.csv").write_text("a,b\n1,2\n")
        return str(folder)

    return dataset_download


def _stand_in_kagglehub(monkeypatch, dataset_download) -> None:
    """kagglehub at the package boundary, whether or not the real one is installed."""
    module = types.ModuleType("kagglehub")
    module.dataset_download = dataset_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kagglehub", module)


def test_kagglehub_downloads_into_the_cache_when_not_attached(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLEHUB_CACHE", raising=False)
    calls: list[tuple[str, str | None]] = []
    _stand_in_kagglehub(monkeypatch, _kagglehub(calls))
    with simulate("local", root=tmp_path / "h") as rt:
        path = rt.dataset("yasserh/titanic-dataset/versions/3")
        assert path == Path(rt.paths.cache) / "kagglehub/datasets/yasserh/titanic-dataset/versions/3"
        assert (path / "train.csv").is_file()
    assert calls == [("yasserh/titanic-dataset/versions/3", str(Path(rt.paths.cache) / "kagglehub"))]
    assert "KAGGLEHUB_CACHE" not in os.environ  # restored


def test_kagglehub_failure_is_explained(tmp_path, monkeypatch):
    def fails(handle: str) -> str:
        raise RuntimeError("403 Forbidden")

    _stand_in_kagglehub(monkeypatch, fails)
    with simulate("kaggle", root=tmp_path / "h") as rt:
        with pytest.raises(DatasetError, match="403 Forbidden.*credentials"):
            rt.dataset("someone/private")


def test_without_kagglehub_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # blocked: absent, installed or not
    with simulate("kaggle", root=tmp_path / "h") as rt:
        with pytest.raises(DatasetError) as info:
            rt.dataset("yasserh/titanic-dataset")
    text = str(info.value)
    assert "datasets/yasserh/titanic-dataset" in text and "pip install kagglehub" in text and "Add Input" in text


def test_local_data_folder_plays_the_attached_role(tmp_path):
    with simulate("local", root=tmp_path / "h", paths=["/data/titanic-dataset"]) as rt:
        assert rt.dataset("yasserh/titanic-dataset") == Path(rt.paths.input) / "titanic-dataset"


def test_drive_path_and_unmounted_drive(tmp_path):
    with simulate("colab", root=tmp_path / "h", paths=["/content/drive/MyDrive/data/imgs"]) as rt:
        assert rt.dataset("/content/drive/MyDrive/data/imgs") == rt.probe.path("/content/drive/MyDrive/data/imgs")
    with pytest.warns(PortarunWarning, match="Drive is not mounted"), \
            simulate("colab-nodrive", root=tmp_path / "h2") as rt:
        with pytest.raises(DatasetError, match="mount_drive"):
            rt.dataset("/content/drive/MyDrive/data/imgs")


def test_existing_local_paths_are_returned_as_they_are(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    with simulate("local", root=tmp_path / "h") as rt:
        assert rt.dataset(folder) == folder
        with pytest.raises(DatasetError, match="neither an existing path"):
            rt.dataset(str(tmp_path / "missing" / "deep" / "x"))


def test_s3_url_is_copied_into_the_cache(tmp_path, s3):
    s3.pipe({f"{s3.test_bucket}/ds/a.txt": b"alpha", f"{s3.test_bucket}/ds/sub/b.txt": b"beta"})
    with simulate("local", root=tmp_path / "h") as rt:
        path = rt.dataset(f"s3://{s3.test_bucket}/ds")
        assert path == Path(rt.paths.cache) / "datasets" / "s3" / s3.test_bucket / "ds"
        assert (path / "a.txt").read_bytes() == b"alpha" and (path / "sub/b.txt").read_bytes() == b"beta"
        assert rt.dataset(f"s3://{s3.test_bucket}/ds") == path  # second call: nothing new to copy
