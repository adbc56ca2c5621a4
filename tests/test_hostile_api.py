"""Hostile input to the data APIs a training script calls: ``rt.stage``/``rt.dataset``,
``Checkpointer``, ``rt.dataloader``, ``rt.submit``, ``rt.secret``. Each case was first seen
failing (a traceback from inside a library, a leaked credential, a misleading error or silently
lost data) and must now give a clear ``PortarunError`` or keep the data. Real files, real torch
on CPU, a real HTTP refusal on loopback; hosts are simulated at the probe."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from portarun.checkpoint import Checkpointer, training_state
from portarun.checkpoint.training import ResumeResult
from portarun.errors import (
    CheckpointError,
    CorruptCheckpointError,
    DatasetError,
    IntegrationError,
    LoaderError,
    PortarunWarning,
    SecretNotFoundError,
    StagingError,
    SubmissionError,
)
from portarun.integrations import tracking
from portarun.integrations.tracking import tensorboard_writer, tracker_run_id
from portarun.testing import simulate


# -- staging and datasets ---------------------------------------------------------------------
@pytest.mark.parametrize("call", ["stage", "stage_out", "dataset"])
def test_an_unknown_protocol_is_a_staging_error_naming_it(tmp_path: Path, call: str) -> None:
    (tmp_path / "host" / "data").mkdir(parents=True)
    with simulate("local", root=tmp_path / "host") as rt:
        args = {"stage": ("foo://bucket/data",), "dataset": ("foo://bucket/data",),
                "stage_out": (str(tmp_path / "host" / "data"), "foo://bucket/out")}[call]
        with pytest.raises(StagingError, match="'foo'.*protocol|protocol.*'foo'") as caught:
            getattr(rt, call)(*args)
    assert "pip install" in str(caught.value) or "known" in str(caught.value)


@pytest.mark.parametrize("url", ["s3://AKIAEXAMPLE:wJalrXUtnFEMI0K7MDENG@bucket/data",
                                 "http://someone:wJalrXUtnFEMI0K7MDENG@127.0.0.1:1/data"])
def test_a_refused_remote_source_is_a_staging_error_without_its_credentials(tmp_path: Path, url: str) -> None:
    """s3fs passes ``key:secret@bucket`` to botocore as the bucket name, and botocore's error
    quotes it without the ``s3://`` that masking looks for; aiohttp's connection error is raised
    from deep inside. Both must come out as a StagingError that holds neither secret."""
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(StagingError) as caught:
            rt.stage(url, storage_options={"anon": True} if url.startswith("s3") else None)
    error = caught.value
    for text in (str(error), repr(error.args), repr(error.__cause__), repr(error.__context__)):
        assert "wJalrXUtnFEMI0K7MDENG" not in text
        assert "AKIAEXAMPLE" not in text
    assert "Check" in str(error)


# -- checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize("fresh_process", [False, True])
def test_a_step_below_the_newest_checkpoint_is_refused_not_rotated_away(tmp_path: Path, fresh_process: bool) -> None:
    """A run started again from step 0 in a folder that holds a later run's checkpoints: its
    save used to be published and deleted by rotation at once (keep_last keeps the highest
    steps), while save() returned its name and resume() kept picking the old run."""
    ck = Checkpointer(tmp_path / "ck", keep_last=2, mode="blocking")
    ck.save({"w": torch.ones(2)}, step=10)
    ck.save({"w": torch.ones(2) * 2}, step=20)
    if fresh_process:
        ck.close()
        ck = Checkpointer(tmp_path / "ck", keep_last=2, mode="blocking")
    with pytest.raises(CheckpointError, match="step 5 .*below.*step 20") as caught:
        ck.save({"w": torch.zeros(2)}, step=5)
    assert "resume" in str(caught.value) and "another folder" in str(caught.value)
    assert [i.step for i in ck.list()] == [10, 20]
    assert ck.load()["w"].tolist() == [2.0, 2.0]
    assert ck.save({"w": torch.ones(2) * 3}, step=20) is not None  # the same step again is still fine
    ck.close()


def _no_device(kind: str) -> bool:
    return kind.startswith("cuda") and not torch.cuda.is_available()


@pytest.mark.parametrize(("call", "map_location"), [
    *((call, where) for call in ("load", "resume") for where in ("cuda", "cuda:7", "nonsense", 5, object())),
    ("resume", "meta"),  # load() onto 'meta' is a valid way to look at shapes
])
def test_an_unusable_map_location_is_refused_not_called_corruption(tmp_path: Path, call: str,
                                                                   map_location: object) -> None:
    """A map_location this machine cannot serve used to make every intact checkpoint look
    corrupt ("Move them away to start fresh"), or, for 'meta', to fail inside load_state_dict."""
    if isinstance(map_location, str) and map_location.startswith("cuda") and not _no_device(map_location):
        pytest.skip("this machine has CUDA: 'cuda' is a usable map_location here")
    model = torch.nn.Linear(3, 2)
    ck = Checkpointer(tmp_path, mode="blocking")
    ck.save(training_state(model), step=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="map_location") as caught:
        if call == "load":
            ck.load(map_location=map_location)
        else:
            ck.resume(model, map_location=map_location)
    assert not isinstance(caught.value, CorruptCheckpointError)
    assert "Move them away" not in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ck.resume(model) == 4  # the checkpoint was fine all along


@pytest.mark.parametrize("root", [None, 5, "", "foo://bucket/run"])
def test_a_checkpoint_root_that_is_no_folder_is_refused_at_once(tmp_path: Path, root: object,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``Checkpointer(None)`` used to save into a folder named ``None`` in the working folder,
    ``""`` into the working folder itself, and an unknown protocol raised fsspec's ValueError."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="folder|protocol"):
        Checkpointer(root)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options", [{"grace": -1}, {"grace": float("nan")}, {"grace": float("inf")},
                                     {"keep_best": 1, "best_metric": 5}])
def test_out_of_range_checkpointer_options_are_refused(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(CheckpointError, match="grace|best_metric"):
        Checkpointer(tmp_path, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("step", [None, -1, 2.0, "3"])
def test_maybe_save_checks_its_step_at_every_call(tmp_path: Path, step: object) -> None:
    """A bad step used to pass silently while no rule fired (-1) or raise a TypeError from
    inside the save policy (None)."""
    ck = Checkpointer(tmp_path, every_steps=1000, mode="blocking")
    with pytest.raises(CheckpointError, match="step must be an integer"):
        ck.maybe_save(lambda: {"w": 1}, step)  # type: ignore[arg-type]


def test_maybe_save_wants_a_function_not_the_state(tmp_path: Path) -> None:
    """Passing the state itself used to pass silently until the first save step, then raise
    ``'dict' object is not callable`` from inside."""
    ck = Checkpointer(tmp_path, every_steps=2, mode="blocking")
    with pytest.raises(CheckpointError, match="function") as caught:
        ck.maybe_save({"w": torch.ones(1)}, 1)  # type: ignore[arg-type]
    assert "lambda" in str(caught.value)
    assert ck.list() == []


def test_a_state_nested_too_deep_to_pickle_is_refused_at_save(tmp_path: Path) -> None:
    state: object = 1
    for _ in range(5000):
        state = [state]
    ck = Checkpointer(tmp_path, mode="blocking")
    with pytest.raises(CheckpointError, match="cannot be pickled"):
        ck.save(state, step=1)
    assert ck.list() == []


# -- data loading -----------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "4", float("nan")])
def test_a_batch_size_that_is_not_a_positive_integer_is_named(tmp_path: Path, batch_size: object) -> None:
    """0 and -1 used to be reported as "the dataset is empty"; 2.5, True and "4" raised
    TypeErrors from portarun's batch measurement or torch's sampler."""
    dataset = TensorDataset(torch.randn(20, 3))
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(LoaderError, match="batch_size") as caught:
            rt.dataloader(dataset, batch_size=batch_size)  # type: ignore[arg-type]
    assert "empty" not in str(caught.value)


class _BrokenSample(Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> object:
        raise KeyError(f"no sample {index}")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes (add_note) are Python 3.11+")
def test_an_error_in_the_dataset_while_planning_says_where_it_came_from(tmp_path: Path) -> None:
    """The dataset's own error is the user's to see (not replaced), with a note that portarun
    was reading one batch to plan the loader and that batch_bytes= skips that."""
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(KeyError, match="no sample 0") as caught:
            rt.dataloader(_BrokenSample(), batch_size=4)
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "batch_bytes=" in notes and "one batch" in notes


# -- submissions ------------------------------------------------------------------------------
SAMPLE = "id,label\n1,a\n2,b\n3,c\n"


def _local(tmp_path: Path, sample: bool = True) -> Any:
    root = tmp_path / "host"
    (root / "data").mkdir(parents=True)
    if sample:
        (root / "data" / "sample_submission.csv").write_text(SAMPLE)
    return simulate("local", root=root)


@pytest.mark.parametrize("case", ["cell, against the sample", "cell, no sample", "header, no sample"])
def test_text_that_is_not_valid_unicode_is_refused_before_writing(tmp_path: Path, case: str) -> None:
    """A lone surrogate (a file name listed with surrogateescape, say) used to pass the checks
    and raise UnicodeEncodeError from the CSV writer."""
    bad = "img_\udcff.png"
    data = {"id": [1, 2, 3], bad: ["a", "b", "c"]} if case.startswith("header") else {"id": [1, 2, 3],
                                                                                   "label": ["a", bad, "c"]}
    sample = "against" in case
    with _local(tmp_path, sample) as rt:
        with pytest.warns(PortarunWarning) if not sample else contextlib.nullcontext():
            with pytest.raises(SubmissionError, match="UTF-8") as caught:
                rt.submit(data)
        assert not (Path(rt.paths.output) / "submission.csv").exists()
    assert caught.value.kinds == ("encoding",)
    assert ("row 1" in str(caught.value)) == case.startswith("cell")


def test_a_dataframe_with_two_header_levels_is_refused_not_written_as_a_data_row(tmp_path: Path) -> None:
    """to_csv writes MultiIndex columns as two header lines: without a sample the second one
    used to become the first row of the submission."""
    import pandas as pd

    frame = pd.DataFrame([[1, 0.5], [2, 0.5]], columns=pd.MultiIndex.from_tuples([("id", "a"), ("target", "b")]))
    with _local(tmp_path, sample=False) as rt:
        with pytest.raises(SubmissionError, match="levels") as caught:
            rt.submit(frame)
        assert not (Path(rt.paths.output) / "submission.csv").exists()
    assert caught.value.kinds == ("columns",)


@pytest.mark.parametrize("column", ["numpy", "torch"])
def test_a_two_dimensional_column_is_refused_not_written_as_list_text(tmp_path: Path, column: str) -> None:
    import numpy as np

    values = np.zeros((3, 2)) if column == "numpy" else torch.zeros(3, 2)
    with _local(tmp_path, sample=False) as rt:
        with pytest.raises(SubmissionError, match=r"shape|2-D|one value per row"):
            rt.submit({"id": [1, 2, 3], "target": values})
        assert not (Path(rt.paths.output) / "submission.csv").exists()


@pytest.mark.parametrize("filename", [None, 5])
def test_a_filename_of_another_type_is_a_submission_error(tmp_path: Path, filename: object) -> None:
    with _local(tmp_path) as rt:
        with pytest.raises(SubmissionError, match="filename"):
            rt.submit({"id": [1, 2, 3], "target": [0.1, 0.2, 0.3]}, filename=filename)  # type: ignore[arg-type]


@pytest.mark.parametrize("call", ["dataset", "stage", "stage_out"])
def test_an_empty_reference_is_refused_not_read_as_the_working_folder(tmp_path: Path, call: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``rt.stage("")`` used to copy the whole working folder (a project checkout, a virtual
    environment) and ``rt.dataset("")`` to return the working folder."""
    work = tmp_path / "work"
    (work / "big").mkdir(parents=True)
    (work / "big" / "file").write_bytes(b"x" * 1000)
    monkeypatch.chdir(work)
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(DatasetError if call == "dataset" else StagingError, match="empty"):
            getattr(rt, call)("")
        copies = [p for p in (tmp_path / "host").rglob("file")]
    assert copies == []


