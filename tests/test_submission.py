"""rt.submit: validation against the sample, atomic writes to each host's place, delivery
through the portarun_submit hook (Kaggle API stand-in at the package boundary, Colab download)."""
from __future__ import annotations

import importlib.util
import os
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
    ("duplicate id", lambda tmp: {"PassengerId": [892, 893, 893, 895], "Survived": [0, 1, 1, 0]}, {},
     "duplicate_ids"),
    ("id not in sample", lambda tmp: {"PassengerId": [892, 893, 894, 999], "Survived": [0, 1, 1, 0]}, {},
     "missing_ids"),
    ("NaN", lambda tmp: pd.DataFrame({"PassengerId": IDS, "Survived": [0, np.nan, 1, 0]}), {}, "missing_values"),
    ("None in dict", lambda tmp: {"PassengerId": IDS, "Survived": [0, None, 1, 0]}, {}, "missing_values"),
    ("pd.NA in a dict of Series", lambda tmp: {"PassengerId": pd.Series(IDS),
                                               "Survived": pd.Series([0, None, 1, 0], dtype="Int64")}, {},
     "missing_values"),
    ("NaT in rows", lambda tmp: [{"PassengerId": i, "Survived": pd.NaT if i == 893 else 0} for i in IDS], {},
     "missing_values"),
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
        for bad in (float("inf"), "-Infinity", " NaN", "1e999"):
            with pytest.raises(SubmissionError) as info:
                rt.submit({"id": [1, 2], "pred": [0.5, bad]}, "other.csv")
            assert info.value.kinds == ("non_finite",), bad
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


# -- cost: linear in the number of rows ------------------------------------------------------
class CountedId(str):
    """An id cell that counts how often it is hashed: every set or dict it enters, every lookup."""

    hashes = 0

    def __hash__(self) -> int:
        CountedId.hashes += 1
        return str.__hash__(self)


def _hashes_per_row(n: int, shuffle: bool, problem: str | None = None) -> float:
    import random

    from portarun.submission import Table, validate

    sample_ids = [CountedId(i) for i in range(n)]
    ids = [CountedId(i) for i in range(n)]
    if shuffle:
        random.Random(n).shuffle(ids)
    if problem == "missing":
        ids[0] = CountedId("not-an-id")
    elif problem == "duplicate":
        ids[0] = CountedId(ids[1])
    sample = Table(("id", "target"), (sample_ids, ["0.5"] * n))
    table = Table(("id", "target"), (ids, [repr(i / n) for i in range(n)]))
    CountedId.hashes = 0
    checked, reordered, problems = validate(table, sample)
    assert bool(problems) == (problem is not None) and reordered == (shuffle and problem is None)
    if reordered:
        assert list(checked.columns[0]) == sample_ids
    return CountedId.hashes / n


@pytest.mark.parametrize("shuffle, problem", [(True, None), (False, None), (True, "missing"), (True, "duplicate")])
def test_id_checks_hash_each_id_a_bounded_number_of_times(shuffle, problem):
    """Structural proof of linear cost: the hashes per row stay the same from 1,000 to 8,000 rows
    (the old code rebuilt the sample's id set for every id: n hashes per row)."""
    small, large = _hashes_per_row(1000, shuffle, problem), _hashes_per_row(8000, shuffle, problem)
    assert large <= 6 and large <= small + 0.01, (small, large)


# -- hostile input ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, problem", [
    ("sub\0mission.csv", "control character"),
    ("sub\nmission.csv", "control character"),
    ("x" * 300 + ".csv", "longer than 255 bytes"),
    ("subs/" + "é" * 130 + ".csv", "longer than 255 bytes"),  # 264 bytes in UTF-8
])
def test_unusable_filenames_are_refused_before_anything_is_read(tmp_path, name, problem):
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError, match=problem) as info:
            rt.submit(GOOD, name)
        assert info.value.kinds == ("filename",) and written(rt) == []
    assert len(str(info.value)) < 600


def test_a_name_of_255_bytes_is_written(tmp_path):
    with kaggle_host(tmp_path) as rt:
        sub = rt.submit(GOOD, "x" * 251 + ".csv")
        assert sub.path.name == "x" * 251 + ".csv" and written(rt) == [sub.path.name]


@pytest.mark.parametrize("which", ["sample", "data"])
def test_a_file_that_is_not_utf8_names_the_byte_and_line_not_the_content(tmp_path, which):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("PassengerId,Survived\n892,0\n893,1\n894,0\n895,0 # café secret-cell\n".encode("latin-1"))
    good = tmp_path / "good.csv"
    good.write_text(SAMPLE)
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit(bad if which == "data" else GOOD, sample=bad if which == "sample" else good)
        assert written(rt) == []
    error = info.value
    assert error.kinds == ("encoding",) and "line 5" in str(error) and "0xe9" in str(error)
    assert str(bad) in str(error) and "secret-cell" not in repr(error) + repr(error.__context__)
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize("data", [
    {"PassengerId": 892, "Survived": 0},
    {"PassengerId": "892", "Survived": "0"},
    {"PassengerId": np.int64(892), "Survived": np.array(0)},
    {"PassengerId": IDS, "Survived": {"a": 1}},
])
def test_a_dict_of_scalars_says_how_to_pass_columns(tmp_path, data):
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError, match=r"not a column of values.*list of one dict") as info:
            rt.submit(data)
        assert info.value.kinds == ("input",) and written(rt) == []


