"""How much does `import portarun; portarun.detect()` cost a fresh process?

Each case runs as a fresh interpreter, many times, round-robin (so machine noise hits every
case alike); the script prints the median wall time of each and its ratio to a bare
interpreter start (`python -c pass`). Peers' detection calls are measured where installed.

    python benchmarks/bench_detect.py [--runs 40] [--python PATH] [--stages]

The original goal: portarun costs at most 1.5x a bare start in an environment with about 100
installed distributions, and far less than any peer that imports torch.

Measure a regular install (`pip install .`), as users have. An editable install (`pip install
-e .`) adds setuptools' finder to every start: `site` loads it before `python -c pass` runs, and
it imports pathlib, re and more, so the bare start already pays for modules portarun needs and
every ratio comes out flattering. The script warns when it measures one.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

FLOOR = "import pluggy (required by the plugin design: the floor)"
CASES: dict[str, str] = {
    "python -c pass": "pass",
    FLOOR: "import pluggy",
    "entry-point scan only (importlib.metadata, group=portarun)":
        "from importlib.metadata import entry_points; entry_points(group='portarun')",
    "import portarun": "import portarun",
    "import portarun; portarun.detect()": "import portarun; portarun.detect()",
    "huggingface_hub is_google_colab()": "from huggingface_hub.utils import is_google_colab; is_google_colab()",
    "lightning SLURM/TorchElastic detect()":
        "from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment;"
        "SLURMEnvironment.detect(); TorchElasticEnvironment.detect()",
    "accelerate PartialState()": "from accelerate import PartialState; PartialState()",
}


# One process imports the heavy pieces one by one, in this order, and times each with
# perf_counter: where the cost above the pluggy floor goes (``--stages``).
STAGES = [
    ("pluggy (with typing, inspect)", "import pluggy"),
    ("pathlib", "import pathlib"),
    ("dataclasses", "import dataclasses"),
    ("datetime", "import datetime"),
    ("threading", "import threading"),
    ("platformdirs (with tempfile, shutil, random)", "import platformdirs"),
    ("import portarun", "import portarun"),
    ("portarun's modules on the detect() path", "import portarun.runtime"),
    ("detect() once all is imported", "portarun.detect()"),
]
STAGE_CODE = "import time\nt = [time.perf_counter()]\n" + "".join(
    f"{code}\nt.append(time.perf_counter())\n" for _, code in STAGES) + \
    "print(' '.join(str(b - a) for a, b in zip(t, t[1:])))"


def stages(python: str, runs: int) -> None:
    samples = [[float(x) for x in subprocess.run([python, "-c", STAGE_CODE], check=True, capture_output=True,
                                                 text=True).stdout.split()] for _ in range(runs)]
    print(f"\nstages, timed inside one process each ({runs} processes; medians):")
    for (name, _), column in zip(STAGES, zip(*samples)):
        print(f"{name:<62} {statistics.median(column) * 1000:>10.1f} ms")


def available(python: str, code: str) -> bool:
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environment to measure")
    parser.add_argument("--stages", action="store_true", help="also time each import stage inside a process")
    args = parser.parse_args()
    args.python = os.path.abspath(shutil.which(args.python) or args.python)  # it must survive the chdir below
    # `python -c` puts the working folder first on sys.path: run every case from an empty folder,
    # so a checkout's portarun/ cannot stand in for the installed one.
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as empty:
        os.chdir(empty)
        measure(args)


def measure(args: argparse.Namespace) -> None:
    dists = subprocess.run([args.python, "-c", "from importlib.metadata import distributions;"
                            "print(len({d.metadata['Name'] for d in distributions()}))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    found = subprocess.run(
        [args.python, "-c", "import importlib.util, os, portarun.runtime as m;"
         "print(os.path.dirname(m.__file__), os.path.exists(importlib.util.cache_from_source(m.__file__)))"],
        capture_output=True, text=True)
    if found.returncode:
        sys.exit(f"error: {args.python} cannot import portarun; install it in that environment "
                 f"(`{args.python} -m pip install .` from the checkout) and run again.")
    where, compiled = found.stdout.rsplit(maxsplit=1)
    if compiled != "True":  # e.g. an editable install under PYTHONDONTWRITEBYTECODE=1
        print("warning: portarun's bytecode is not cached, so every run compiles it from source and the figures "
              "below overstate the cost; run `python -m compileall <portarun folder>` first.")
    editable = subprocess.run([args.python, "-c", "import json, importlib.metadata as m;"
                               "d = json.loads(m.distribution('portarun').read_text('direct_url.json') or '{}');"
                               "print(d.get('dir_info', {}).get('editable', False))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    if editable == "True":
        print("warning: portarun is installed in editable mode, whose finder `site` imports at every start "
              "(pathlib, re, ...): the bare start below already pays for modules portarun needs, so every ratio "
              "is flattering. Measure a regular install (`pip install .` in another virtualenv, then --python).")
    cases = {name: code for name, code in CASES.items() if available(args.python, code)}
    skipped = [name for name in CASES if name not in cases]
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, code in cases.items():
            start = time.perf_counter()
            subprocess.run([args.python, "-c", code], check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass"])
    floor = statistics.median(times[FLOOR]) if FLOOR in times else float("nan")
    print(f"interpreter: {args.python}; {dists} installed distributions; portarun from {where}; "
          f"{args.runs} runs each, round-robin")
    print(f"{'case':<62} {'median ms':>10} {'x bare':>8} {'x pluggy':>9}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<62} {median * 1000:>10.1f} {median / base:>8.2f} {median / floor:>9.2f}")
    for name in skipped:
        print(f"{name:<62} {'not installed':>19}")
    if args.stages:
        stages(args.python, args.runs)


if __name__ == "__main__":
    main()
