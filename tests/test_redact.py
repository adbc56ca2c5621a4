"""Credentials inside locations (``s3://key:secret@bucket``, ``?token=``) are never printed,
logged or turned into names: one masking function (portarun._util.redact.shown_location), checked at
every place that shows a location. ``memory://`` stands in for a bucket (no network)."""
from __future__ import annotations

import json
import logging
import pickle
import warnings
from pathlib import Path

import fsspec
import pytest

from portarun._cli import main as cli
from portarun._util.redact import location_key, redact, shown_location
from portarun.checkpoint import Checkpointer
from portarun.errors import CheckpointError, PathError, PortarunError, PortarunWarning, StagingError
from portarun.staging import transfer
from portarun.testing import simulate

KEY, SECRET, PASSWORD = "AKIAEXAMPLE", "s3cr3tVALUE", "pw9x7Qz"
CHECKPOINTS = f"memory://{KEY}:{SECRET}@bucket/run"
PERSIST = f"memory://user:{PASSWORD}@bucket/persist"
LEAKS = (SECRET, PASSWORD, KEY)


def leaked(*texts: object) -> list[str]:
    return [str(t) for t in texts if any(s in str(t) for s in LEAKS)]


@pytest.fixture(autouse=True)
def _clean_memory_fs():
    fsspec.filesystem("memory").store.clear()
    yield
    fsspec.filesystem("memory").store.clear()


@pytest.mark.parametrize("location, shown", [
    (CHECKPOINTS, "memory://***@bucket/run"),
    ("s3://AKIAEXAMPLE:ab/cd+ef@bucket/run", "s3://***@bucket/run"),  # AWS secrets hold raw '/'
    ("memory://user:p@ss@host/x", "memory://***@host/x"),  # a raw '@' in the password
    ("ftp://user:pa#ss?w@host/x", "ftp://***@host/x"),  # a raw '#' and '?' in the password
    ("https://host/x?email=a@b.org", "https://host/x?email=a@b.org"),  # an '@' in a query is no userinfo
    ("https://ghp_token123@github.com/o/r.git", "https://***@github.com/o/r.git"),
    ("https://h/f.csv?X-Amz-Credential=AKIA%2Fx&X-Amz-Signature=abc123&v=2",
     "https://h/f.csv?X-Amz-Credential=***&X-Amz-Signature=***&v=2"),
    ("https://acct.blob.core.windows.net/c/f?sv=2022&sig=abc%3D#top", "https://acct.blob.core.windows.net/c/f?sv=2022&sig=***#top"),
    ("simplecache::s3://k:s@bucket/x", "simplecache::s3://***@bucket/x"),
    ("s3://bucket/plain/path", "s3://bucket/plain/path"),
    ("/local/user@host:path", "/local/user@host:path"),
    (Path("/tmp/a"), "/tmp/a"),
])
def test_shown_location(location, shown):
    assert shown_location(location) == shown


def test_redact_masks_urls_and_secret_assignments_in_free_text():
    text = redact(f"copy {CHECKPOINTS} failed; HF_TOKEN={SECRET} PLAIN=visible")
    assert not leaked(text) and "memory://***@bucket/run" in text and "PLAIN=visible" in text


def test_location_key_tells_credentials_apart_without_showing_them():
    other = CHECKPOINTS.replace(SECRET, "another")
    assert location_key(CHECKPOINTS) != location_key(other)
    assert location_key(CHECKPOINTS) == location_key(CHECKPOINTS) and not leaked(location_key(CHECKPOINTS))