def test_a_reference_too_long_for_a_path_is_a_dataset_error(tmp_path: Path) -> None:
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(DatasetError) as caught:
            rt.dataset("a" * 5000)
    assert len(str(caught.value)) < 1000


# -- secrets ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["API\nTOKEN=forged", "API\x00TOKEN", "A" * 10_000, "TOKEN\x1b[2J"])
def test_a_secret_name_with_control_characters_or_10k_long_stays_one_short_line(tmp_path: Path, name: str) -> None:
    """The name used to be pasted raw into the advice ("export A<newline>B=..."): a forged line
    in a log, a NUL, or 30 kB of message for a 10 kB name."""
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(SecretNotFoundError) as caught:
            rt.secret(name)
    text = str(caught.value)
    assert not any(ord(c) < 32 for c in text), text[:200]
    assert len(text) < 2000


@pytest.mark.parametrize("plant", ["fifo", "dev_zero_link", "folder"])
def test_a_dotenv_that_is_not_a_regular_file_is_named_and_never_read(tmp_path: Path, plant: str) -> None:
    root = tmp_path / "host"
    root.mkdir()
    dotenv = root / ".env"
    if plant == "fifo":
        os.mkfifo(dotenv)
    elif plant == "dev_zero_link":
        dotenv.symlink_to("/dev/zero")
    else:
        dotenv.mkdir()
    with simulate("local", root=root) as rt:
        assert rt.secret("API_TOKEN", default=None) is None
        with pytest.raises(SecretNotFoundError, match="not a regular file"):
            rt.secret("API_TOKEN")


