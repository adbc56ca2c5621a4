"""The 64 MB /dev/shm crash, for real: a private mount namespace with a 64 MiB tmpfs on /dev/shm
(``unshare -m``, as root), hand settings that crash, and portarun's settings that do not."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parent.parent
MOUNT = "mount -t tmpfs -o size=64m tmpfs /dev/shm"

DATASET = textwrap.dedent("""
    import sys, time, warnings, torch
    from torch.utils.data import DataLoader, Dataset

    class Images(Dataset):
        def __len__(self): return BATCH * BATCHES
        def __getitem__(self, i): return torch.full((3, 224, 224), float(i)), i

    def check(loader):
        n = 0
        for images, idx in loader:
            assert torch.equal(images[:, 0, 0, 0], idx.float())
            n += len(idx)
            time.sleep(0.2)  # a training step: the workers' prefetched batches pile up meanwhile
        assert n == BATCH * BATCHES, n
        print("OK", n)
""")


def _unshare_reason() -> str | None:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return "needs Linux with unshare(1)"
    proc = subprocess.run(["unshare", "-m", "sh", "-c", MOUNT], capture_output=True, text=True)
    if proc.returncode:
        return f"this machine forbids a private /dev/shm mount (unshare -m + mount): {proc.stderr.strip()}"
    return None


def _run_in_64m_shm(tmp_path: Path, body: str, batch: int, batches: int = 4) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "run.py"
    script.write_text(f"BATCH = {batch}\nBATCHES = {batches}\n" + DATASET + body)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PORTARUN_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = ["unshare", "-m", "sh", "-c", f'{MOUNT} && df -B1 /dev/shm >&2 && exec "$0" "$@"',
           sys.executable, str(script)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_unshare_reason() is not None, reason=str(_unshare_reason()))]

HAND = textwrap.dedent("""
    check(DataLoader(Images(), batch_size=BATCH, num_workers=2, timeout=60))
""")
PORTARUN = textwrap.dedent("""
    import portarun
    rt = portarun.detect()
    assert rt.loader.facts.shm_free <= 64 * 2**20, rt.loader.facts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader = rt.dataloader(Images(), batch_size=BATCH, timeout=60)
    print("transfer", loader.portarun.transfer, loader.num_workers, loader.prefetch_factor)
    print("warned", [str(w.message) for w in caught if w.category is portarun.PortarunWarning])
    check(loader)
""")


@pytest.mark.parametrize("strategy", ["file_descriptor", "file_system"])
def test_hand_settings_crash_with_128_images_of_224(tmp_path: Path, strategy: str) -> None:
    body = f"torch.multiprocessing.set_sharing_strategy({strategy!r})\n" + HAND
    proc = _run_in_64m_shm(tmp_path, body, batch=128)
    assert proc.returncode != 0, proc.stdout
    assert "No space left on device" in proc.stderr or "Bus error" in proc.stderr, proc.stderr[-3000:]


def test_portarun_loads_the_same_batches_without_crashing(tmp_path: Path) -> None:
    proc = _run_in_64m_shm(tmp_path, PORTARUN, batch=128)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "transfer in_process 0" in proc.stdout
    assert "loading in-process" in proc.stdout  # the PortarunWarning
    assert "timeout ignored because portarun chose num_workers=0" in proc.stdout
    assert "OK 512" in proc.stdout


PIPE = textwrap.dedent("""
    from portarun.loader import PipeCollate
    check(DataLoader(Images(), batch_size=BATCH, num_workers=2, collate_fn=PipeCollate(), timeout=60))
""")


def test_pipe_transfer_never_touches_dev_shm(tmp_path: Path) -> None:
    proc = _run_in_64m_shm(tmp_path, PIPE, batch=128)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK 512" in proc.stdout


def test_portarun_lowers_settings_where_one_worker_fits(tmp_path: Path) -> None:
    # 24 images of 3×224×224 (13.8 MiB): 2 workers × prefetch 2 by hand crash once the
    # prefetched batches pile up (measured: 6 batches in /dev/shm at the peak); portarun keeps
    # shared memory with 1 worker × prefetch 1 (3 × 13.8 MiB).
    crash = _run_in_64m_shm(tmp_path, HAND, batch=24, batches=12)
    assert crash.returncode != 0 and "No space left on device" in crash.stderr, crash.stderr[-3000:]
    proc = _run_in_64m_shm(tmp_path, PORTARUN, batch=24, batches=12)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "transfer shared_memory 1 1" in proc.stdout
    assert "OK 288" in proc.stdout
