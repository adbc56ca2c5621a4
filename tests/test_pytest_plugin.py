"""The pytest plugin: --portarun-host runs a whole suite as if on a host; the fixture."""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER = """
import portarun, pytest

def test_host():
    assert portarun.detect().host.name == EXPECTED

def test_fixture(portarun_host):
    assert portarun_host.host.name == EXPECTED
    assert portarun_host.paths.output.is_dir()

@pytest.mark.parametrize("portarun_host", ["colab", "paperspace"], indirect=True)
def test_param(portarun_host):
    assert portarun_host.host.name in ("colab", "paperspace")
"""


@pytest.mark.parametrize("host", ["kaggle", "paperspace"])
def test_whole_suite_as_if_on_a_host(pytester: pytest.Pytester, host: str) -> None:
    pytester.makepyfile(INNER.replace("EXPECTED", repr(host)))
    result = pytester.runpytest_subprocess(f"--portarun-host={host}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"portarun: simulating host '{host}'"])


def test_unknown_host_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--portarun-host=kagle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--portarun-host: unknown simulated host 'kagle'; did you mean 'kaggle'? known: *"])