# -- integrations -----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _own_tracker_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracker ids are remembered per process: each test starts with none and leaves none."""
    monkeypatch.setattr(tracking, "_IDS", {})


@pytest.mark.parametrize("name", [None, 5, "", "a\nb"])
def test_a_tracker_name_that_is_not_a_plain_string_is_refused(name: object) -> None:
    """Such names used to be stored as they were (None, 5) and came back as 'None' and '5'
    after a resume, so the resumed session never found its run."""
    with pytest.raises(IntegrationError, match="tracker"):
        tracker_run_id(name)  # type: ignore[arg-type]


def test_saved_tracker_ids_that_are_not_strings_are_not_used_as_ids() -> None:
    """A checkpoint holding {"wandb": None} used to give the run id 'None'."""
    start = ResumeResult(3, extra={"trackers": {"t-none": None, "t-list": ["a"], "t-ok": "abc123"}})
    assert tracker_run_id("t-none", start) not in ("None", "")
    assert tracker_run_id("t-list", start) != "['a']"
    assert tracker_run_id("t-ok", start) == "abc123"
    assert len(tracker_run_id("t-plain-int", 5)) == 8  # type: ignore[arg-type]  # int(start): no saved ids


@pytest.mark.parametrize("where", ["under a file", "unknown protocol", "s3 credentials"])
def test_a_tensorboard_folder_that_cannot_be_written_is_an_integration_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("x")
    log_dir = {"under a file": str(tmp_path / "file" / "tb"), "unknown protocol": "foo://bucket/tb",
               "s3 credentials": "s3://AKIAEXAMPLE:wJalrXUtnFEMI0K7MDENG@bucket/tb"}[where]
    with pytest.raises(IntegrationError, match="TensorBoard") as caught:
        tensorboard_writer(log_dir)
    for text in (str(caught.value), repr(caught.value.__context__), repr(caught.value.__cause__)):
        assert "wJalrXUtnFEMI0K7MDENG" not in text


