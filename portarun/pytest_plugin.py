"""pytest plugin (entry point ``pytest11``): run a whole test-suite as if on a host.

``pytest --portarun-host=kaggle`` wraps the session in :func:`portarun.testing.simulate`, so
every ``portarun.detect()`` in the code under test sees Kaggle. The ``portarun_host`` fixture
gives a simulated runtime per test: the ``--portarun-host`` one, ``local`` by default, or the
value of an indirect parametrization::

    @pytest.mark.parametrize("portarun_host", ["colab", "kaggle"], indirect=True)
    def test_paths(portarun_host): ...
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .runtime import Runtime

_SESSION_KEY = pytest.StashKey[AbstractContextManager[Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("portarun")
    group.addoption("--portarun-host", metavar="NAME", default=None,
                    help="run the tests as if on this host (a portarun.testing preset: colab, kaggle, ...)")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--portarun-host", None)
    if not name:
        return
    from .errors import UnknownHostError
    from .testing import simulate

    try:
        cm = simulate(name)
        cm.__enter__()
    except UnknownHostError as exc:
        raise pytest.UsageError(f"--portarun-host: {exc}") from None
    config.stash[_SESSION_KEY] = cm


def pytest_unconfigure(config: pytest.Config) -> None:
    cm = config.stash.get(_SESSION_KEY, None)
    if cm is not None:
        cm.__exit__(None, None, None)
        del config.stash[_SESSION_KEY]


def pytest_report_header(config: pytest.Config) -> str | None:
    name = config.getoption("--portarun-host", None)
    return f"portarun: simulating host {name!r}" if name else None


@pytest.fixture
def portarun_host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime simulated on the requested host, under this test's ``tmp_path``."""
    from .testing import simulate

    name = getattr(request, "param", None) or request.config.getoption("--portarun-host", None) or "local"
    with simulate(name, root=tmp_path / "host") as rt:
        yield rt
