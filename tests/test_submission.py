"""rt.submit: validation against the sample, atomic writes to each host's place, delivery
through the portarun_submit hook (Kaggle API stand-in at the package boundary, Colab download)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import portarun
from portarun.errors import SubmissionError
from portarun.submission import Submission
from portarun.testing import plugin, simulate

SAMPLE = "PassengerId,Survived\n892,0\n893,1\n894,0\n895,0\n"
IDS = [892, 893, 894, 895]
GOOD = {"PassengerId": IDS, "Survived": [0, 1, 1, 0]}


def kaggle_host(tmp_path: Path, **kw):
    """Simulated Kaggle with the titanic competition attached in the 2026 layout."""
    root = tmp_path / "host"
    sample = root / "kaggle/input/competitions/titanic/sample_submission.csv"
    sample.parent.mkdir(parents=True)
    sample.write_text(SAMPLE)
    return simulate("kaggle", root=root, **kw)


def local_host(tmp_path: Path, **kw):
    """Simulated local machine with the titanic sample in ./data/titanic (local input is ./data)."""
    root = tmp_path / "host"
    (root / "data/titanic").mkdir(parents=True)
    (root / "data/titanic/sample_submission.csv").write_text(SAMPLE)
    return simulate("local", root=root, **kw)


def written(rt) -> list[str]:
    out = Path(rt.paths.output)
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def _csv_with_saved_index(tmp_path: Path) -> Path:
    path = tmp_path / "with_index.csv"
    pd.DataFrame(GOOD).to_csv(path)  # index=True by default: writes an unnamed first column
    return path


BAD = [
    ("wrong column name", lambda tmp: {"PassengerId": IDS, "Prediction": [0, 1, 1, 0]}, {}, "columns"),
    ("extra column", lambda tmp: {**GOOD, "Extra": [1, 2, 3, 4]}, {}, "columns"),
    ("column order", lambda tmp: {"Survived": [0, 1, 1, 0], "PassengerId": IDS}, {}, "column_order"),
    ("too few rows", lambda tmp: {"PassengerId": IDS[:3], "Survived": [0, 1, 1]}, {}, "row_count"),
    ("duplicate id", lambda tmp: {"PassengerId": [892, 893, 893, 895], "Survived": [0, 1, 1, 0]}, {}, "duplicate_ids"),
    ("id not in sample", lambda tmp: {"PassengerId": [892, 893, 894, 999], "Survived": [0, 1, 1, 0]}, {}, "missing_ids"),
    ("NaN", lambda tmp: pd.DataFrame({"PassengerId": IDS, "Survived": [0, np.nan, 1, 0]}), {}, "missing_values"),
    ("None in dict", lambda tmp: {"PassengerId": IDS, "Survived": [0, None, 1, 0]}, {}, "missing_values"),
    ("wrong type", lambda tmp: {"PassengerId": IDS, "Survived": ["yes", "no", "no", "yes"]}, {}, "types"),
    ("infinite value", lambda tmp: {"PassengerId": IDS, "Survived": [0, float("inf"), 1, 0]}, {}, "types"),
    ("index holds ids", lambda tmp: pd.DataFrame(GOOD).set_index("PassengerId"), {}, "index_column"),
    ("csv with saved index", _csv_with_saved_index, {}, "index_column"),
    ("ragged dict", lambda tmp: {"PassengerId": IDS, "Survived": [0, 1]}, {}, "shape"),
    ("traversal", lambda tmp: GOOD, {"filename": "../submission.csv"}, "filename"),
    ("nested traversal", lambda tmp: GOOD, {"filename": "subs/../../x.csv"}, "filename"),
    ("absolute path", lambda tmp: GOOD, {"filename": "/tmp/submission.csv"}, "filename"),
    ("windows drive", lambda tmp: GOOD, {"filename": "C:\\submission.csv"}, "filename"),
    ("not csv", lambda tmp: GOOD, {"filename": "submission.txt"}, "filename"),
    ("missing file", lambda tmp: tmp / "nope.csv", {}, "input"),
]


@pytest.mark.parametrize("case,make,kwargs,kind", BAD, ids=[b[0] for b in BAD])
def test_bad_submission_is_refused_and_nothing_is_written(tmp_path, case, make, kwargs, kind):
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit(make(tmp_path), **kwargs)
        assert kind in info.value.kinds, (case, info.value.problems)
        assert "Nothing was written" in str(info.value) or kind == "input"
        assert written(rt) == []


def test_error_lists_first_mismatches_and_what_to_do(tmp_path):
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit({"PassengerId": [1, 2, 3, 4], "Survived": [0, 1, 1, 0]})
    text = str(info.value)
    assert "sample_submission.csv" in text
    assert "'892'" in text and "predict every id" in text
    assert info.value.kinds == ("missing_ids", "unexpected_ids")


def test_kaggle_writes_working_submission_in_sample_order(tmp_path):
    with kaggle_host(tmp_path) as rt:
        df = pd.DataFrame({"PassengerId": [895, 892, 894, 893], "Survived": [0, 0, 1, 1]})
        sub = rt.submit(df)
        assert sub.path == rt.probe.path("/kaggle/working/submission.csv")
        assert sub.sample == rt.probe.path("/kaggle/input/competitions/titanic/sample_submission.csv")
        assert sub.reordered and sub.rows == 4 and not sub.sent
        assert sub.path.read_text() == "PassengerId,Survived\n892,0\n893,1\n894,1\n895,0\n"
        assert written(rt) == ["submission.csv"]


def test_legacy_kaggle_layout_sample_is_found(tmp_path):
    root = tmp_path / "host"
    (root / "kaggle/input/titanic").mkdir(parents=True)
    (root / "kaggle/input/titanic/sample_submission.csv").write_text(SAMPLE)
    with simulate("kaggle", root=root) as rt:
        with pytest.raises(SubmissionError, match="row_count"):
            rt.submit({"PassengerId": [892], "Survived": [1]})
        assert rt.submit(GOOD).sample == root / "kaggle/input/titanic/sample_submission.csv"


def test_on_kaggle_a_competition_is_submitted_from_the_notebook_not_the_api(tmp_path):
    with kaggle_host(tmp_path, modules=["kaggle"]) as rt:
        calls = []
        sys.modules["kaggle"].api = type("Api", (), {"competition_submit": lambda *a: calls.append(a)})()
        sub = rt.submit(GOOD, competition="titanic")
    assert calls == [] and not sub.sent
    assert "submit from the notebook" in sub.notes[0]


def test_several_samples_need_a_choice(tmp_path):
    root = tmp_path / "host"
    for slug in ("titanic", "spaceship-titanic"):
        (root / f"kaggle/input/competitions/{slug}").mkdir(parents=True)
        (root / f"kaggle/input/competitions/{slug}/sample_submission.csv").write_text(SAMPLE)
    with simulate("kaggle", root=root) as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit(GOOD)
        assert info.value.kinds == ("sample",) and written(rt) == []
        assert rt.submit(GOOD, competition="spaceship-titanic").sample.parent.name == "spaceship-titanic"


def test_colab_writes_to_drive_and_offers_download(tmp_path):
    with simulate("colab", root=tmp_path / "host", modules=["google.colab.files"], project="titanic") as rt:
        offered = []
        sys.modules["google.colab.files"].download = offered.append
        sample = tmp_path / "sample.csv"
        sample.write_text(SAMPLE)
        sub = rt.submit([{"PassengerId": i, "Survived": 1} for i in IDS], "preds/v1.csv", sample=sample)
        assert sub.path == rt.probe.path("/content/drive/MyDrive/portarun/titanic/outputs/preds/v1.csv")
        assert offered == [str(sub.path)]
        assert sub.path.read_text().splitlines()[1] == "892,1"


def test_colab_without_kernel_does_not_offer_download(tmp_path):
    with simulate("colab", root=tmp_path / "host", modules=["google.colab.files"], kernel=False) as rt:
        sys.modules["google.colab.files"].download = lambda path: pytest.fail("no browser outside the kernel")
        sample = tmp_path / "sample.csv"
        sample.write_text(SAMPLE)
        assert rt.submit(GOOD, sample=sample).notes == ()


def test_local_without_sample_runs_basic_checks_and_accepts_a_csv_path(tmp_path):
    source = tmp_path / "mine.csv"
    source.write_text("id,pred\n1,0.5\n2,0.25\n")
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.warns(portarun.PortarunWarning, match="only basic checks.*NOT checked.*sample=") as caught:
            sub = rt.submit(source)
        assert caught[0].filename == __file__  # attributed to the caller's line
        assert sub.sample is None and sub.checks == "basic" and sub.path == Path(rt.paths.output) / "submission.csv"
        assert any("basic checks" in note for note in sub.notes)
        assert sub.path.read_text() == source.read_text()
        with pytest.raises(SubmissionError) as info:
            rt.submit({"id": [1, 2], "pred": [0.5, float("nan")]}, "other.csv")
        assert info.value.kinds == ("missing_values",)
        with pytest.raises(SubmissionError) as info:
            rt.submit({"id": [1, 2], "pred": [0.5, float("inf")]}, "other.csv")
        assert info.value.kinds == ("non_finite",)
        assert not (Path(rt.paths.output) / "other.csv").exists()


def test_failed_submission_keeps_the_previous_file(tmp_path):
    with kaggle_host(tmp_path) as rt:
        first = rt.submit(GOOD).path.read_bytes()
        with pytest.raises(SubmissionError):
            rt.submit({"PassengerId": IDS, "Survived": [0, None, 0, 0]})
        assert rt.probe.path("/kaggle/working/submission.csv").read_bytes() == first
        assert written(rt) == ["submission.csv"]


def test_sequence_rows_take_the_sample_header(tmp_path):
    with kaggle_host(tmp_path) as rt:
        sub = rt.submit([(i, 0.75) for i in IDS])
        assert sub.columns == ("PassengerId", "Survived")
        assert sub.path.read_text().splitlines()[1] == "892,0.75"


# -- the Kaggle API, off Kaggle ------------------------------------------------------------
class FakeKaggleApi:
    """Stand-in for ``kaggle.api`` (KaggleApi.competition_submit(file_name, message, competition))."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def competition_submit(self, file_name, message, competition, quiet=False):
        self.calls.append((file_name, message, competition))
        assert Path(file_name).read_text().startswith("PassengerId,Survived\n")
        return {"status": "pending"}


