"""The process context and the command line as an attacker shapes them: a reader that goes away,
planted FIFOs, hostile timelines, odd ``sys.argv``/``sys.path`` entries and command-line values.
Each ends in a clear :class:`~portarun.errors.PortarunError` (one line from the command line),
never a traceback from inside, a hang or a half-written file. Real subprocesses, real files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    env.update(extra)
    return env


def portarun_cli(*args: str, cwd: Path | None = None, timeout: float = 60,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portarun", *args], capture_output=True, text=True,
                          env=env or _env(), cwd=cwd, timeout=timeout)


# -- the command line's output -----------------------------------------------------------------
@pytest.mark.parametrize("args", [("info", "--json"), ("info", "--full", "--explain"), ("info",)])
def test_a_reader_that_went_away_ends_the_command_quietly(args: tuple[str, ...]) -> None:
    """``portarun info | head -1``: the pipe's reader is gone before the report is written. The
    command stops without a BrokenPipeError traceback (nor the interpreter's "Exception ignored"
    one at exit)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "portarun", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, env=_env(), timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr == ""
    assert proc.returncode == 1


# -- monitor timelines -------------------------------------------------------------------------
def _timeline(tmp_path: Path) -> list[dict[str, object]]:
    """The records of a real run of ``rt.monitor()`` (a subprocess that times a few steps)."""
    code = ("import time, portarun\nrt = portarun.detect()\n"
            "with rt.monitor(interval=0.05) as mon:\n"
            "    for _ in mon.wrap(range(4)):\n        time.sleep(0.06)\n"
            "print(mon.path)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = Path(done.stdout.strip().splitlines()[-1]).read_text().splitlines()
    return [json.loads(line) for line in lines]


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("kind", ["a FIFO (named pipe)", "a folder", "a device"])
def test_a_fifo_folder_or_device_as_the_timeline_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = {"a folder": tmp_path, "a device": Path("/dev/zero")}.get(kind, tmp_path / "run.jsonl")
    if kind.startswith("a FIFO"):
        os.mkfifo(path)
    proc = portarun_cli("monitor", "report", str(path), "--no-plot", timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"portarun: error: {path} is {kind}, not a timeline file")


def _first_sample(records: list[dict[str, object]]) -> int:
    return next(i for i, r in enumerate(records) if r.get("type") == "sample")


def _hostile_variants(records: list[dict[str, object]]) -> list[tuple[str, list[dict[str, object]]]]:
    """The real records with one value replaced, for every value of the start record and the
    first sample, by each of: NaN, infinity, a huge integer, a string, null, a list, a dict."""
    import copy

    bad: list[object] = [float("nan"), float("inf"), 10**400, "x", None, [], {}]
    out = []

    def walk(obj: object, trail: tuple[object, ...]) -> list[tuple[object, ...]]:
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        return [t for key, value in items for t in ((*trail, key), *walk(value, (*trail, key)))]

    for index in (0, _first_sample(records), len(records) - 1):
        for trail in walk(records[index], ()):
            for value in bad:
                variant = copy.deepcopy(records)
                target: object = variant[index]
                for key in trail[:-1]:
                    target = target[key]  # type: ignore[index]
                target[trail[-1]] = value  # type: ignore[index]
                out.append((f"record {index} {trail} = {value!r}"[:120], variant))
    return out


def test_hostile_timeline_values_give_a_report_or_a_timeline_error(tmp_path: Path) -> None:
    """Every value of a real timeline replaced by NaN, infinity, 10**400, a string, null, a list or a
    dict: ``build_report`` (with its plot where matplotlib is installed) answers with a report
    (the record skipped) or a TimelineError, never a TypeError, KeyError, ValueError or
    OverflowError from inside the summary or the figure."""
    from portarun.monitor import TimelineError, build_report

    records = _timeline(tmp_path)
    failures = []
    for label, variant in _hostile_variants(records):
        path = _write(tmp_path / "hostile.jsonl", variant)
        # Drawing costs ~0.1 s: the figure reads the samples, so only their wrong types are drawn.
        plot = label.startswith(f"record {_first_sample(records)} ") and label.endswith(("'x'", "{}"))
        try:
            build_report(path, plot=plot).text()
        except TimelineError:
            pass
        except Exception as exc:  # what this test is about: nothing else may escape
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} variants failed, e.g.\n" + "\n".join(failures[:10])


def test_timeline_lines_with_nan_or_overflowing_numbers_are_skipped(tmp_path: Path) -> None:
    """The monitor never writes NaN, infinity or numbers past a float (``allow_nan=False``): a
    line holding one is foreign and counted in ``skipped``, its neighbours still read."""
    from portarun.monitor import read_timeline

    records = _timeline(tmp_path)
    text = "".join(json.dumps(r) + "\n" for r in records)
    planted = ['{"type":"sample","t":NaN}', '{"type":"sample","t":1e400}', '{"type":"sample","t":' + "9" * 500 + "}",
               '{"type":"sample","t":-Infinity}']
    kept = '{"type":"alert","t":1e308,"message":"a large float the writer can write"}'
    path = tmp_path / "run.jsonl"
    path.write_text(text + "\n".join([*planted, kept]) + "\n")
    timeline = read_timeline(path)
    assert timeline.skipped == len(planted)
    assert len(timeline.samples) == sum(r.get("type") == "sample" for r in records)
    assert timeline.alerts[-1]["t"] == 1e308