def test_errors_and_warnings_mask_locations_in_message_args_and_pickles():
    error = PathError(f"cannot use {CHECKPOINTS}")
    assert not leaked(str(error), repr(error), error.args, pickle.loads(pickle.dumps(error)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn(f"the save to {PERSIST} failed", PortarunWarning)
    assert caught and not leaked(*(w.message for w in caught))


def test_errors_and_warnings_mask_secret_assignments_they_quote():
    """A message quoting a line of a file or an environment (a .env passed as data, say)
    shows a credential-named variable's value as ``***``; other assignments stay readable."""
    error = PortarunError("line 3 reads HF_TOKEN=hf_abcdefghijklmnop and PORTARUN_SESSION_LIMIT=12h")
    assert "hf_abcdefghijklmnop" not in str(error) + repr(error) + repr(pickle.loads(pickle.dumps(error)))
    assert "HF_TOKEN=***" in str(error) and "PORTARUN_SESSION_LIMIT=12h" in str(error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI in the environment", PortarunWarning)
    assert caught and "wJalrXUtnFEMI" not in str(caught[0].message)


@pytest.fixture
def remote_env(monkeypatch):
    monkeypatch.setenv("PORTARUN_CHECKPOINTS_DIR", CHECKPOINTS)
    monkeypatch.setenv("PORTARUN_PERSIST_DIR", PERSIST)
    monkeypatch.setenv("PORTARUN_PROGRESS", "0")


@pytest.mark.real_machine  # the overrides come from this process's environment
@pytest.mark.parametrize("args", [["info"], ["info", "--json"], ["info", "--explain"]])
def test_portarun_info_never_shows_credentials(remote_env, capsys, args):
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert not leaked(out, err)
    if "--json" in args:
        data = json.loads(out)
        assert "memory://***@bucket/run" in json.dumps(data)


def test_runtime_explain_str_and_checkpoints_repr(tmp_path):
    with simulate("local", root=tmp_path / "h", env={"PORTARUN_CHECKPOINTS_DIR": CHECKPOINTS,
                                                    "PORTARUN_PERSIST_DIR": PERSIST}) as rt:
        assert str(rt.paths.checkpoints) == CHECKPOINTS  # the runtime itself keeps the full URL to use it
        shown = [rt.explain(), str(rt), rt._repr_html_(), repr(rt.checkpoints), repr(rt.paths), str(rt.paths), repr(rt)]
    assert not leaked(*shown)
    assert "memory://***@bucket/run" in shown[0]


def test_checkpoint_errors_and_infos(tmp_path):
    torch = pytest.importorskip("torch")
    ckpt = Checkpointer(CHECKPOINTS, handle_signals=False, mode="blocking")
    with pytest.raises(CheckpointError) as info:
        ckpt.load()
    assert not leaked(str(info.value), repr(info.value))
    ckpt.save({"w": torch.zeros(2)}, step=1)
    ckpt.wait()
    [saved] = ckpt.list()
    assert saved.location.startswith(CHECKPOINTS)  # usable in full
    assert not leaked(repr(saved), str(saved), repr(ckpt), f"{saved}")
    with pytest.raises(CheckpointError) as info:
        ckpt.load(step=7)
    assert not leaked(str(info.value))


def test_path_error_for_an_unknown_protocol(tmp_path):
    with pytest.raises(PathError) as info:
        with simulate("local", root=tmp_path / "h", env={"PORTARUN_CHECKPOINTS_DIR": f"nosuchfs://{KEY}:{SECRET}@b/x"}):
            pass
    assert not leaked(str(info.value), repr(info.value)) and "nosuchfs://***@b/x" in str(info.value)


def test_staging_log_line_result_errors_and_folder_names(tmp_path, caplog):
    fsspec.filesystem("memory").pipe(f"/{KEY}:{SECRET}@bucket/run/a.txt", b"hello")
    with caplog.at_level(logging.INFO, logger="portarun.staging"):
        with simulate("local", root=tmp_path / "h") as rt:
            result = rt.stage(CHECKPOINTS, workers=1)
            with pytest.raises(StagingError) as info:
                rt.stage(f"memory://{KEY}:{SECRET}@bucket/missing", workers=1)
            out = transfer(Path(result), f"memory://user:{PASSWORD}@bucket/out", workers=1)
    assert (Path(result) / "a.txt").read_bytes() == b"hello"
    assert caplog.records and not leaked(caplog.text, *(r.getMessage() for r in caplog.records))
    assert not leaked(repr(result), result.summary(), repr(out), out.summary(), str(info.value))
    assert not leaked(*(p.name for p in (tmp_path / "h").rglob("*")))


def test_dataset_cache_folder_names_hold_no_credential_and_keep_users_apart(tmp_path):
    for user_secret in (SECRET, SECRET + "-other-user"):
        fsspec.filesystem("memory").pipe(f"/{KEY}:{user_secret}@bucket/ds/train.csv", b"a,b\n1,2\n")
    with simulate("local", root=tmp_path / "h") as rt:
        first = rt.dataset(f"memory://{KEY}:{SECRET}@bucket/ds")
        second = rt.dataset(f"memory://{KEY}:{SECRET}-other-user@bucket/ds")
        plain_fs = fsspec.filesystem("memory")
        plain_fs.pipe("/bucket/ds/train.csv", b"x\n")
        plain = rt.dataset("memory://bucket/ds")
        cache = Path(rt.paths.cache)
    assert first != second and (first / "train.csv").is_file() and (second / "train.csv").is_file()
    assert plain == cache / "datasets" / "memory" / "bucket" / "ds"  # a URL without credentials keeps its name
    names = [p.name for p in cache.rglob("*")]
    assert names and not leaked(*names, first, second)