CREDS = {"KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "0123456789abcdef"}


def test_api_submission_off_kaggle(tmp_path):
    with local_host(tmp_path, env=CREDS, modules=["kaggle"]) as rt:
        api = sys.modules["kaggle"].api = FakeKaggleApi()
        sub = rt.submit(GOOD, competition="titanic", message="first try")
    assert api.calls == [(str(sub.path), "first try", "titanic")]
    assert sub.sent and sub.response == {"status": "pending"}
    assert sub.plan == (f"kaggle.api.competition_submit(file_name={str(sub.path)!r}, message='first try', "
                        "competition='titanic')")


def test_dry_run_shows_the_call_and_sends_nothing(tmp_path):
    with local_host(tmp_path, env=CREDS, modules=["kaggle"]) as rt:
        api = sys.modules["kaggle"].api = FakeKaggleApi()
        sub = rt.submit(GOOD, competition="titanic", dry_run=True)
    assert api.calls == [] and not sub.sent and sub.dry_run
    assert sub.notes == ("dry run: would call " + sub.plan,)
    assert "competition='titanic'" in sub.plan and "submission.csv via portarun" in sub.plan


def test_token_file_counts_as_credentials(tmp_path):
    root = tmp_path / "host"
    (root / "home/user/.kaggle").mkdir(parents=True)
    (root / "home/user/.kaggle/kaggle.json").write_text('{"username": "u", "key": "k"}')
    (root / "data/titanic").mkdir(parents=True)
    (root / "data/titanic/sample_submission.csv").write_text(SAMPLE)
    with simulate("local", root=root, modules=["kaggle"]) as rt:
        api = sys.modules["kaggle"].api = FakeKaggleApi()
        assert rt.submit(GOOD, competition="titanic").sent and len(api.calls) == 1


def test_missing_credentials_say_how_to_fix(tmp_path):
    with local_host(tmp_path, modules=["kaggle"]) as rt:
        sys.modules["kaggle"].api = FakeKaggleApi()
        with pytest.raises(SubmissionError) as info:
            rt.submit(GOOD, competition="titanic", dry_run=True)
    assert info.value.kinds == ("kaggle_credentials",)
    assert "KAGGLE_API_TOKEN" in str(info.value) and "Settings" in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("kaggle") is not None, reason="the real kaggle package is installed here")