@pytest.mark.parametrize("start", [-1, 2.5, "3"])
def test_a_tensorboard_start_that_is_not_a_step_is_refused(tmp_path: Path, start: object) -> None:
    """-1 made purge_step 0, hiding every event already logged in the folder."""
    with pytest.raises(IntegrationError, match="start"):
        tensorboard_writer(str(tmp_path / "tb"), start)  # type: ignore[arg-type]
    assert not (tmp_path / "tb").exists()


_FULL_STAGE = """
import json, os, sys, warnings
from pathlib import Path
from portarun import staging
from portarun.errors import StagingError
src = Path(sys.argv[2])
try:
    staging.transfer(src, Path(sys.argv[1]) / "copy")
    error = None
except StagingError as exc:
    error = str(exc)
print(json.dumps({"error": error, "entries": sorted(p.name for p in Path(sys.argv[1]).rglob("*"))}))
"""


def test_staging_onto_a_full_disk_says_so_instead_of_run_again(tmp_path: Path) -> None:
    """On a real 1 MiB tmpfs (root and unshare only). The error used to list ENOSPC per file and
    end with "run the same call again to resume", which cannot help while the disk is full."""
    import json
    import shutil
    import subprocess

    if not shutil.which("unshare") or os.geteuid() != 0 or subprocess.run(
            ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root and unshare")
    src = tmp_path / "data"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.bin").write_bytes(os.urandom(300_000))
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    command = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1" && exec "$2" -c "$3" "$1" "$4"',
               "sh", str(mountpoint), sys.executable, _FULL_STAGE, str(src)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] and "disk is full" in result["error"] and "free space" in result["error"]
    assert not [name for name in result["entries"] if name.endswith(".portarun-part")]  # no half file left


_SWAPPER = """
import os, sys, time
state, good, evil = sys.argv[1:4]
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    for make, source in ((os.link, good), (os.symlink, evil)):
        tmp = state + ".swap"
        if os.path.lexists(tmp):  # rename() between two links to one file does nothing
            os.unlink(tmp)
        make(source, tmp)
        os.replace(tmp, state)
"""


@pytest.mark.parametrize("weights_only", [True, False])
def test_state_pt_swapped_for_a_link_while_loading_is_never_loaded(tmp_path: Path, weights_only: bool) -> None:
    """Another process keeps replacing ``state.pt`` by a link to another torch file and back,
    as fast as it can. The file whose CRC-32 was checked must be the one unpickled: before, the
    check read the regular file and ``torch.load`` then opened the path again, following the
    link swapped in meanwhile (with ``weights_only=False`` that is running unchecked code)."""
    import subprocess

    ck = Checkpointer(tmp_path / "ck", mode="blocking")
    ck.save({"w": torch.ones(64)}, step=1)
    state = tmp_path / "ck" / "step-000000001" / "state.pt"
    good, evil = tmp_path / "good.pt", tmp_path / "evil.pt"
    os.link(state, good)
    torch.save({"w": torch.full((64,), 666.0)}, evil)
    swapper = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(state), str(good), str(evil), "4"])
    loaded = refused = 0
    try:
        while swapper.poll() is None:
            try:
                value = ck.load(step=1, weights_only=weights_only)["w"]
            except CorruptCheckpointError:
                refused += 1
                continue
            loaded += 1
            assert torch.equal(value, torch.ones(64)), "loaded a file other than the one checked"
    finally:
        swapper.kill()
        swapper.wait()
    assert loaded and refused  # both states of the swap were met


@pytest.mark.parametrize("call", ["training_state", "resume"])
def test_a_state_dict_passed_as_the_model_is_named(tmp_path: Path, call: str) -> None:
    """Passing ``model.state_dict()`` (or any object without ``state_dict``) where the module
    belongs used to raise AttributeError from inside training_state or resume's fit check."""
    model = torch.nn.Linear(2, 2)
    ck = Checkpointer(tmp_path, mode="blocking")
    ck.save(training_state(model), step=1)
    with pytest.raises(CheckpointError, match="model.*state_dict") as caught:
        if call == "training_state":
            training_state(model.state_dict())
        else:
            ck.resume(model.state_dict())
    assert "dict" in str(caught.value)


