"""Checkpoints on an fsspec URL: the real S3-compatible server (moto) on loopback. Staged
locally, uploaded with the manifest last; torn uploads are invisible, corrupt ones skipped."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer  # noqa: E402
from portarun.checkpoint.manifest import STATE_FILE  # noqa: E402
from portarun.errors import PortarunWarning  # noqa: E402


def test_s3_save_rotate_load_and_corruption(s3: object, tmp_path: Path) -> None:
    bucket = s3.test_bucket  # type: ignore[attr-defined]
    root = f"s3://{bucket}/run"
    ck = Checkpointer(root, keep_last=2, staging=tmp_path / "staging", handle_signals=False)
    for step in (1, 2, 3):
        ck.save({"w": torch.full((50_000,), float(step)), "step": step}, step=step)
    ck.wait()
    assert [i.step for i in ck.list()] == [2, 3]
    assert ck.latest().location == f"{root}/step-000000003"
    assert ck.load()["step"] == 3
    assert os.listdir(tmp_path / "staging") == []  # promoted, then removed locally
    # an upload torn before its manifest is not a checkpoint
    s3.pipe_file(f"{bucket}/run/step-000000004/{STATE_FILE}", b"partial")  # type: ignore[attr-defined]
    s3.invalidate_cache()  # type: ignore[attr-defined]
    assert ck.latest().step == 3
    # a corrupted object of the same size: CRC-32 mismatch, fall back to step 2
    path = f"{bucket}/run/step-000000003/{STATE_FILE}"
    data = bytearray(s3.cat_file(path))  # type: ignore[attr-defined]
    data[-100] ^= 0x55
    s3.pipe_file(path, bytes(data))  # type: ignore[attr-defined]
    with pytest.warns(PortarunWarning, match="step-000000003.*CRC-32"):
        assert ck.load()["step"] == 2
    # a fresh process (new checkpointer, new staging) resumes and its next save cleans the torn folder
    again = Checkpointer(root, keep_last=2, mode="blocking", handle_signals=False)
    again.save({"step": 5}, step=5)
    s3.invalidate_cache()  # type: ignore[attr-defined]
    assert not s3.exists(f"{bucket}/run/step-000000004")  # type: ignore[attr-defined]
    assert [i.step for i in again.list()] == [3, 5]
