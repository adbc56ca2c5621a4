"""Staging throughput: portarun's ``transfer`` (what ``rt.stage`` runs) against ``cp -r`` and
``shutil.copytree`` locally, and against a sequential per-file copy and fsspec's own recursive
``get`` from an S3-compatible server on loopback (moto, as in the tests).

Usage::

    .venv/bin/python benchmarks/bench_stage.py [--rounds 3] [--json out.json] [--dir /dev/shm]

Each round runs every method once, in a different order, on the same data, into a fresh
destination; the table shows the median time. Ratios are taken within this one run (the
machine is noisy). Goals: portarun >= 80 % of ``cp -r`` throughput locally, and
faster than a sequential copy for many small remote files.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PORTARUN_PROGRESS", "0")

from portarun.staging import transfer  # noqa: E402

MiB = 1024 * 1024


def make_tree(root: Path, files: int, size: int) -> int:
    block = os.urandom(size)
    for i in range(files):
        path = root / f"d{i % 16:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(block[i % 251:] + block[: i % 251])
    return files * size


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_rounds(methods: dict[str, Callable[[Path], object]], work: Path, rounds: int,
               settle: float = 0.0) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            dest = work / f"out-{name.replace(' ', '_')}-{r}"
            os.sync()  # start each run with no writeback of the previous one pending
            time.sleep(settle)  # and, on a VM's shared disk, with the host's side drained too
            times[name].append(timed(lambda: methods[name](dest)))
            shutil.rmtree(dest, ignore_errors=True)
    return {name: statistics.median(ts) for name, ts in times.items()}


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto server did not start")


def local_cases(base: Path, rounds: int, settle: float, workers: int | None) -> list[dict[str, object]]:
    rows = []
    for label, files, size in (("many small (4000 x 16 KiB)", 4000, 16 * 1024),
                               ("few large (4 x 128 MiB)", 4, 128 * MiB)):
        src = base / f"src-{files}"
        total = make_tree(src, files, size)
        methods: dict[str, Callable[[Path], object]] = {
            "cp -r": lambda d: subprocess.run(["cp", "-r", str(src), str(d)], check=True),
            "shutil.copytree": lambda d: shutil.copytree(src, d),
            "portarun": lambda d: transfer(src, d, workers=workers),
        }
        medians = run_rounds(methods, base, rounds, settle)
        rows.append({"case": f"local, {label}", "bytes": total, "seconds": medians,
                     "ratio_vs_cp": medians["cp -r"] / medians["portarun"]})
        shutil.rmtree(src)
    return rows


def remote_cases(base: Path, rounds: int) -> list[dict[str, object]]:
    import s3fs

    proc, endpoint = start_moto()
    try:
        options = {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": endpoint}}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("bench")
        rows = []
        for label, files, size in (("many small (500 x 16 KiB)", 500, 16 * 1024),
                                   ("few large (2 x 64 MiB)", 2, 64 * MiB)):
            local = base / f"up-{files}"
            total = make_tree(local, files, size)
            prefix = f"bench/tree-{files}"
            fs.put(str(local), prefix, recursive=True)
            url = f"s3://{prefix}"
            keys = fs.find(prefix)

            def sequential(dest: Path, keys: list[str] = keys, prefix: str = prefix) -> None:
                for key in keys:
                    target = dest / os.path.relpath(key, prefix)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fs.get_file(key, str(target))

            methods: dict[str, Callable[[Path], object]] = {
                "sequential get_file": sequential,
                "fsspec get(recursive)": lambda d, prefix=prefix: fs.get(prefix + "/", str(d) + "/", recursive=True),
                "portarun": lambda d, url=url: transfer(url, d, storage_options=options),
            }
            medians = run_rounds(methods, base, rounds)
            rows.append({"case": f"loopback S3, {label}", "bytes": total, "seconds": medians,
                         "ratio_vs_sequential": medians["sequential get_file"] / medians["portarun"]})
            shutil.rmtree(local)
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-remote", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--workers", type=int, default=None,
                        help="portarun's thread count for the local cases (default: its own choice)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to pause after the sync before each local run (default 2)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data (default: the temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stage-", dir=args.dir) as tmp:
        base = Path(tmp)
        rows = [] if args.skip_local else local_cases(base, args.rounds, args.settle, args.workers)
        if not args.skip_remote:
            rows += remote_cases(base, args.rounds)
    for row in rows:
        mib = row["bytes"] / MiB  # type: ignore[operator]
        print(f"\n{row['case']}  ({mib:.0f} MiB, median of {args.rounds}, in {args.dir or tempfile.gettempdir()})")
        for name, seconds in row["seconds"].items():  # type: ignore[attr-defined]
            print(f"  {name:<24} {seconds:7.3f} s  {mib / seconds:8.1f} MiB/s")
        for key in ("ratio_vs_cp", "ratio_vs_sequential"):
            if key in row:
                print(f"  portarun {key.replace('_', ' ')}: {row[key]:.2f}x throughput")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