@pytest.mark.parametrize("accumulated", [-1, 2.5, True, "1"])
def test_an_accumulated_count_that_is_not_a_count_is_refused(accumulated: object) -> None:
    """-1 and 2.5 used to be stored as they were and come back from resume() as the count."""
    model = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="accumulated"):
        training_state(model, accumulated=accumulated)  # type: ignore[arg-type]


@pytest.mark.parametrize("content", ["HF_TOKEN=hf_supersecretvalue123\nWANDB_API_KEY=wb_supersecretvalue123\n",
                                     "id,label\nAWS_SECRET_ACCESS_KEY=supersecretvalue123,a\n2,b\n3,c\n"])
def test_a_secrets_file_passed_as_the_submission_keeps_its_values_out_of_the_error(tmp_path: Path,
                                                                                  content: str) -> None:
    """``rt.submit(".env")`` (or ``/proc/self/environ``): the error quoted the header and cells
    it found, credentials included."""
    data = tmp_path / "oops.env"
    data.write_text(content)
    with _local(tmp_path) as rt:
        with pytest.raises(SubmissionError) as caught:
            rt.submit(data)
    for text in (str(caught.value), repr(caught.value.args), repr(caught.value.problems)):
        assert "supersecretvalue123" not in text
    assert "***" in str(caught.value)


@pytest.mark.parametrize("planted", ["checkpoint_5", "checkpoint_0007"])
def test_accelerate_resume_falls_back_past_a_torn_or_misnamed_checkpoint(tmp_path: Path, planted: str) -> None:
    """An empty ``checkpoint_5`` is what a process killed inside ``save_state()`` leaves; it
    made every later resume_state() fail with accelerate's FileNotFoundError. ``checkpoint_0007``
    was looked for as ``checkpoint_7``."""
    pytest.importorskip("accelerate")
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    from portarun.integrations.accelerate import resume_state

    def accelerator() -> tuple[Any, torch.nn.Module]:
        made = Accelerator(cpu=True, project_config=ProjectConfiguration(project_dir=str(tmp_path),
                                                                         automatic_checkpoint_naming=True))
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        return made, made.prepare(model)

    first, model = accelerator()
    with torch.no_grad():
        model.weight.fill_(3.0)
    first.save_state()  # checkpoint_0
    (tmp_path / "checkpoints" / planted).mkdir()
    second, fresh = accelerator()
    with pytest.warns(PortarunWarning, match=planted):
        assert resume_state(second) == 0
    assert torch.equal(fresh.weight, torch.full((2, 2), 3.0))


