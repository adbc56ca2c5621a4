"""Path roles: defaults per host, overrides (folders and fsspec URLs), clear errors."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import portarun
from portarun.errors import NotAvailableError, PathError
from portarun.paths import ensure_dir, join, project_folder
from portarun.testing import simulate


def test_kaggle_layout(tmp_path) -> None:
    with simulate("kaggle", root=tmp_path, project="demo") as rt:
        assert rt.paths.input == tmp_path / "kaggle/input"
        assert rt.paths.output == tmp_path / "kaggle/working"
        assert rt.paths.scratch == tmp_path / "kaggle/temp"
        assert rt.paths.persist == tmp_path / "kaggle/working/demo"
        assert rt.paths.checkpoints == tmp_path / "kaggle/working/demo/checkpoints"
        # Looking creates nothing: the project's folders appear with the first write.
        assert not rt.paths.persist.exists() and not rt.paths.cache.exists()


def test_kaggle_without_temp_uses_tmp(tmp_path) -> None:
    with simulate(env=dict(portarun.testing.PRESETS["kaggle"].env), paths=["/kaggle/input", "/kaggle/working"],
                  modules=["kaggle_secrets"], root=tmp_path) as rt:
        assert rt.paths.scratch == tmp_path / "tmp/portarun-scratch"


def test_local_layout_follows_platformdirs_under_the_simulated_home(tmp_path) -> None:
    with simulate(env={"HOME": "/home/u"}, root=tmp_path, project="p") as rt:
        assert rt.paths.input == tmp_path / "data"
        assert rt.paths.output == tmp_path / "outputs"
        assert str(rt.paths.persist).startswith(str(tmp_path / "home/u"))
        assert rt.paths.persist.name == "p"


def test_folder_override(tmp_path) -> None:
    target = tmp_path / "mnt/out"
    target.mkdir(parents=True)
    with simulate("kaggle", env={"PORTARUN_OUTPUT_DIR": "/mnt/out", "PORTARUN_PERSIST_DIR": "/mnt/out"},
                  root=tmp_path) as rt:
        assert rt.paths.output == target
        assert rt.paths.persist == target  # an override is the folder itself, not namespaced
        assert rt.paths.checkpoints == target / "checkpoints"


def test_url_override_for_persist(tmp_path) -> None:
    with simulate("colab-nodrive", env={"PORTARUN_PERSIST_DIR": "s3://bucket/runs/"}, root=tmp_path) as rt:
        assert rt.paths.persist == "s3://bucket/runs"
        assert rt.paths.checkpoints == "s3://bucket/runs/checkpoints"


def test_url_override_with_unknown_protocol() -> None:
    with pytest.raises(PathError, match=r"PORTARUN_CACHE_DIR=.*unknown fsspec protocol 'nosuch'"):
        with simulate(env={"PORTARUN_CACHE_DIR": "nosuch://x"}):
            pass


def test_missing_override_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(PathError,
                       match=r"PORTARUN_CHECKPOINTS_DIR points at '/nope', which does not exist .*\. Create"):
        with simulate(env={"PORTARUN_CHECKPOINTS_DIR": "/nope"}, root=tmp_path):
            pass


def test_override_pointing_at_a_file_says_it_is_a_file(tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PathError,
                       match="PORTARUN_CHECKPOINTS_DIR points at '/afile', which is a file, not a folder") as err:
        with simulate(env={"PORTARUN_CHECKPOINTS_DIR": "/afile"}, root=tmp_path):
            pass
    assert "mkdir" not in str(err.value)
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and unshare for a read-only mount")
def test_unwritable_override_is_a_clear_error(tmp_path) -> None:
    """A real read-only mount (root ignores permission bits, so chmod cannot test this)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    code = (
        "import portarun\n"
        "try:\n    portarun.detect()\n"
        "except portarun.PathError as e:\n    print('PathError:', e)\n"
    )
    script = f"mount -t tmpfs -o ro,size=1m tmpfs {ro} && {sys.executable} -c \"{code}\""
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PORTARUN_OUTPUT_DIR": str(ro), "PORTARUN_HOST": "local"})
    if "Operation not permitted" in proc.stderr:
        pytest.skip("this machine forbids mount namespaces")
    assert "PathError: PORTARUN_OUTPUT_DIR points at" in proc.stdout, proc.stderr
    assert "cannot write to" in proc.stdout