def test_missing_package_says_how_to_fix(tmp_path):
    with local_host(tmp_path, env=CREDS) as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit(GOOD, competition="titanic")
    assert info.value.kinds == ("kaggle_package",) and "pip install kaggle" in str(info.value)


def test_rejected_credentials_are_reported_without_exiting(tmp_path):
    with local_host(tmp_path, env=CREDS) as rt:
        # the real package calls exit(1) on import when authentication fails
        sys.meta_path.insert(0, _ExitingFinder())
        try:
            with pytest.raises(SubmissionError) as info:
                rt.submit(GOOD, competition="titanic")
        finally:
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ExitingFinder)]
            sys.modules.pop("kaggle", None)
    assert info.value.kinds == ("kaggle_credentials",) and "SystemExit" in str(info.value)


class _ExitingFinder:
    """An importable ``kaggle`` whose import exits, as the real one does without credentials."""

    def find_spec(self, name, path=None, target=None):
        if name != "kaggle":
            return None
        import importlib.machinery

        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise SystemExit(1)


# -- the hook ------------------------------------------------------------------------------
class UploadingProvider:
    """A third-party delivery: takes over portarun_submit for its own host."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    @portarun.hookimpl
    def portarun_submit(self, runtime, path, options):
        self.paths.append(path)
        return Submission(path=path, rows=options["rows"], columns=options["columns"], sample=options["sample"],
                          reordered=options["reordered"], sent=True, notes=("uploaded by plugin",))


def test_a_plugin_overrides_delivery(tmp_path):
    hook = UploadingProvider()
    with plugin(hook), kaggle_host(tmp_path) as rt:
        sub = rt.submit(GOOD, competition="titanic")
    assert sub.notes == ("uploaded by plugin",) and hook.paths == [sub.path]
    assert sub.path.read_text().startswith("PassengerId,Survived")


def test_remote_output_is_uploaded(tmp_path, s3):
    url = f"s3://{s3.test_bucket}/out"
    with local_host(tmp_path, env={"PORTARUN_OUTPUT_DIR": url}) as rt:
        sub = rt.submit(GOOD)
    assert sub.uploaded_to == f"{url}/submission.csv"
    assert s3.cat_file(f"{s3.test_bucket}/out/submission.csv") == sub.path.read_bytes()