def test_configure_caches_with_a_file_in_the_way_sets_nothing_and_says_which(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A file named like one of the cache folders used to raise FileExistsError after the
    variables before it were already set: half the libraries moved, half not."""
    for name in ("HF_HOME", "HF_DATASETS_CACHE", "TORCH_HOME", "KAGGLEHUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    with simulate("local", root=tmp_path / "host") as rt:
        cache = Path(rt.paths.cache)
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "torch").write_text("not a folder")
        with pytest.raises(IntegrationError, match="torch") as caught:
            rt.configure_caches()
    assert "PORTARUN_CACHE_DIR" in str(caught.value)
    assert not any(os.environ.get(name) for name in ("HF_HOME", "HF_DATASETS_CACHE", "TORCH_HOME",
                                                      "KAGGLEHUB_CACHE"))


def test_has_checkpoint_counts_only_folders_the_trainer_resumes_from(tmp_path: Path) -> None:
    """``checkpoint-junk`` or ``checkpoint-3.tmp`` used to count, and
    ``train(resume_from_checkpoint=True)`` then raised "No valid checkpoint found"."""
    from portarun.integrations.huggingface import has_checkpoint, output_dir

    with simulate("local", root=tmp_path / "host") as rt:
        folder = output_dir(rt)
        for name in ("checkpoint-junk", "checkpoint-3.tmp", "checkpoint-"):
            (folder / name).mkdir(parents=True)
        (folder / "checkpoint-4").write_text("a file, not a folder")
        assert has_checkpoint(rt) is False
        (folder / "checkpoint-12").mkdir()
        assert has_checkpoint(rt) is True


def test_float_ids_of_integer_sample_ids_are_explained(tmp_path: Path) -> None:
    """A DataFrame id column that became float (a merge with NaN) writes 1.0, 2.0: the error
    listed them as missing and unexpected without saying why."""
    import pandas as pd

    with _local(tmp_path) as rt:
        with pytest.raises(SubmissionError) as caught:
            rt.submit(pd.DataFrame({"id": [1.0, 2.0, 3.0], "label": ["a", "b", "c"]}))
    assert "astype(int)" in str(caught.value) and "written as floats" in str(caught.value)


@pytest.mark.parametrize("name", ["ID", " id", "id "])
def test_a_column_name_differing_only_in_case_or_spaces_is_explained(tmp_path: Path, name: str) -> None:
    with _local(tmp_path) as rt:
        with pytest.raises(SubmissionError) as caught:
            rt.submit({name: [1, 2, 3], "label": ["a", "b", "c"]})
    assert caught.value.kinds == ("columns",)
    assert "case or surrounding spaces" in str(caught.value)


@pytest.mark.parametrize("call", ["autotune batch_size", "plan", "budget inf", "budget True"])
def test_loader_numbers_that_are_bools_or_infinite_are_refused(tmp_path: Path, call: str) -> None:
    """``True`` passed the int checks (True == 1) and reached torch's sampler; an infinite
    autotune budget was accepted as a time limit."""
    dataset = TensorDataset(torch.randn(8, 3))
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(LoaderError):
            if call == "autotune batch_size":
                rt.loader.autotune(dataset, True, budget_s=1)  # type: ignore[arg-type]
            elif call == "plan":
                rt.loader.plan(True)  # type: ignore[arg-type]
            else:
                rt.loader.autotune(dataset, 4, budget_s=float("inf") if call == "budget inf" else True)


@pytest.mark.parametrize("step", ["2", 2.0, True])
def test_load_names_a_step_that_is_not_an_integer(tmp_path: Path, step: object) -> None:
    """``load(step="2")`` used to answer "no checkpoint of step 2" while step 2 was there."""
    ck = Checkpointer(tmp_path, mode="blocking")
    ck.save({"w": 1}, step=2)
    with pytest.raises(CheckpointError, match="step must be an integer"):
        ck.load(step=step)  # type: ignore[arg-type]
    assert ck.load(step=2) == {"w": 1}


def test_a_secret_as_the_default_of_another_keeps_its_value(tmp_path: Path) -> None:
    """``rt.secret("A", default=rt.secret("B"))`` used to hand back the masked text
    "Secret('B', source='env', value=***)" as A's value."""
    with simulate("local", root=tmp_path / "host", env={"B_TOKEN": "the-real-value"}) as rt:
        fallback = rt.secret("A_TOKEN", default=rt.secret("B_TOKEN"))
    assert fallback is not None and fallback.reveal() == "the-real-value"
    assert "the-real-value" not in repr(fallback)


@pytest.mark.parametrize("src", [".", "..", "sub/..", "./"])
def test_staging_dot_or_dotdot_lands_inside_the_role_folder(tmp_path: Path, src: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy is ``<role>/<name of src>``: for ``..`` that was ``<role>/..``, the folder above
    the role (``/kaggle`` for ``/kaggle/temp``), and for ``.`` the role folder itself."""
    work = tmp_path / "work" / "here"
    (work / "sub").mkdir(parents=True)
    (work / "sub" / "f.txt").write_text("f")
    monkeypatch.chdir(work)
    with simulate("local", root=tmp_path / "host") as rt:
        scratch = Path(rt.paths.scratch).resolve()
        result = rt.stage(src)
    landed = Path(result.path).resolve()
    assert landed.parent == scratch and landed.name in ("here", "work")
    assert list(landed.rglob("f.txt"))


@pytest.mark.parametrize("call", ["list", "latest", "load", "resume", "save"])
def test_checkpoints_in_a_bucket_url_with_credentials_never_show_them(call: str) -> None:
    """``PORTARUN_CHECKPOINTS_DIR=s3://key:secret@bucket/run``: s3fs hands ``key:secret@bucket``
    to botocore as the bucket name, whose error came out of every call, credentials and all."""
    ck = Checkpointer("s3://AKIAEXAMPLE:wJalrXUtnFEMI0K7MDENG@bucket/run", storage_options={"anon": True},
                      mode="blocking")
    with pytest.raises(CheckpointError) as caught:
        if call == "save":
            ck.save({"w": 1}, step=1)
        else:
            getattr(ck, call)()
    error = caught.value
    for text in (str(error), repr(error.args), repr(error.__cause__), repr(error.__context__)):
        assert "wJalrXUtnFEMI0K7MDENG" not in text and "AKIAEXAMPLE" not in text
    assert "s3://***@bucket/run" in str(error)


def test_a_failed_upload_to_a_bucket_url_with_credentials_never_shows_them(tmp_path: Path) -> None:
    """``PORTARUN_OUTPUT_DIR=s3://key:secret@bucket/out``: botocore's error quoted the bucket
    name with the credentials in it, and the SubmissionError passed it on."""
    root = tmp_path / "host"
    env = {"PORTARUN_OUTPUT_DIR": "s3://AKIAEXAMPLE:wJalrXUtnFEMI0K7MDENG@bucket/out",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with simulate("local", root=root, env=env) as rt:
        with pytest.warns(PortarunWarning):
            with pytest.raises(SubmissionError) as caught:
                rt.submit({"id": [1], "target": [0.5]})
    error = caught.value
    for text in (str(error), repr(error.args), repr(error.__cause__), repr(error.__context__)):
        assert "wJalrXUtnFEMI0K7MDENG" not in text and "AKIAEXAMPLE" not in text
    assert error.kinds == ("upload",) and "s3://***@bucket/out" in str(error)


def test_a_metric_too_large_for_a_float_is_refused_like_infinity(tmp_path: Path) -> None:
    """``10**400`` raised OverflowError from inside the metric check."""
    ck = Checkpointer(tmp_path, mode="blocking")
    with pytest.raises(CheckpointError, match="finite number"):
        ck.save({"w": 1}, step=1, metrics={"loss": 10**400})
    assert ck.list() == []


@pytest.mark.parametrize("extra", [[1, 2], "abc", 5])
def test_training_state_extra_that_is_not_a_dict_is_named(extra: object) -> None:
    """It raised dict()'s TypeError or ValueError from inside."""
    with pytest.raises(CheckpointError, match="extra"):
        training_state(extra=extra)  # type: ignore[arg-type]


_FIFO_SWAPPER = """
import os, sys, time
target, good = sys.argv[1:3]
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    tmp = target + ".swap"
    os.mkfifo(tmp)
    os.replace(tmp, target)
    os.link(good, tmp)
    os.replace(tmp, target)
"""

_SUBMIT_LOOP = """
import sys, time, warnings
from pathlib import Path
from portarun.errors import SubmissionError
from portarun.testing import simulate
warnings.simplefilter("ignore")
end = time.monotonic() + float(sys.argv[3])
read = refused = 0
with simulate("local", root=Path(sys.argv[1])) as rt:
    while time.monotonic() < end:
        try:
            rt.submit(sys.argv[2])
            read += 1
        except SubmissionError:
            refused += 1
print(read, refused)
"""


def test_a_data_file_swapped_for_a_fifo_never_blocks_the_submission(tmp_path: Path) -> None:
    """Another process keeps replacing the CSV by a FIFO and back. The check that it is a
    regular file came before opening it by name, so an open in between blocked forever on the
    FIFO, which nobody writes. A run of 3 s must end."""
    import subprocess

    good = tmp_path / "good.csv"
    good.write_text("id,target\n1,0.5\n2,0.5\n")
    target = tmp_path / "predictions.csv"
    os.link(good, target)
    (tmp_path / "host").mkdir()
    swapper = subprocess.Popen([sys.executable, "-c", _FIFO_SWAPPER, str(target), str(good), "4"])
    try:
        out = subprocess.run([sys.executable, "-c", _SUBMIT_LOOP, str(tmp_path / "host"), str(target), "3"],
                             capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("rt.submit blocked on a FIFO swapped in for the data file")
    finally:
        swapper.kill()
        swapper.wait()
    assert out.returncode == 0, out.stderr
    read, refused = map(int, out.stdout.split())
    assert read and refused


@pytest.mark.parametrize("plant", ["link", "fifo"])
def test_a_link_or_fifo_planted_as_a_part_file_is_never_written_through(tmp_path: Path, plant: str) -> None:
    """Each file is written to ``.<name>.portarun-part`` in the destination and renamed. A link
    planted under that name was followed (the copy landed in the link's target, outside the
    destination, and the link itself was then renamed into place); a FIFO blocked the copy."""
    import subprocess

    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_text("fresh data")
    dest = tmp_path / "copy"
    dest.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    part = dest / ".a.txt.portarun-part"
    if plant == "link":
        part.symlink_to(victim)
    else:
        os.mkfifo(part)
    script = "import sys; from portarun import staging; staging.transfer(sys.argv[1], sys.argv[2])"
    try:
        out = subprocess.run([sys.executable, "-c", script, str(src), str(dest)], capture_output=True, text=True,
                             timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("staging blocked on a FIFO planted as its part file")
    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "do not touch"
    assert not (dest / "a.txt").is_symlink() and (dest / "a.txt").read_text() == "fresh data"
    assert not part.exists() and not part.is_symlink()


_STAGE_LOOP = """
import shutil, sys, time, warnings
from portarun import staging
from portarun.errors import StagingError
warnings.simplefilter("ignore")
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    shutil.rmtree(sys.argv[2], ignore_errors=True)
    try:
        staging.transfer(sys.argv[1], sys.argv[2])
    except StagingError:
        pass
print("ended")
"""


def test_a_source_file_swapped_for_a_fifo_never_blocks_staging(tmp_path: Path) -> None:
    """Listing skips FIFOs, but a file replaced by one after the listing was opened by name
    and the copy blocked forever. A run of 3 s must end."""
    import subprocess

    src = tmp_path / "data"
    src.mkdir()
    good = tmp_path / "good.bin"
    good.write_bytes(b"x" * 1000)
    os.link(good, src / "f.bin")
    swapper = subprocess.Popen([sys.executable, "-c", _FIFO_SWAPPER, str(src / "f.bin"), str(good), "4"])
    try:
        out = subprocess.run([sys.executable, "-c", _STAGE_LOOP, str(src), str(tmp_path / "copy"), "3"],
                             capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("staging blocked on a FIFO swapped in for a source file")
    finally:
        swapper.kill()
        swapper.wait()
    assert out.returncode == 0 and "ended" in out.stdout, out.stderr


@pytest.mark.parametrize("other", ["a shorter dataset", "no shuffling", "another batch size"])
def test_a_loader_state_that_does_not_fit_the_loader_is_refused_before_the_model_changes(
        tmp_path: Path, other: str) -> None:
    """torchdata applies the saved place at the next iter(): it raised StopIteration (shorter
    dataset) or a bare AssertionError (another sampler) there, deep in the training loop, after
    resume() had overwritten the model; another batch size silently skipped other samples."""
    pytest.importorskip("torchdata")
    model = torch.nn.Linear(2, 2)
    with simulate("local", root=tmp_path / "host") as rt:
        saved_loader = rt.dataloader(TensorDataset(torch.arange(100.0)), batch_size=10, shuffle=True)
        batches = iter(saved_loader)
        for _ in range(3):
            next(batches)
        ck = Checkpointer(tmp_path / "ck", mode="blocking")
        ck.save(training_state(model, loader=saved_loader), step=3)
        fresh = torch.nn.Linear(2, 2)
        before = {k: v.clone() for k, v in fresh.state_dict().items()}
        options = {"a shorter dataset": (10, 10, True), "no shuffling": (100, 10, False),
                   "another batch size": (100, 7, True)}[other]
        loader = rt.dataloader(TensorDataset(torch.arange(float(options[0]))), batch_size=options[1],
                               shuffle=options[2])
        with pytest.raises(CheckpointError, match="loader") as caught:
            ck.resume(fresh, loader=loader)
    assert "dataset" in str(caught.value) and "shuffle" in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())


def test_cutting_credentials_keeps_a_message_readable() -> None:
    """A one-letter user name used to turn every such letter of the library's message into ***;
    the whole ``user:password`` and every long part still go."""
    from portarun.staging import without_credentials

    text = without_credentials("cannot connect to u:pw@host as user u with wJalrXUtnFEMI0K7MDENG",
                               "http://u:pw@host/x", "s3://AKIAEXAMPLE:wJalrXUtnFEMI0K7MDENG@b/y")
    assert text == "cannot connect to ***@host as user u with ***"


_SECRET_LOOKUP = """
import sys
from pathlib import Path
from portarun.errors import SecretsFileError
from portarun.testing import simulate
with simulate("local", root=Path(sys.argv[1])) as rt:
    try:
        rt.secret("API_TOKEN", default=None)
        print("no error")
    except SecretsFileError as exc:
        print(exc)
"""


def test_a_dotenv_line_of_nested_expansions_is_refused_not_parsed_for_hours(tmp_path: Path) -> None:
    """python-dotenv expands ``${VAR}`` with a regex that, for each ``${`` on a line without a
    closing brace, scans to the end of the line: 100,000 of them (200 kB, well under the 1 MiB
    cap) took minutes, a 1 MiB line hours. The lookup must end at once, naming the line."""
    import subprocess

    root = tmp_path / "host"
    root.mkdir()
    (root / ".env").write_text("API_TOKEN=abc\nOTHER=" + "${" * 100_000 + "\n")
    try:
        out = subprocess.run([sys.executable, "-c", _SECRET_LOOKUP, str(root)], capture_output=True, text=True,
                             timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("rt.secret spent over 30 s parsing a 200 kB .env")
    assert out.returncode == 0, out.stderr
    assert "line 2" in out.stdout and "abc" not in out.stdout


def test_resuming_into_another_kind_of_optimizer_is_refused(tmp_path: Path) -> None:
    """An SGD checkpoint resumed into Adam loaded without a word, and Adam's first step() then
    failed with KeyError: 'step' from inside torch."""
    model = torch.nn.Linear(2, 2)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(3, 2)).sum().backward()
    sgd.step()
    ck = Checkpointer(tmp_path, mode="blocking")
    ck.save(training_state(model, sgd), step=1)
    fresh = torch.nn.Linear(2, 2)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointError, match="SGD.*Adam|Adam.*SGD"):
        ck.resume(fresh, torch.optim.Adam(fresh.parameters()))
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())
    assert ck.resume(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)) == 1


def test_series_with_different_indexes_are_not_paired_silently(tmp_path: Path) -> None:
    """pandas pairs the Series of ``{"id": ids, "label": preds}`` by index, portarun paired them
    by position: predictions sorted by another column were written against the wrong ids."""
    import pandas as pd

    ids = pd.Series([1, 2, 3])
    preds = pd.Series(["c", "a", "b"], index=[2, 0, 1])  # "a" belongs to id 1 (index 0)
    with _local(tmp_path) as rt:
        with pytest.raises(SubmissionError, match="index") as caught:
            rt.submit({"id": ids, "label": preds})
        assert not (Path(rt.paths.output) / "submission.csv").exists()
        assert caught.value.kinds == ("input",)
        sub = rt.submit({"id": ids, "label": preds.sort_index()})  # the same index: paired as pandas would
        assert Path(sub.path).read_text() == "id,label\n1,a\n2,b\n3,c\n"