def test_default_folder_that_cannot_be_created(tmp_path) -> None:
    """Detection succeeds; the writer that creates the folder says what is in the way."""
    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle/working").write_text("a file where a folder should be")
    env = {"KAGGLE_KERNEL_RUN_TYPE": "Batch", "KAGGLE_URL_BASE": "x"}
    with simulate(env=env, root=tmp_path, paths=["/kaggle/input"]) as rt:
        with pytest.raises(PathError, match=r"cannot create the output folder .*working.: "
                                            r"a file of that name is in the way\. Set PORTARUN_OUTPUT_DIR"):
            ensure_dir(rt.paths.output, "output")


def test_join() -> None:
    assert join("s3://b/x/", "a", "b") == "s3://b/x/a/b"


def test_unknown_role_lists_the_roles() -> None:
    with simulate("local") as rt:
        with pytest.raises(PathError, match="roles are: input, scratch, output, persist, cache, checkpoints"):
            rt.paths["outputs"]


def test_mount_drive_off_colab_says_why() -> None:
    with simulate("local") as rt:
        with pytest.raises(NotAvailableError, match="only be mounted from Colab.*PORTARUN_PERSIST_DIR"):
            rt.mount_drive()


def test_mount_drive_on_colab_moves_persist_to_drive(tmp_path) -> None:
    calls: list[str] = []

    def mount(mountpoint: str) -> None:  # what google.colab.drive.mount does, at the package boundary
        calls.append(mountpoint)
        os.makedirs(os.path.join(mountpoint, "MyDrive"))

    with pytest.warns(portarun.PortarunWarning, match="Drive is not mounted"):
        with simulate("colab-nodrive", root=tmp_path, project="p") as rt:
            sys.modules["google.colab"].drive = types.SimpleNamespace(mount=mount)  # type: ignore[attr-defined]
            mounted = rt.mount_drive()
            assert calls == [str(tmp_path / "content/drive")]
            assert mounted.paths.persist == tmp_path / "content/drive/MyDrive/portarun/p"
            assert portarun.detect(project="p") is mounted


# -- project identity ---------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [("实验一", "实验二"), ("exp-α", "exp-β"), ("Exp", "exp"), ("My Exp", "My-Exp"),
                                  ("a/b", "a-b"), ("../..", "default")])
def test_distinct_project_names_get_distinct_folders(a: str, b: str) -> None:
    assert project_folder(a) != project_folder(b)


def test_project_folders_stay_readable_and_safe() -> None:
    assert project_folder("实验一") == "实验一"  # letters of any script are kept as they are
    assert project_folder("exp-α") == "exp-α"
    assert project_folder("resnet-sweep") == "resnet-sweep"
    assert project_folder("My Exp #3/final").startswith("My-Exp-3-final-")
    for hostile in ("../..", "..", "/", "", "con", "a\x00b", "x" * 500, "é\u0301", "\udcff"):
        folder = project_folder(hostile)
        assert folder and "/" not in folder and "\x00" not in folder and not folder.startswith(".")
        assert len(folder.encode("utf-8", "surrogateescape")) < 255
        assert all(ch.isalnum() or ch in "._-" for ch in folder)
        assert folder.split(".")[0].lower() != "con"
    assert project_folder(project_folder("My Exp")) == project_folder("My Exp")  # mount_drive re-detects with it


def test_unicode_project_names_from_the_environment(tmp_path) -> None:
    seen = set()
    for name in ("实验一", "实验二", "exp-α", "exp-β"):
        with simulate(env={"PORTARUN_PROJECT": name, "HOME": "/home/u"}, root=tmp_path) as rt:
            assert rt.project == name and rt.paths.persist.name == name
            assert name in rt.project_origin and f"Project: {name}" in rt.explain()
            seen.add(rt.paths.checkpoints)
    assert len(seen) == 4