def test_rows_that_are_not_sequences_are_refused(tmp_path):
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError, match="sequence of cells") as info:
            rt.submit([892, 893, 894, 895])
        assert info.value.kinds == ("input",)


def test_nul_in_a_data_path(tmp_path):
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError, match="NUL") as info:
            rt.submit(str(tmp_path / "a\0b.csv"))
        assert info.value.kinds == ("input",)


def test_bom_and_crlf_are_read_and_plain_utf8_with_lf_is_written(tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_bytes(b"\xef\xbb\xbf" + SAMPLE.replace("\n", "\r\n").encode())
    data = tmp_path / "mine.csv"
    data.write_bytes(b"\xef\xbb\xbfPassengerId,Survived\r\n895,0\r\n892,1\r\n\r\n893,1\r\n894,0\r\n")
    with kaggle_host(tmp_path) as rt:
        sub = rt.submit(data, sample=sample)
    assert sub.path.read_bytes() == b"PassengerId,Survived\n892,1\n893,1\n894,0\n895,0\n" and sub.reordered


@pytest.mark.parametrize("content, kind", [
    ("", "empty"),
    ("\n\n", "empty"),
    ("PassengerId,Survived\n", "row_count"),
])
def test_empty_submissions_are_refused(tmp_path, content, kind):
    data = tmp_path / "mine.csv"
    data.write_text(content)
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit(data)
        assert kind in info.value.kinds and written(rt) == []


def test_an_empty_sample_is_named_as_the_sample(tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_text("")
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError, match=r"the sample .*sample.csv is empty"):
            rt.submit(GOOD, sample=sample)


def test_a_header_only_submission_without_sample_is_refused(tmp_path):
    data = tmp_path / "mine.csv"
    data.write_text("id,target\n")
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit(data)
    assert info.value.kinds == ("empty",)


def test_huge_rows(tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text("PassengerId,Survived\n892,0\n893," + ",".join(["1"] * 10_000) + "\n894,1\n895,0\n")
    huge_quoted = tmp_path / "huge.csv"
    huge_quoted.write_text('PassengerId,Survived\n892,0\n893,"' + "1" * 200_000 + '"\n894,1\n895,0\n')
    with kaggle_host(tmp_path) as rt:
        with pytest.raises(SubmissionError) as info:
            rt.submit(wide)
        assert info.value.kinds == ("shape",) and "3" in str(info.value)
        with pytest.raises(SubmissionError, match="line 3") as info:
            rt.submit(huge_quoted)
        assert info.value.kinds == ("csv",)
        assert written(rt) == []


def test_quoted_cells_round_trip(tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_text('id,label\n1,"a, b"\n2,x\n3,y\n')
    labels = ['say "hi", twice', "line\nbreak", "plain"]
    with kaggle_host(tmp_path) as rt:
        sub = rt.submit({"id": [3, 1, 2], "label": labels}, sample=sample)
    import csv

    with open(sub.path, newline="") as f:
        assert list(csv.reader(f)) == [["id", "label"], ["1", labels[1]], ["2", labels[2]], ["3", labels[0]]]


@pytest.mark.parametrize("columns", [1, 3])
def test_rows_are_reordered_whatever_the_number_of_columns(tmp_path, columns):
    names = ["id", "a", "b"][:columns]
    sample = tmp_path / "sample.csv"
    sample.write_text(",".join(names) + "\n" + "".join(",".join([str(i)] + ["0"] * (columns - 1)) + "\n"
                                                       for i in range(5)))
    order = [3, 0, 4, 1, 2]
    data = {"id": order, "a": [i * 10 for i in order], "b": [i * 100 for i in order]}
    with kaggle_host(tmp_path) as rt:
        sub = rt.submit({k: data[k] for k in names}, sample=sample)
    expected = "".join(",".join(str(v) for v in [i, i * 10, i * 100][:columns]) + "\n" for i in range(5))
    assert sub.reordered and sub.path.read_text() == ",".join(names) + "\n" + expected


def test_a_sample_with_repeated_ids_checks_no_ids(tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_text("group,target\na,0\na,0\nb,0\n")
    with kaggle_host(tmp_path) as rt:
        sub = rt.submit({"group": ["b", "a", "c"], "target": [1, 2, 3]}, sample=sample)
    assert not sub.reordered and sub.checks == "sample" and sub.path.read_text().endswith("b,1\na,2\nc,3\n")


def test_a_folder_in_the_way_of_the_output(tmp_path):
    with kaggle_host(tmp_path) as rt:
        (Path(rt.paths.output) / "submission.csv").mkdir()
        with pytest.raises(SubmissionError, match="folder of that name is in the way") as info:
            rt.submit(GOOD)
        assert info.value.kinds == ("write",)
        assert (Path(rt.paths.output) / "submission.csv").is_dir()


def test_a_link_planted_at_the_output_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with kaggle_host(tmp_path) as rt:
        target = Path(rt.paths.output) / "submission.csv"
        target.symlink_to(victim)
        sub = rt.submit(GOOD)
        assert not sub.path.is_symlink() and sub.path.read_text().startswith("PassengerId,Survived\n892,")
    assert victim.read_text() == "keep me"


_ENOSPC_SCRIPT = """
import json, os, sys, warnings
from pathlib import Path
from portarun.errors import SubmissionError
from portarun.testing import simulate

sample = Path(sys.argv[2])
with simulate("local", root=Path(sys.argv[1])) as rt:  # the whole simulated machine on the tmpfs
    out = Path(rt.paths.output)
    first = rt.submit({"id": list(range(10)), "target": [0.5] * 10}, sample=sample)
    before = first.path.read_bytes()
    # fill the disk, leaving less room (8 KiB) than the next file needs (20 KB)
    stat = os.statvfs(out)
    with open(out / "filler.bin", "wb", buffering=0) as f:
        f.write(b"x" * (stat.f_bavail * stat.f_frsize - 8192))
    try:
        rt.submit({"id": list(range(10)), "target": ["0." + "7" * 2000] * 10}, sample=sample)
        error = None
    except SubmissionError as exc:
        error = {"message": str(exc), "kinds": list(exc.kinds), "type": type(exc).__mro__[1].__name__}
    print(json.dumps({"error": error, "intact": first.path.read_bytes() == before,
                      "entries": sorted(p.name for p in out.iterdir())}))
"""


def test_disk_full_keeps_the_previous_file_and_says_so(tmp_path):
    """On a real 1 MiB tmpfs in a private mount namespace (root only, like the checkpoint test)."""
    import json
    import shutil
    import subprocess

    if not shutil.which("unshare") or os.geteuid() != 0 or subprocess.run(
            ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root and unshare")
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    sample = tmp_path / "sample.csv"
    sample.write_text("id,target\n" + "".join(f"{i},0.5\n" for i in range(10)))
    command = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1" && exec "$2" -c "$3" "$1" "$4"',
               "sh", str(mountpoint), sys.executable, _ENOSPC_SCRIPT, str(sample)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"], result
    assert result["error"]["kinds"] == ["write"]
    message = result["error"]["message"]
    assert "disk is full" in message and "previous file there is intact" in message
    assert result["intact"] and result["entries"] == ["filler.bin", "submission.csv"]  # no partial file left


def test_the_garbage_collector_is_restored_after_a_submission(tmp_path):
    import gc

    assert gc.isenabled()
    with kaggle_host(tmp_path) as rt:
        rt.submit(GOOD)
        assert gc.isenabled()
        with pytest.raises(SubmissionError):
            rt.submit({"PassengerId": IDS, "Survived": [0, None, 0, 0]})
        assert gc.isenabled()
        gc.disable()
        try:
            rt.submit(GOOD)
            assert not gc.isenabled()  # left as the caller had it
        finally:
            gc.enable()


def test_a_remote_output_with_credentials_is_masked_in_the_result(tmp_path):
    import fsspec

    url = "memory://AKIAEXAMPLE:s3cr3tVALUE@bucket/out"
    with local_host(tmp_path, env={"PORTARUN_OUTPUT_DIR": url}) as rt:
        sub = rt.submit(GOOD)
    assert sub.uploaded_to == f"{url}/submission.csv"  # usable in full
    uploaded = fsspec.filesystem("memory").cat_file("/AKIAEXAMPLE:s3cr3tVALUE@bucket/out/submission.csv")
    assert uploaded == sub.path.read_bytes()
    assert "s3cr3tVALUE" not in repr(sub) and "memory://***@bucket/out/submission.csv" in repr(sub)


def test_a_failed_upload_is_a_submission_error_and_the_file_stays(tmp_path):
    url = "http://user:pw9x@127.0.0.1:9/out"  # nothing listens on the discard port
    with local_host(tmp_path, env={"PORTARUN_OUTPUT_DIR": url}) as rt:
        with pytest.raises(SubmissionError, match="could not upload") as info:
            rt.submit(GOOD)
        assert info.value.kinds[0] == "upload" and "pw9x" not in str(info.value) + repr(info.value)
        assert (Path(rt.paths.scratch) / "submissions/submission.csv").is_file()


def test_a_fifo_or_device_as_sample_or_data_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "sample_submission.csv"
    os.mkfifo(fifo)
    device = tmp_path / "zero.csv"
    device.symlink_to("/dev/zero")
    with kaggle_host(tmp_path) as rt:
        for data, sample in ((GOOD, fifo), (fifo, None), (device, None), (GOOD, device)):
            with pytest.raises(SubmissionError, match="is not a file") as info:
                rt.submit(data, sample=sample)
            assert info.value.kinds == ("input",)
        assert written(rt) == []