def test_a_run_with_a_huge_price_reads_back(tmp_path: Path) -> None:
    """``PORTARUN_PRICE_PER_HOUR=1e308`` is a finite float the monitor writes into its start
    record: the reader keeps that record (a bound on floats had made it "no start record")."""
    code = ("import time, portarun\nrt = portarun.detect()\n"
            "with rt.monitor(interval=0.05) as mon:\n    time.sleep(0.2)\n"
            "print(mon.report(plot=False).summary.budgets[-1].amount)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=_env(PORTARUN_PRICE_PER_HOUR="1e308"))
    assert proc.returncode == 0 and proc.stdout == "1e+308\n", proc.stderr[-2000:]


@pytest.mark.parametrize("content", [b"", b"\x00\xff" * 5000, b'{"type":"start","t":1', b"[1,2]\n\"x\"\n"])
def test_empty_binary_or_truncated_timelines_are_a_timeline_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run.jsonl"
    path.write_bytes(content)
    proc = portarun_cli("monitor", "report", str(path), "--no-plot")
    assert proc.returncode == 2 and proc.stderr.startswith("portarun: error: "), proc.stderr[-2000:]
    assert "holds no monitor start record" in proc.stderr


@pytest.mark.parametrize("where", ["a folder", "inside a file", "a name too long", "/proc", "", ".", "/"])
def test_a_plot_that_cannot_be_written_is_a_clear_error(tmp_path: Path, where: str) -> None:
    """``--png`` at a folder, below a file, with a name over the filesystem's limit, or in
    /proc: a one-line error naming the path and what to do; no partial file is left."""
    timeline = _write(tmp_path / "run.jsonl", _timeline(tmp_path))
    (tmp_path / "afile").write_text("x")
    png = {"a folder": str(tmp_path), "inside a file": str(tmp_path / "afile" / "plot.png"),
           "a name too long": str(tmp_path / ("p" * 300 + ".png")), "/proc": "/proc/plot.png"}.get(where, where)
    pytest.importorskip("matplotlib")
    proc = portarun_cli("monitor", "report", str(timeline), "--png", png)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith("portarun: error: cannot write the plot") and "--no-plot" in proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# -- portarun launch ---------------------------------------------------------------------------
@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "train.py"
    path.write_text("print('hi')\n")
    return str(path)


@pytest.mark.parametrize("nproc", ["²", "١", "٣", "0x10", "1e3", " 2"])
def test_nproc_in_anything_but_ascii_digits_is_refused(script: str, nproc: str) -> None:
    """``str.isdigit`` is true for superscripts and other scripts' digits (``int('²')`` then
    raises ValueError): only ASCII digits are a count."""
    from portarun._cli.launch import plan
    from portarun.errors import DistributedError
    from portarun.testing import simulate

    with simulate(cpus=4) as rt, pytest.raises(DistributedError, match="not 'auto' or a positive number"):
        plan(rt, nproc, script, [])


def test_nproc_superscript_on_the_command_line_is_one_line(script: str) -> None:
    proc = portarun_cli("launch", "--nproc", "²", "--dry-run", script)
    assert proc.returncode == 2 and proc.stderr.startswith("portarun: error: --nproc '²'"), proc.stderr[-2000:]


@pytest.mark.parametrize("nproc", ["100000", "99999999999999999999"])
def test_more_cpu_ranks_than_the_memory_holds_are_refused(script: str, nproc: str) -> None:
    """``--nproc 100000`` on a CPU host would start 100000 Python processes that each import
    torch: refused before anything starts, with the most this machine's memory holds."""
    from portarun._cli.launch import RANK_MEMORY, plan
    from portarun.errors import DistributedError
    from portarun.testing import simulate

    with simulate(cpus=4, memory="16G") as rt:
        most = (16 << 30) // RANK_MEMORY
        assert plan(rt, str(most), script, []).nproc == most  # oversubscribing the CPUs stays allowed
        with pytest.raises(DistributedError, match=rf"at most {most}\b"):
            plan(rt, nproc, script, [])
        with pytest.raises(DistributedError, match="memory"):
            plan(rt, str(most + 1), script, [])


@pytest.mark.parametrize("endpoint", ["a" * 254 + ":29400", "b" * 64 + ".example.com:80", "x" * 10000])
def test_a_rendezvous_host_no_resolver_accepts_is_refused(script: str, endpoint: str) -> None:
    """A host name longer than 253 characters or with a label over 63 (RFC 1035 section 2.3.4)
    is refused at once instead of being handed to torchrun's resolver."""
    from portarun._cli.launch import Nodes, plan
    from portarun.errors import DistributedError
    from portarun.testing import simulate

    with simulate(cpus=4) as rt, pytest.raises(DistributedError, match="not HOST:PORT"):
        plan(rt, "1", script, [], Nodes(nnodes=2, endpoint=endpoint))


# -- the process: sys.argv, __main__, sys.path -------------------------------------------------
@pytest.mark.parametrize("setup", [
    "sys.argv = ['a\\x00b.py']", "sys.modules['__main__'].__file__ = '/tmp/a\\x00.py'",
    "sys.modules['__main__'].__file__ = 5", "del sys.argv", "sys.argv = [b'/tmp/x.py']", "sys.argv = None",
])
def test_an_odd_argv_or_main_file_still_names_a_project(tmp_path: Path, setup: str) -> None:
    """An embedding host or a launcher may leave ``sys.argv`` missing or odd, or ``__main__``'s
    ``__file__`` holding a NUL or no string: ``detect()`` still names a project (the script
    where there is one, else the working folder) instead of raising from ``os.path``."""
    code = f"import sys\n{setup}\nimport portarun\nrt = portarun.detect()\nprint('project', rt.project)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                          timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.startswith("project ")


def _dist(folder: Path, dist_dir: str, entry_points: bytes, metadata: bytes = b"") -> Path:
    """A distribution's metadata folder on a ``sys.path`` entry, as an installer leaves it."""
    info = folder / dist_dir
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_bytes(entry_points)
    (info / "METADATA").write_bytes(metadata)
    return folder


def test_terminal_escapes_in_a_distributions_metadata_never_reach_the_terminal(tmp_path: Path) -> None:
    """A distribution's ``Name`` and ``Version`` headers are anyone's text: with ESC sequences
    (clear the screen, set the title) they are shown escaped in warnings and ``portarun info``."""
    site = _dist(tmp_path / "site", "evil-1.0.dist-info", b"[portarun]\nevil = json\n",
                 b"Metadata-Version: 2.1\nName: evil\x1b[2J\nVersion: 1.0\x1b]0;pwned\x07" + b"9" * 5000 + b"\n")
    env = _env(PYTHONPATH=str(site))
    for args in (("info", "--full"), ("info", "--json")):
        proc = portarun_cli(*args, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "evil" in proc.stdout + proc.stderr  # the plugin is reported ...
        assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout + proc.stderr  # ... escaped
        assert "9" * 1000 not in proc.stdout + proc.stderr


@pytest.mark.parametrize("entry", ["b'/tmp'", "5"])
def test_sys_path_entries_that_are_no_text_are_skipped(tmp_path: Path, entry: str) -> None:
    """Python's import system skips ``sys.path`` entries that are not strings (``bytes``, a number);
    the entry-point scan does too, instead of raising (``bytes`` gave a TypeError)."""
    code = f"import sys\nimport portarun\nsys.path.insert(0, {entry})\nprint(portarun.detect().host.name)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                          timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("plant", ["binary entry points", "entry points in a link loop", "FIFO entry points",
                                   "FIFO metadata", "FIFO on sys.path"])