_PRINT_PROJECT = "import portarun; rt = portarun.detect(); print(rt.project); print(rt.paths.checkpoints)\n"


def _run(script, cwd, **env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "XDG_"))}
    proc = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True,
                          env={**environment, "PORTARUN_HOST": "local", **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_two_scripts_called_train_py_never_share_a_project(tmp_path) -> None:
    """Real scripts in two folders: each gets its own project, stable across runs."""
    scripts = []
    for folder in ("alice", "bob"):
        (tmp_path / folder).mkdir()
        scripts.append(tmp_path / folder / "train.py")
        scripts[-1].write_text(_PRINT_PROJECT)
    first = _run(scripts[0], tmp_path)
    second = _run(scripts[1], tmp_path / "bob")
    assert first[0].startswith("train-") and second[0].startswith("train-")
    assert first != second
    assert _run(scripts[0], tmp_path / "bob") == first  # the same script from elsewhere: same project
    assert _run(Path("alice/train.py"), tmp_path) == first  # a relative argv[0] too


def test_notebooks_of_one_name_in_two_folders_are_two_projects() -> None:
    projects = set()
    for session in ("/home/u/a/Untitled.ipynb", "/home/u/b/Untitled.ipynb"):
        with simulate("local", kernel=True, env={"JPY_SESSION_NAME": session}) as rt:
            assert rt.project.startswith("Untitled-") and session in rt.project_origin
            projects.add(rt.project)
    assert len(projects) == 2


def test_a_shell_in_a_folder_gets_the_folders_project(tmp_path) -> None:
    (tmp_path / "w/exp").mkdir(parents=True)
    with simulate(env={"PWD": "/w/exp"}, root=tmp_path) as rt:
        assert rt.project.startswith("exp-") and "working folder '/w/exp'" in rt.project_origin


# -- looking creates nothing ---------------------------------------------------------------------
def _listing(*tops: Path) -> set[str]:
    seen = set()
    for top in tops:
        seen.add(f"{top} exists={top.exists()}")
        for dirpath, dirnames, filenames in os.walk(top):
            seen.update(os.path.join(dirpath, n) for n in (*dirnames, *filenames))
    return seen


_HOST_ROOTS = [Path(p) for p in ("/kaggle", "/notebooks", "/storage", "/content", "/tmp/portarun-scratch")]


@pytest.mark.real_machine
def test_detect_and_info_create_nothing(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """In-process and as `python -m portarun info`, also with forced hosts: nothing on disk changes."""
    from portarun._cli import main as cli

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "XDG_"))}
    env.update(HOME=str(home), PORTARUN_HOST="local")
    for key in [k for k in os.environ if k.startswith(("PORTARUN_", "XDG_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    before = _listing(tmp_path, *_HOST_ROOTS)
    rt = portarun.detect(refresh=True)
    assert str(rt.paths.persist).startswith(str(home)) and rt.paths.output == cwd / "outputs"
    assert cli.main(["info", "--full"]) == 0 and cli.main(["info", "--json"]) == 0
    for host in ("kaggle", "paperspace", "colab"):
        with pytest.warns(portarun.PortarunWarning) as record:
            assert cli.main(["info", "--host", host]) == 0
        assert any(f"forces the {host} provider" in str(w.message) for w in record)
    capsys.readouterr()
    for extra in ({}, {"PORTARUN_HOST": "kaggle"}, {"PORTARUN_HOST": "paperspace"}):
        proc = subprocess.run([sys.executable, "-m", "portarun", "info", "--full"], cwd=cwd, capture_output=True,
                              text=True, env={**env, **extra}, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert _listing(tmp_path, *_HOST_ROOTS) == before
    portarun.detect(refresh=True)


def test_forced_host_without_evidence_warns_and_names_the_detected_host() -> None:
    with pytest.warns(portarun.PortarunWarning, match=r"PORTARUN_HOST=kaggle forces the kaggle provider, but nothing "
                      r"here looks like it; detection found 'local'\. "
                      r"The paths it hands out belong to that other platform"):
        with simulate(env={"PORTARUN_HOST": "kaggle"}) as rt:
            assert rt.host.name == "kaggle" and rt.host.forced
    with simulate("kaggle") as rt:
        with pytest.warns(portarun.PortarunWarning, match=r"detect\(host=...\)=paperspace .*detection found 'kaggle'"):
            portarun.detect(host="paperspace")


def test_forcing_the_host_that_matches_does_not_warn() -> None:
    with simulate("kaggle", env={"PORTARUN_HOST": "kaggle"}) as rt:  # PortarunWarning is an error in this suite
        assert rt.host.forced
    with simulate("local", env={"PORTARUN_HOST": "local"}) as rt:
        assert rt.host.forced


# -- hostile overrides ---------------------------------------------------------------------------
def test_relative_override_is_made_absolute_and_said_so(tmp_path) -> None:
    (tmp_path / "w/out").mkdir(parents=True)
    with simulate(env={"PWD": "/w", "PORTARUN_OUTPUT_DIR": "out"}, root=tmp_path) as rt:
        assert rt.paths.output == tmp_path / "w/out" and rt.paths.output.is_absolute()
        assert "PORTARUN_OUTPUT_DIR='out' is relative: taken from the working folder at detect(), '/w'" in rt.explain()


def test_dotdot_and_home_in_overrides(tmp_path) -> None:
    (tmp_path / "home/u/runs").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    env = {"HOME": "/home/u", "PORTARUN_PERSIST_DIR": "~/runs", "PORTARUN_INPUT_DIR": "/home/u/runs/../../../data"}
    with simulate(env=env, root=tmp_path) as rt:
        assert rt.paths.persist == tmp_path / "home/u/runs"
        assert rt.paths.input == tmp_path / "data"
        assert "'..' resolved to '/data'" in rt.explain()
    with pytest.raises(PathError, match="starts with '~' but names no user"):
        with simulate(env={"PORTARUN_PERSIST_DIR": "~nosuchuser/x"}, root=tmp_path):
            pass


@pytest.mark.parametrize("value, message", [
    ("s3://", r"PORTARUN_CHECKPOINTS_DIR='s3://' names no bucket or folder after s3://"),
    ("s3:///", r"names no bucket or folder after s3://"),
    ("nosuch://x", r"unknown fsspec protocol 'nosuch'"),
    ("gcs://bucket/run", r"needs the package that provides gcs:// \(Please install gcsfs"),
    ("/a\x00b", r"contains a NUL byte"),
    ("/" + "x" * 5000, r"which cannot be used: File name too long"),
    ("/bad\udcffname", r"holds bytes that are not UTF-8 \('/bad\\udcffname'\)"),
])
def test_hostile_override_values_are_path_errors(tmp_path, value: str, message: str) -> None:
    with pytest.raises(PathError, match=message) as err:
        with simulate(env={"PORTARUN_CHECKPOINTS_DIR": value}, root=tmp_path):
            pass
    assert len(str(err.value)) < 600
    assert not (tmp_path / "s3:").exists()


def test_override_at_a_fifo_or_into_proc(tmp_path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "proc-link").symlink_to("/proc")
    with pytest.raises(PathError, match=r"'/fifo', which is a FIFO \(named pipe\), not a folder"):
        with simulate(env={"PORTARUN_SCRATCH_DIR": "/fifo"}, root=tmp_path):
            pass
    with pytest.raises(PathError, match=r"'/proc-link', which is '/proc' inside /proc, a kernel pseudo-filesystem"):
        with simulate(env={"PORTARUN_CACHE_DIR": "/proc-link"}, root=tmp_path):
            pass


def test_non_utf8_override_from_the_real_environment_is_one_line(tmp_path) -> None:
    """os.environb with a byte that is not UTF-8: `portarun info` says so and exits 2, no traceback."""
    env = {k.encode(): v.encode() for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    env[b"PORTARUN_OUTPUT_DIR"] = os.fsencode(str(tmp_path)) + b"/\xff"
    env[b"HOME"] = os.fsencode(str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "portarun", "info"], cwd=tmp_path, capture_output=True, env=env,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert b"PORTARUN_OUTPUT_DIR holds bytes that are not UTF-8" in proc.stderr and b"Traceback" not in proc.stderr


def test_info_reports_an_unreachable_location_instead_of_crashing(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    env.update(HOME=str(tmp_path), PORTARUN_CHECKPOINTS_DIR="ftp://127.0.0.1:1/runs")
    proc = subprocess.run([sys.executable, "-m", "portarun", "info", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    import json

    section = json.loads(proc.stdout)["checkpoints"]
    assert section["error"] and "ftp://127.0.0.1:1/runs" in json.dumps(section)


# -- portarun info and the script's project ----------------------------------------------------
@pytest.mark.slow  # real subprocesses: run once, not in the host matrix
def test_info_shows_a_scripts_project_and_lists_the_projects_found(tmp_path) -> None:
    script = tmp_path / "exp/train.py"
    script.parent.mkdir()
    script.write_text("import portarun\nrt = portarun.detect()\nrt.checkpoints.save({'w': 1}, 1)\n"
                      "rt.checkpoints.close()\nprint(rt.project)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "XDG_"))}
    env.update(HOME=str(tmp_path / "home"), PORTARUN_HOST="local", PORTARUN_PROGRESS="0")
    project = _run(script, tmp_path, **{k: env[k] for k in ("HOME", "PORTARUN_PROGRESS")})[-1]

    def info(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "portarun", "info", *args], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    plain = info()
    assert f"{project} (1 checkpoint)" in plain and "--script train.py" in plain
    import json

    scripted = json.loads(info("--script", "exp/train.py", "--json"))
    assert scripted["host"]["project"] == project and scripted["checkpoints"]["count"] == 1
    assert json.loads(info("--project", project, "--json"))["checkpoints"]["count"] == 1


def test_a_script_that_changes_folder_before_detect_keeps_its_project(tmp_path) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "elsewhere").mkdir()
    script = tmp_path / "exp/train.py"
    script.write_text(_PRINT_PROJECT)
    expected = _run(Path("exp/train.py"), tmp_path)
    script.write_text(f"import os\nos.chdir({str(tmp_path / 'elsewhere')!r})\n" + _PRINT_PROJECT)
    assert _run(Path("exp/train.py"), tmp_path) == expected


def test_a_project_name_with_bytes_that_are_not_utf8(tmp_path) -> None:
    """PORTARUN_PROJECT from os.environb: a folder name without the stray byte, distinct from the clean name."""
    env = {k.encode(): v.encode() for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    env.update({b"HOME": os.fsencode(str(tmp_path)), b"PORTARUN_HOST": b"local"})
    code = "import portarun; rt = portarun.detect(); print(rt.project); print(rt.explain())"
    outputs = []
    for name in (b"exp\xff", b"exp"):
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              env={**env, b"PORTARUN_PROJECT": name}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout.decode("utf-8").splitlines()[0])
    assert outputs[1] == "exp" and outputs[0].startswith("exp-") and outputs[0] != "exp"


@pytest.mark.real_machine  # the working folder is this machine's, deleted for real
def test_a_deleted_working_folder_is_a_clear_error(tmp_path: Path) -> None:
    """A notebook or script whose folder was removed under it (a temporary checkout, say):
    ``detect()`` and ``portarun info`` say so, instead of a FileNotFoundError from pathlib."""
    gone = tmp_path / "gone"
    code = ("import os, sys\nos.mkdir(sys.argv[1]); os.chdir(sys.argv[1]); os.rmdir(sys.argv[1])\n"
            "import portarun\nfrom portarun.errors import PathError\n"
            "try:\n    portarun.detect()\nexcept PathError as exc:\n    print('PathError:', exc)\n"
            "from portarun._cli.main import main\nsys.exit(main(['info']))\n")
    result = subprocess.run([sys.executable, "-c", code, str(gone)], capture_output=True, text=True, timeout=120)
    assert "PathError: this process's working folder no longer exists" in result.stdout, result.stderr[-2000:]
    assert result.returncode == 2
    assert result.stderr.startswith("portarun: error: this process's working folder no longer exists")
    assert "Traceback" not in result.stderr
