"""Submission checks against pandas: ``rt.submit(path, sample=...)`` on a large submission.

Goal: validating and writing an N-row, 2-column submission against its sample (ids shuffled,
so the rows are also put back in the sample's order) takes at most 2x what pandas takes to
read both files and write the result (``pd.read_csv`` twice, ``to_csv``). The two are timed
side by side in paired rounds (alternating which goes first, after one warm-up round that is
not counted); the figure is the median of the per-round ratios, so load on a shared machine
hits both sides of a pair alike.

    python benchmarks/bench_submit.py                      # 1,000,000 rows, 7 rounds
    python benchmarks/bench_submit.py --order sample       # ids already in the sample's order
    python benchmarks/bench_submit.py --rows 200000 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

GOAL = 2.0


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pandas as pd

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{' (' + model + ')' if model else ''}, "
            f"Python {platform.python_version()}, pandas {pd.__version__}, load {os.getloadavg()[0]:.2f}")


def make_files(folder: Path, rows: int, shuffle: bool, seed: int = 0) -> tuple[Path, Path]:
    """A sample (ids 0..rows-1, a constant target, as Kaggle ships them) and a submission with
    the same ids (shuffled, or in the sample's order) and random float predictions."""
    rng = random.Random(seed)
    sample, submission = folder / "sample_submission.csv", folder / "predictions.csv"
    sample.write_text("id,target\n" + "".join(f"{i},0.5\n" for i in range(rows)))
    ids = list(range(rows))
    if shuffle:
        rng.shuffle(ids)
    submission.write_text("id,target\n" + "".join(f"{i},{rng.random()!r}\n" for i in ids))
    return sample, submission


def run_pandas(sample: Path, submission: Path, out: Path) -> float:
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_csv(submission)
    pd.read_csv(sample)
    df.to_csv(out, index=False)
    return time.perf_counter() - started


def run_portarun(rt: object, sample: Path, submission: Path, shuffled: bool) -> float:
    started = time.perf_counter()
    result = rt.submit(submission, "bench.csv", sample=sample)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    assert result.checks == "sample" and result.reordered == shuffled, result
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7, help="paired rounds counted (after one warm-up)")
    parser.add_argument("--order", choices=("shuffled", "sample"), default="shuffled",
                        help="submission ids shuffled (portarun reorders them) or already in the sample's order")
    args = parser.parse_args(argv)

    from portarun.testing import simulate

    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print("machine:", machine())
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp:
        folder = Path(tmp)
        shuffled = args.order == "shuffled"
        sample, submission = make_files(folder, args.rows, shuffled)
        print(f"files: {args.rows:,} rows; sample {sample.stat().st_size / 1e6:.1f} MB, "
              f"submission {submission.stat().st_size / 1e6:.1f} MB (ids {'shuffled' if shuffled else 'in order'})")
        ratios = []
        with warnings.catch_warnings(), simulate("local", root=folder / "host") as rt:
            warnings.simplefilter("error")  # a warning here would mean a code path the goal does not cover
            print(f"{'round':>5}  {'pandas s':>9}  {'portarun s':>10}  {'ratio':>6}")
            for round_ in range(args.rounds + 1):
                if round_ % 2:
                    theirs = run_pandas(sample, submission, folder / "pandas.csv")
                    ours = run_portarun(rt, sample, submission, shuffled)
                else:
                    ours = run_portarun(rt, sample, submission, shuffled)
                    theirs = run_pandas(sample, submission, folder / "pandas.csv")
                label = "warm" if round_ == 0 else str(round_)
                print(f"{label:>5}  {theirs:9.2f}  {ours:10.2f}  {ours / theirs:6.2f}")
                if round_:
                    ratios.append(ours / theirs)
    median = statistics.median(ratios)
    verdict = "met" if median <= GOAL else "NOT met"
    print(f"median ratio portarun / pandas: {median:.2f} (goal <= {GOAL:.1f}: {verdict}); "
          f"range {min(ratios):.2f}-{max(ratios):.2f}")
    return 0 if median <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