def test_the_full_entry_point_scan_skips_planted_metadata(tmp_path: Path, plant: str) -> None:
    """``PORTARUN_ENTRY_POINT_SCAN=full`` goes through importlib.metadata, which blocks on a FIFO
    and raises on bytes that are not UTF-8 or a link loop: such a distribution (or ``sys.path``
    entry) is skipped, and the other plugins still load."""
    site = tmp_path / "site"
    site.mkdir()
    if plant == "FIFO on sys.path":
        os.mkfifo(tmp_path / "fifo")
    else:
        info = _dist(site, "planted-1.0.dist-info", b"\xa7\xff[portarun]\nplanted = json\n",
                     b"Metadata-Version: 2.1\nName: planted\nVersion: 1.0\n") / "planted-1.0.dist-info"
        if plant != "binary entry points":
            (info / "entry_points.txt").unlink()
            target = info / ("METADATA" if plant == "FIFO metadata" else "entry_points.txt")
            if plant == "entry points in a link loop":
                (info / "loop").symlink_to("entry_points.txt")
                target.symlink_to("loop")
            else:
                target.unlink(missing_ok=True)
                os.mkfifo(target)
                if plant == "FIFO metadata":
                    (info / "entry_points.txt").write_text("[portarun]\nplanted = json\n")
    path = str(tmp_path / "fifo") if plant == "FIFO on sys.path" else str(site)
    code = "from portarun.runtime import providers\nprint(sorted(providers()))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env=_env(PYTHONPATH=path, PORTARUN_ENTRY_POINT_SCAN="full"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "'kaggle'" in proc.stdout and "'local'" in proc.stdout


