"""``portarun info`` (and ``python -m portarun``) as a user runs it: a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SECRET_VALUES = {
    "KAGGLE_KEY": "kk-0a1b2c3d4e5f", "HF_TOKEN": "hf_zyxwvutsrq", "MY_SERVICE_PASSWORD": "hunter2-xyz",
    "AWS_SECRET_ACCESS_KEY": "aws-abcdefghij", "KAGGLE_USER_SECRETS_TOKEN": "eyJhbGciOiJIUzI1NiJ9.x",
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "portarun", *args], capture_output=True, text=True, env=full_env,
                          timeout=60)


def test_info_text_has_every_section_with_full() -> None:
    proc = run("info", "--full")
    assert proc.returncode == 0, proc.stderr
    for header in ("HOST", "PATHS", "SESSION", "SYSTEM", "PACKAGES", "PLUGINS"):
        assert f"\n{header}\n" in proc.stdout


def test_info_is_one_screen_by_default() -> None:
    proc = run("info", env={"PORTARUN_HOST": ""})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) <= 25 and all(len(line) < 200 for line in lines[:3])
    labels = {line.split()[0] for line in lines[2:] if line.strip() and not line.startswith(" ")}
    assert {"host", "project", "input", "scratch", "output", "persist", "cache", "checkpoints", "device",
            "loader", "session"} <= labels
    assert "--full" in proc.stdout and "PACKAGES" not in proc.stdout


def test_local_says_no_hosted_platform_instead_of_a_low_confidence() -> None:
    from portarun._cli import report
    from portarun.testing import simulate

    with simulate("local") as rt:
        local = report.render_summary(report.build(rt))
    with simulate("kaggle") as rt:
        kaggle = report.render_summary(report.build(rt))
    assert "host         local (no hosted platform found)\n" in local and "confidence" not in local
    assert "host         kaggle (Kaggle, confidence 0." in kaggle


def test_help_shows_plain_text() -> None:
    proc = subprocess.run([sys.executable, "-m", "portarun", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "``" not in proc.stdout and ":func:" not in proc.stdout
    assert "Where am I running" in proc.stdout


def test_info_json_keys_are_stable() -> None:
    proc = run("info", "--json", "--host", "local")
    data = json.loads(proc.stdout)
    assert {"portarun_version", "host", "paths", "session", "system", "packages", "plugins"} <= set(data)
    assert data["host"]["name"] == "local" and data["host"]["forced"] is True
    assert set(data["paths"]) == {"input", "scratch", "output", "persist", "cache", "checkpoints"}
    assert {"logical", "affinity", "quota", "usable"} <= set(data["system"]["cpus"])
    assert {"total_bytes", "free_bytes"} <= set(data["system"]["shm"])
    assert "torch" in data["packages"]
    assert data["plugins"]["kaggle"]["builtin"] is True


def test_explain_lists_every_provider() -> None:
    proc = run("info", "--explain")
    for name in ("local", "colab", "kaggle", "paperspace"):
        assert f". {name}" in proc.stdout


def test_unknown_host_is_one_clear_line() -> None:
    proc = run("--host", "kagle")
    assert proc.returncode == 2
    first = proc.stderr.strip()
    assert first.startswith("portarun: error: unknown host 'kagle'; did you mean 'kaggle'? known: ")
    assert "\n" not in first and "Traceback" not in proc.stderr


def test_host_names_are_case_insensitive() -> None:
    proc = run("info", "--json", env={"PORTARUN_HOST": "Kaggle"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["host"]["name"] == "kaggle"


def test_bad_override_is_one_clear_line() -> None:
    proc = run("info", env={"PORTARUN_OUTPUT_DIR": "/definitely/missing"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "PORTARUN_OUTPUT_DIR points at '/definitely/missing', which does not exist" in proc.stderr


@pytest.mark.parametrize("args", [("info", "--json", "--explain"), ("info", "--explain")])
def test_credentials_are_never_printed(args: tuple[str, ...]) -> None:
    proc = run(*args, env={**SECRET_VALUES, "KAGGLE_USERNAME": "alice", "PAPERSPACE_API_KEY": "ps-key-999"})
    assert proc.returncode == 0, proc.stderr
    for value in [*SECRET_VALUES.values(), "ps-key-999"]:
        assert value not in proc.stdout and value not in proc.stderr


def test_console_script_is_installed() -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "portarun")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("portarun ")


def test_a_failing_section_does_not_sink_the_report() -> None:
    proc = run("info", "--json", env={"PORTARUN_DEVICE": "mps"})
    assert proc.returncode == 0, proc.stderr
    import json as _json

    data = _json.loads(proc.stdout)
    assert "'mps' was requested" in data["loader"]["error"]
    assert data["host"]["name"]