def test_the_newest_timeline_skips_dangling_links_loops_and_folders(tmp_path: Path) -> None:
    """``portarun monitor report`` without a path takes the newest timeline under
    ``outputs/monitor``: a dangling link, a link loop or a folder named ``*.jsonl`` there (newer
    than the real one) is passed over, not a FileNotFoundError or ELOOP traceback."""
    (tmp_path / "run").mkdir()
    records = _timeline(tmp_path / "run")  # the run writes its own timeline under run/outputs/monitor
    folder = tmp_path / "outputs" / "monitor"
    folder.mkdir(parents=True)
    _write(folder / "real.jsonl", records)
    (folder / "dangling.jsonl").symlink_to("nowhere")
    (folder / "loop.jsonl").symlink_to("loop2")
    (folder / "loop2").symlink_to("loop.jsonl")
    (folder / "folder.jsonl").mkdir()
    proc = portarun_cli("monitor", "report", "--no-plot", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert str(folder / "real.jsonl") in proc.stdout
    (folder / "real.jsonl").unlink()
    proc = portarun_cli("monitor", "report", "--no-plot", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("portarun: error: no monitor timeline under")


def _closing(*fds: int) -> object:
    def close() -> None:
        for fd in fds:
            os.close(fd)
    return close


@pytest.mark.parametrize("closed", [(1,), (2,), (1, 2)])
def test_commands_run_with_stdout_or_stderr_closed(tmp_path: Path, script: str, closed: tuple[int, ...]) -> None:
    """A daemon or a cron job may start a command with stdout or stderr closed (``>&-``): Python
    then sets ``sys.stdout``/``sys.stderr`` to None, and the commands still run to their end."""
    for args in (("info", "--full"), ("launch", "--nproc", "1", "--dry-run", script)):
        proc = subprocess.run([sys.executable, "-m", "portarun", *args], env=_env(), cwd=tmp_path, timeout=120,
                              preexec_fn=_closing(*closed), stdout=subprocess.PIPE if 1 not in closed else None,
                              stderr=subprocess.PIPE if 2 not in closed else None, text=True)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in (proc.stderr or "")


def test_progress_bars_are_off_without_a_stderr() -> None:
    """``sys.stderr`` is None with fd 2 closed (and a closed file after some frameworks close it):
    progress bars are simply off, not an AttributeError."""
    code = ("import sys, io\nfrom portarun._util import progress\n"
            "sys.stderr = None\nassert progress.enabled() is False\n"
            "sys.stderr = io.StringIO(); sys.stderr.close()\nassert progress.enabled() is False\nprint('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in _env().items() if k != "PORTARUN_PROGRESS"})
    assert proc.stdout == "ok\n", proc.stderr[-2000:]


@pytest.mark.parametrize("args", [("info",), ("info", "--json")])
def test_a_section_that_breaks_leaves_the_rest_of_the_report(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A binary ``entry_points.txt`` anywhere on ``sys.path`` makes ``import fsspec`` raise
    UnicodeDecodeError (fsspec reads every entry point at import), and the checkpoints section
    imports it: that section says so, and ``portarun info`` still reports everything else."""
    site = _dist(tmp_path / "site", "junk-1.0.dist-info", b"\xa7\xff\x00[fsspec.specs]\n")
    proc = portarun_cli(*args, env=_env(PYTHONPATH=str(site)))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if args == ("info", "--json"):
        data = json.loads(proc.stdout)
        assert data["host"]["name"] and "UnicodeDecodeError" in data["checkpoints"]["error"]
    else:
        assert proc.stdout.startswith("portarun ") and "\ncheckpoints " in proc.stdout


# -- environment values ------------------------------------------------------------------------
@pytest.mark.parametrize("var", ["PORTARUN_SESSION_LIMIT", "PORTARUN_HOST"])
def test_a_100_kb_variable_is_named_in_a_short_message(tmp_path: Path, var: str) -> None:
    """A variable filled with 100 kB (a paste gone wrong, a hostile environment) is refused with
    its name and the start of its value, not echoed whole into one error line."""
    proc = portarun_cli("info", cwd=tmp_path, env=_env(**{var: "9x" * 50_000}))
    assert proc.returncode == 2 and proc.stderr.startswith("portarun: error: "), proc.stderr[-2000:]
    assert var in proc.stderr and "9x9x" in proc.stderr and len(proc.stderr) < 1000, len(proc.stderr)


@pytest.mark.parametrize("options", [
    {"interval": float("inf")}, {"interval": "1"}, {"interval": True}, {"quota_every": -1},
    {"quota_every": float("nan")}, {"quota_every": "x"}, {"ram_warn": "x"}, {"ram_warn": True},
    {"disk_warn": float("nan")},
])
def test_monitor_options_that_are_no_finite_numbers_are_refused(tmp_path: Path, options: dict[str, object]) -> None:
    """``interval=inf`` failed later, at the first JSON write; a string failed with TypeError;
    ``True`` passed as 1 second. Each is refused at ``rt.monitor()``, naming the option."""
    from portarun.errors import PortarunError
    from portarun.testing import simulate

    name = next(iter(options))
    with simulate("local", root=tmp_path / "root") as rt, pytest.raises(PortarunError, match=f"^{name}="):
        rt.monitor(path=tmp_path / "run.jsonl", **options)  # type: ignore[arg-type]
    assert not (tmp_path / "run.jsonl").exists()


@pytest.mark.parametrize("where", ["a FIFO", "a NUL byte"])
def test_a_monitor_path_that_is_a_fifo_or_holds_a_nul_is_a_path_error(tmp_path: Path, where: str) -> None:
    """A FIFO at the timeline's path (no reader: opening it to write would block the run
    forever) or a path with a NUL byte: ``PathError`` at start, nothing blocks."""
    path = str(tmp_path / "run.jsonl") if where == "a FIFO" else str(tmp_path / "a\x00b.jsonl")
    if where == "a FIFO":
        os.mkfifo(path)
    code = ("import sys, portarun\nfrom portarun.errors import PathError\nfrom portarun.testing import simulate\n"
            "with simulate('local', root=sys.argv[2]) as rt:\n"
            "    try:\n        rt.monitor(path=sys.argv[1].replace('NUL', '\\x00')).start()\n"
            "    except PathError as exc:\n        print('PathError:', exc)\n")
    proc = subprocess.run([sys.executable, "-c", code, path.replace("\x00", "NUL"), str(tmp_path / "root")],
                          capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.stdout.startswith("PathError: the run monitor cannot write its timeline"), proc.stderr[-2000:]
    assert ("FIFO" if where == "a FIFO" else "null byte") in proc.stdout


# -- home folder -------------------------------------------------------------------------------
def test_no_home_folder_at_all_is_a_path_error(tmp_path: Path) -> None:
    """``HOME`` unset and a user id with no entry in the password database (a container started
    with an arbitrary ``--user`` and a bare environment): there is no home to keep files under,
    and ``detect()`` and ``portarun info`` say so and what to set, instead of platformdirs' or
    pathlib's RuntimeError. The password database is emptied in the child, as such a container has it."""
    code = ("import pwd, sys\n"
            "def missing(uid):\n    raise KeyError(f'getpwuid(): uid not found: {uid}')\n"
            "pwd.getpwuid = missing\n"
            "import portarun\nfrom portarun.errors import PathError\n"
            "try:\n    portarun.detect()\nexcept PathError as exc:\n    print('PathError:', exc)\n"
            "from portarun.probe import Probe\n"
            "try:\n    Probe.real().home\nexcept PathError as exc:\n    print('home: PathError:', exc)\n"
            "from portarun._cli.main import main\nsys.exit(main(['info']))\n")
    env = {k: v for k, v in _env().items() if k != "HOME" and not k.startswith("XDG_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert proc.stdout.startswith("PathError: ") and "HOME" in proc.stdout, proc.stderr[-2000:]
    assert "\nhome: PathError: this process has no home folder" in proc.stdout
    assert proc.returncode == 2 and proc.stderr.startswith("portarun: error: ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "C locale"])
def test_a_terminal_that_cannot_show_unicode_gets_escapes(tmp_path: Path, encoding: str) -> None:
    """``PYTHONIOENCODING=ascii`` or a C locale without UTF-8 coercion: the report's ``×``, ``…``
    and a project named ``实验一`` are written as backslash escapes instead of ending the
    command with UnicodeEncodeError."""
    env, shown = _env(PYTHONIOENCODING=encoding, PORTARUN_PROJECT="实验一"), "\\u5b9e\\u9a8c\\u4e00"
    if encoding == "C locale":  # the variable itself is then read as ASCII: its bytes come back escaped
        env = _env(LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0", PORTARUN_PROJECT="实验一")
        env.pop("PYTHONIOENCODING", None)
        encoding, shown = "ascii", "\\udce5\\udcae\\udc9e"
    for args in (("info",), ("info", "--full", "--explain")):
        proc = subprocess.run([sys.executable, "-m", "portarun", *args], capture_output=True, cwd=tmp_path,
                              env=env, timeout=120)
        assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stdout.decode(encoding).startswith("portarun ")
    assert shown in proc.stdout.decode(encoding)


@pytest.mark.parametrize("planted", ["proc/1/stat", "proc/stat"])
def test_a_fifo_planted_in_a_simulated_proc_never_blocks_the_session_clock(tmp_path: Path, planted: str) -> None:
    """The session clock reads ``/proc/1/stat`` and ``/proc/stat`` under the probe's root: a FIFO
    there (a simulated root is any folder) is refused unread, and the clock falls back to this
    process's start."""
    root = tmp_path / "root"
    (root / "proc" / "1").mkdir(parents=True)
    (root / "proc" / "1" / "stat").write_text("1 (init) S 0 0 0 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n")
    (root / "proc" / "stat").write_text("cpu 1 2 3\nbtime 1700000000\n")
    (root / planted).unlink()
    os.mkfifo(root / planted)
    code = ("import sys\nfrom pathlib import Path\nfrom portarun.probe import Probe\n"
            "probe = Probe(env={}, root=Path(sys.argv[1]), simulated=True)\n"
            "print(probe.host_started_at == probe.process_started_at)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, env=_env(),
                          timeout=60)
    assert proc.stdout == "True\n", proc.stderr[-2000:]


@pytest.mark.parametrize("kind", ["a folder", "a FIFO"])
def test_a_launch_script_that_is_a_folder_or_fifo_is_named_as_such(tmp_path: Path, kind: str) -> None:
    """``portarun launch`` given a folder or a FIFO as the script says what it is (it said "not
    found"), and never starts torchrun on it (reading a FIFO would block every rank)."""
    from portarun._cli.launch import plan
    from portarun.errors import DistributedError
    from portarun.testing import simulate

    target = tmp_path / "train.py"
    target.mkdir() if kind == "a folder" else os.mkfifo(target)
    with simulate(cpus=4) as rt, pytest.raises(DistributedError, match=f"is {kind}, not a Python file"):
        plan(rt, "1", str(target), [])


def test_info_script_in_a_deleted_working_folder_is_one_line(tmp_path: Path) -> None:
    """``portarun info --script train.py`` from a folder deleted under the shell: the one-line
    error that ``detect()`` gives there, not pathlib's FileNotFoundError from ``Path.cwd()``."""
    gone = tmp_path / "gone"
    code = ("import os, sys\nos.mkdir(sys.argv[1]); os.chdir(sys.argv[1]); os.rmdir(sys.argv[1])\n"
            "from portarun._cli.main import main\nsys.exit(main(['info', '--script', 'train.py']))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(gone)], capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith("portarun: error: this process's working folder no longer exists")


@pytest.mark.parametrize("value", [10**400, 10**5000, 2**63, 1e308, "9" * 30, "9" * 400 + "G", "9000000000T"],
                         ids=["10**400", "10**5000", "2**63", "1e308", "30 nines", "400 nines G", "9000000000T"])
def test_sizes_past_what_a_file_offset_holds_are_clear_errors(value: object) -> None:
    """A byte size is at most 2**63 - 1 (a signed 64-bit file offset): 10**400 raised
    OverflowError from ``math.isfinite``, ``1e308`` and ``'9000000000T'`` were taken as sizes, and
    a 400-digit value was echoed whole in the message."""
    from portarun._util.units import parse_size
    from portarun.errors import PortarunError
    from portarun.testing import simulate

    with pytest.raises(PortarunError, match="is not a size") as caught:
        parse_size(value)  # type: ignore[arg-type]
    assert len(str(caught.value)) < 300
    with pytest.raises(PortarunError, match="is not a size"):
        with simulate(memory=value):  # type: ignore[arg-type]
            pass


def test_masking_takes_linear_time_on_text_made_to_backtrack() -> None:
    """Every message passes through the masking: ``'://'`` followed by 120 kB of letters (one
    environment variable's worth) took ~8 s, each start position scanning to the end for a
    scheme. Now it is linear, and masking is unchanged, a scheme of 40 letters included."""
    import time

    from portarun._util.redact import redact, shown_location

    started = time.perf_counter()
    for text in ("://" + "a" * 120_000, "://" + "a1" * 60_000):
        shown_location(text)
        redact(text)
    assert time.perf_counter() - started < 1.0
    assert shown_location("x" * 40 + "://key:secret@bucket/run") == "x" * 40 + "://***@bucket/run"
    assert shown_location("9s3://key:secret@b") == "9s3://***@b"


def test_a_size_of_spaces_then_junk_is_refused_in_linear_time() -> None:
    """``'1' + 40000 spaces + 'x'`` took 3.5 s (spaces on both sides of the unit backtracked)."""
    import time

    from portarun._util.units import parse_size
    from portarun.errors import PortarunError

    started = time.perf_counter()
    with pytest.raises(PortarunError, match="is not a size"):
        parse_size("1" + " " * 40_000 + "x")
    assert time.perf_counter() - started < 0.5
    assert parse_size(" 64 M ") == parse_size("64MiB") == 64 << 20


@pytest.mark.parametrize("kwargs", [{"host": 5}, {"project": 5}, {"project": b"x"}, {"project": ["a"]},
                                    {"device": 5}, {"host": b"kaggle"}])
def test_detect_arguments_that_are_no_strings_are_named(kwargs: dict[str, object]) -> None:
    """``detect(project=5)`` raised TypeError from ``unicodedata``, ``project=['a']`` an
    unhashable-key TypeError from the cache, ``host=5`` an AttributeError: each is a
    PortarunError naming the argument."""
    import portarun
    from portarun.testing import simulate

    name = next(iter(kwargs))
    expected = rf"^detect\({name}=\.\.\.\) got a \w+, not a string"
    with simulate("local"), pytest.raises(portarun.PortarunError, match=expected):
        portarun.detect(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("var", ["PORTARUN_DEVICE", "PORTARUN_AMP_DTYPE"])
def test_a_100_kb_device_request_is_quoted_short_in_the_report(tmp_path: Path, var: str) -> None:
    """The device sections quote an unknown ``PORTARUN_DEVICE``/``PORTARUN_AMP_DTYPE``: a 100 kB
    value made ``portarun info --full`` print 300 kB; it is quoted cut short."""
    proc = portarun_cli("info", "--full", cwd=tmp_path, env=_env(**{var: "9x" * 50_000}))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert var in proc.stdout and "9x9x" in proc.stdout and len(proc.stdout) < 30_000, len(proc.stdout)


@pytest.mark.parametrize("var", ["CUDA_VISIBLE_DEVICES", "KAGGLE_KERNEL_RUN_TYPE", "COLAB_RELEASE_TAG"])
def test_a_100_kb_variable_named_as_evidence_is_cut(tmp_path: Path, var: str) -> None:
    """Evidence and hints name variables as ``NAME=value`` (``Probe.env_fact``): a 100 kB value
    filled ``portarun info --full --explain`` with it; it is cut short."""
    proc = portarun_cli("info", "--full", "--explain", cwd=tmp_path, env=_env(**{var: "9" * 100_000}))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{var}=999" in proc.stdout and len(proc.stdout) < 30_000, len(proc.stdout)


def test_a_matplotlib_setting_it_refuses_is_not_blamed_on_the_timeline(tmp_path: Path) -> None:
    """``MPLBACKEND=nonexistent`` makes ``import matplotlib`` raise ValueError: the report says
    matplotlib's settings are at fault (it blamed the timeline's records), and --no-plot works."""
    pytest.importorskip("matplotlib")
    timeline = _write(tmp_path / "run.jsonl", _timeline(tmp_path))
    env = _env(MPLBACKEND="nonexistent")
    proc = portarun_cli("monitor", "report", str(timeline), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith("portarun: error: matplotlib cannot start") and "MPLBACKEND" in proc.stderr
    assert "--no-plot" in proc.stderr and "record" not in proc.stderr
    assert portarun_cli("monitor", "report", str(timeline), "--no-plot", env=env).returncode == 0


@pytest.mark.parametrize("executable", ["", "/nonexistent/python"])
def test_a_launch_whose_interpreter_cannot_be_started_is_one_line(script: str, executable: str) -> None:
    """An embedding host may leave ``sys.executable`` empty or point it at nothing: the exec of
    torchrun fails, and ``portarun launch`` says so in one line (it was a FileNotFoundError)."""
    code = (f"import sys\nsys.executable = {executable!r}\nfrom portarun._cli.main import main\n"
            f"sys.exit(main(['launch', '--nproc', '1', {script!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "portarun: error: cannot start" in proc.stderr and "sys.executable" in proc.stderr


@pytest.mark.parametrize(("var", "value"), [
    ("PORTARUN_PROJECT", "s3://AKIAKEY:SuperSecret99@bucket/run"),
    ("PORTARUN_PROJECT", "https://h/x?token=SuperSecret99"),
    ("JPY_SESSION_NAME", "https://h/work/nb.ipynb?token=SuperSecret99"),
])
def test_a_credential_in_a_project_name_never_becomes_a_folder_name(tmp_path: Path, var: str, value: str) -> None:
    """A location typed where a project name goes (``PORTARUN_PROJECT=s3://key:secret@bucket``)
    or a notebook session name carrying a token: the project folder is named from the masked
    text plus a hash, so the credential appears in no path and no line of ``portarun info``."""
    code = ("import sys, types\nsys.modules['ipykernel'] = types.ModuleType('ipykernel')\n"
            "from portarun._cli.main import main\nsys.exit(main(['info', '--full', '--explain']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=_env(**{var: value}))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SuperSecret99" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("var", ["PORTARUN_PROJECT", "JPY_SESSION_NAME", "detect(project=)"])
def test_a_long_credential_is_masked_before_the_project_origin_is_cut(tmp_path: Path, var: str) -> None:
    """Where a project's name came from is cut to 300 characters: cut first, a URL whose
    password runs past the cut lost its ``@`` and was shown unmasked, password included."""
    secret = "s3://AKIAKEY:" + "S" * 400 + "@bucket/run"
    code = ("import sys, types, json\nsys.modules['ipykernel'] = types.ModuleType('ipykernel')\n"
            "import portarun\nfrom portarun._cli import report\n"
            f"rt = portarun.detect(project={secret!r} if {var == 'detect(project=)'} else None)\n"
            "print(rt.project_origin, rt.explain(), json.dumps(report.build(rt)))\n")
    env = _env() if var.startswith("detect") else _env(**{var: secret})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SSSSSSSS" not in proc.stdout + proc.stderr and "***" in proc.stdout


def test_text_cut_before_masking_never_shows_a_password_that_ran_past_the_cut() -> None:
    """Plugin evidence and error text (``clean_text``) is cut to four times its limit before
    masking, to bound the work: a URL whose password runs past that cut lost its ``@`` and its
    password's start was shown. The URL cut open is now shown up to its ``://``."""
    from portarun._plugins.isolation import clean_text

    for text in ("s3://KEY:" + "S" * 3000 + "@bucket/run", "evidence: https://u:" + "S" * 5000 + "@h/x",
                 "x " * 900 + "https://u:" + "S" * 5000 + "@h"):
        shown = clean_text(text, 500)
        assert "SSSS" not in shown, shown[:200]
    assert clean_text("s3://KEY:SECRET@bucket/run", 500) == "s3://***@bucket/run"


def test_a_long_url_named_as_evidence_is_cut_without_showing_its_password() -> None:
    """``Probe.env_fact`` cuts a long value for evidence: a URL whose password runs past the cut
    shows none of it (cut first and masked later, it lost its ``@``)."""
    from portarun.probe import Probe

    probe = Probe(env={"COLAB_JUPYTER_IP": "https://u:" + "S" * 300 + "@proxy/x"})
    fact = probe.env_fact("COLAB_JUPYTER_IP")
    assert fact.startswith("COLAB_JUPYTER_IP=https://") and "SSSS" not in fact


def test_a_long_forced_host_with_a_password_is_cut_without_showing_it(tmp_path: Path) -> None:
    """``PORTARUN_HOST`` is quoted cut short in its error: cut before masking, a URL's password
    that ran past the cut was shown."""
    proc = portarun_cli("info", cwd=tmp_path, env=_env(PORTARUN_HOST="s3://u:" + "7" * 300 + "@h/x"))
    assert proc.returncode == 2 and proc.stderr.startswith("portarun: error: unknown host"), proc.stderr[-2000:]
    assert "7777" not in proc.stderr  # digits: the host name is lower-cased before the error quotes it


def test_a_10_kb_rendezvous_endpoint_is_quoted_short(script: str) -> None:
    proc = portarun_cli("launch", "--nnodes", "2", "--rdzv-endpoint", "h" * 10_000 + ":80", "--dry-run", script)
    assert proc.returncode == 2 and "not HOST:PORT" in proc.stderr and len(proc.stderr) < 1000, len(proc.stderr)


def test_the_monitors_cgroup_reading_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    """The run monitor reads ``memory.current`` and ``memory.stat`` of the process's cgroup: a FIFO
    there (under a root anyone could have written) is refused unread, as the probe's own cgroup
    reads are (docs/reliability.md, "Nothing hangs on a planted file")."""
    import threading

    from portarun.monitor.sampler import cgroup_memory_used

    files = {"proc/self/cgroup": "0::/\n",
             "proc/self/mountinfo": "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
             "sys/fs/cgroup/cgroup.controllers": "cpu memory", "sys/fs/cgroup/memory.max": "1000000"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    os.mkfifo(tmp_path / "sys/fs/cgroup/memory.current")
    os.mkfifo(tmp_path / "sys/fs/cgroup/memory.usage_in_bytes")
    found: list[object] = []
    reader = threading.Thread(target=lambda: found.append(cgroup_memory_used(tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert found == [None], "the monitor's cgroup reading blocked on a FIFO"
    (tmp_path / "sys/fs/cgroup/memory.current").unlink()
    (tmp_path / "sys/fs/cgroup/memory.current").write_text("5000\n")
    (tmp_path / "sys/fs/cgroup/memory.stat").unlink(missing_ok=True)
    os.mkfifo(tmp_path / "sys/fs/cgroup/memory.stat")
    found.clear()
    reader = threading.Thread(target=lambda: found.append(cgroup_memory_used(tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert found == [5000]


def test_a_timeline_line_of_100_mb_is_skipped_without_holding_it(tmp_path: Path) -> None:
    """A record is a few kB: a line of 100 MB (a file that is no timeline, or a planted one) is
    skipped and counted while being read in pieces, never held whole in memory."""
    records = _timeline(tmp_path)
    path = tmp_path / "run.jsonl"
    with path.open("w") as f:
        f.write(json.dumps(records[0]) + "\n")
        f.write('{"type":"sample","x":"' + "a" * (100 << 20) + '"}\n')
        f.write("".join(json.dumps(r) + "\n" for r in records[1:]))
    code = ("import resource, sys\nfrom portarun.monitor import read_timeline\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "timeline = read_timeline(sys.argv[1])\n"
            "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
            "print(timeline.skipped, len(timeline.samples), grown // 1024)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=_env(),
                          timeout=120)
    skipped, samples, grown_mb = map(int, proc.stdout.split())
    assert (skipped, samples) == (1, sum(r.get("type") == "sample" for r in records)), proc.stderr[-2000:]
    assert grown_mb < 40, f"reading grew the process by {grown_mb} MB"


def test_a_long_timeline_is_held_compactly(tmp_path: Path) -> None:
    """A long run's timeline read back for its report: every sample repeats the same keys, role
    paths and sources, which are now shared. A 30 MB timeline of this run's samples grew the
    reader by 3.8 times its size; now by 1.7 (the bound leaves room for the allocator)."""
    records = _timeline(tmp_path)
    start, samples = records[0], [r for r in records if r.get("type") == "sample"]
    path = tmp_path / "long.jsonl"
    lines = [json.dumps(s) + "\n" for s in samples]
    with path.open("w") as f:
        f.write(json.dumps(start) + "\n")
        while f.tell() < 30 << 20:
            f.writelines(lines)
    size_mb = path.stat().st_size / 2**20
    code = ("import resource, sys\nfrom portarun.monitor import read_timeline\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "timeline = read_timeline(sys.argv[1])\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=_env(),
                          timeout=300)
    grown_mb = float(proc.stdout)
    assert grown_mb < 2.5 * size_mb, f"a {size_mb:.0f} MB timeline grew the reader by {grown_mb:.0f} MB"


def test_a_warning_made_an_error_is_one_line_from_the_command_line(tmp_path: Path) -> None:
    """Under ``PYTHONWARNINGS=error`` (as in many CI jobs) a portarun warning is raised: the
    command line reports it in one line, saying that a warnings filter made it an error."""
    proc = portarun_cli("info", cwd=tmp_path, env=_env(PYTHONWARNINGS="error", PORTARUN_PLUGIN_TIMEOUT="nan"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith("portarun: error: PORTARUN_PLUGIN_TIMEOUT='nan' is not a number of seconds")
    assert "warnings filter" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_info_torch_with_a_torch_that_fails_to_import_still_reports(tmp_path: Path) -> None:
    """``portarun info --torch`` is what one runs when torch is broken (a CUDA library missing):
    torch's ImportError is named in one line and the report still comes out."""
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("libcudart.so.12: cannot open shared object file")\n')
    proc = portarun_cli("info", "--torch", cwd=tmp_path, env=_env(PYTHONPATH=str(fake.parent)))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "libcudart.so.12" in proc.stderr and proc.stdout.startswith("portarun ")


def test_a_timeline_claiming_thousands_of_gpus_is_summarized_in_linear_time(tmp_path: Path) -> None:
    """A start record listing 3000 GPUs and samples with 3000 GPU rows each: the summary searched
    every sample for every GPU (cubic in the file's size: ~17 s here, hours at the 1 MiB line
    limit); it groups the rows in one pass."""
    import time

    from portarun.monitor import build_report

    records = _timeline(tmp_path)
    start, sample = records[0], dict(next(r for r in records if r.get("type") == "sample"))
    start["gpus"] = [{"index": i, "name": "Tesla T4", "memory": 16 << 30} for i in range(3000)]
    sample["gpus"] = [{"index": i, "util": 50, "mem_used": 1 << 30, "mem_total": 16 << 30} for i in range(3000)]
    path = tmp_path / "gpus.jsonl"
    with path.open("w") as f:
        f.write(json.dumps(start) + "\n")
        for k in range(60):
            f.write(json.dumps({**sample, "t": float(start["t"]) + k}) + "\n")  # type: ignore[arg-type]
    started = time.perf_counter()
    report = build_report(path, plot=False)
    assert time.perf_counter() - started < 5.0
    assert len(report.summary.gpus) == 3000 and report.summary.gpus[-1].util_mean == 50


@pytest.mark.parametrize("method", ["locations", "session_limits", "session_start", "cpu_hint"])
def test_a_forced_plugin_host_that_cannot_answer_is_a_plugin_error(method: str) -> None:
    """A plugin provider that matches is asked, in isolation, what ``detect()`` will ask the
    winner; one forced by ``PORTARUN_HOST`` without matching was not, and its RuntimeError came
    out of ``detect()`` (``locations``, when its storage is not mounted, ``session_limits``,
    ``session_start``) or ``rt.cpu`` (``cpu_hint``). It is asked the same, and a failure is a
    PluginError naming it and saying to unset the variable (a RuntimeError from ``locations`` is
    not taken for a missing home folder either)."""
    import types

    import portarun
    from portarun import hookimpl
    from portarun.errors import PluginError
    from portarun.provider import Detection, HostLocations, Provider
    from portarun.testing import plugin, simulate

    class Acme(Provider):
        name = "acme"
        display_name = "Acme"

        @classmethod
        def detect(cls, probe: object) -> Detection:  # type: ignore[override]
            return Detection(0.0, ())

        def locations(self, project: str) -> HostLocations:
            base = self.probe.path("/acme")
            return HostLocations(base / "in", base / "scratch", base / "out", base / "persist", base / "cache")

    def boom(self: object, *args: object) -> None:
        raise RuntimeError("acme's API is down")

    setattr(Acme, method, boom)

    @hookimpl
    def portarun_register_providers(register):  # type: ignore[no-untyped-def]
        register(Acme)

    with plugin(types.SimpleNamespace(portarun_register_providers=portarun_register_providers)):
        with pytest.raises(PluginError, match=r"PORTARUN_HOST=acme forces .*acme's API is down.*Unset PORTARUN_HOST"):
            with pytest.warns(portarun.PortarunWarning):
                with simulate("local", env={"PORTARUN_HOST": "acme"}) as rt:
                    rt.cpu  # noqa: B018


@pytest.mark.parametrize("how", ["--png at the timeline", "a timeline named .png", "--png through a linked folder"])
def test_the_plot_never_replaces_the_timeline_it_is_drawn_from(tmp_path: Path, how: str) -> None:
    """``--png run.jsonl`` (or a timeline whose name already ends in ``.png``, whose default plot
    path is itself): the run's only record was replaced by its picture. Refused; the timeline
    stays as it was."""
    pytest.importorskip("matplotlib")
    name = "run.png" if how == "a timeline named .png" else "run.jsonl"
    timeline = _write(tmp_path / name, _timeline(tmp_path))
    before = timeline.read_bytes()
    args = ["monitor", "report", str(timeline)]
    if how == "--png at the timeline":
        args += ["--png", str(timeline)]
    elif how == "--png through a linked folder":
        (tmp_path / "linked").symlink_to(tmp_path)
        args += ["--png", str(tmp_path / "linked" / name)]
    proc = portarun_cli(*args)
    assert proc.returncode == 2 and proc.stderr.startswith("portarun: error: "), proc.stderr[-2000:]
    assert "--png" in proc.stderr and timeline.read_bytes() == before


@pytest.mark.parametrize("args", [("info",), ("--help",), ("launch", "--help")])
def test_the_command_line_runs_with_docstrings_stripped(tmp_path: Path, args: tuple[str, ...]) -> None:
    """``python -OO`` (or ``PYTHONOPTIMIZE=2`` in a deployment) strips docstrings, from which the
    commands' help lines are made: the first line of an empty docstring was an IndexError."""
    proc = subprocess.run([sys.executable, "-OO", "-m", "portarun", *args], capture_output=True, text=True,
                          cwd=tmp_path, env=_env(), timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.startswith(("portarun ", "usage: portarun"))


@pytest.mark.parametrize("args", [("info",), ("info", "--full", "--explain")])
def test_terminal_escapes_in_a_folder_name_never_reach_the_terminal(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A working folder (a cloned repository, an unpacked archive) named with ESC sequences (set
    the title, clear the screen) and a newline (a forged report line): ``portarun info`` prints
    the paths made from it with those characters escaped; ``--json`` keeps the real path."""
    folder = tmp_path / "repo\x1b]0;pwned\x07\x1b[2J\nhost         kaggle"
    folder.mkdir()
    proc = portarun_cli(*args, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\nhost         kaggle" not in proc.stdout
    assert "\\x1b]0;pwned\\x07" in proc.stdout
    data = json.loads(portarun_cli("info", "--json", cwd=folder).stdout)
    assert data["paths"]["input"]["path"] == str(folder / "data")
    shown = subprocess.run([sys.executable, "-c", "import portarun; print(str(portarun.detect()))"], cwd=folder,
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert "\\x1b]0;pwned" in shown.stdout and "\x1b" not in shown.stdout, shown.stderr[-2000:]  # str(rt) too


def test_terminal_escapes_in_a_timeline_and_its_path_never_reach_the_terminal(tmp_path: Path) -> None:
    """A timeline in a folder named with ESC sequences, holding an alert message and a host name
    with them: the report and the one-line errors print them escaped."""
    folder = tmp_path / "runs\x1b]0;pwned\x07"
    folder.mkdir()
    records = _timeline(tmp_path)
    records[0]["host_name"] = "Local\x1b[2J machine"
    records.insert(2, {"type": "alert", "t": records[1]["t"], "message": "disk\x1b[31m full"})
    timeline = _write(folder / "run.jsonl", records)
    proc = portarun_cli("monitor", "report", str(timeline), "--no-plot")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\\x1b[31m" in proc.stdout
    proc = portarun_cli("monitor", "report", str(folder / "missing.jsonl"))
    assert proc.returncode == 2 and "\x1b" not in proc.stderr and "\\x1b]0;pwned" in proc.stderr
