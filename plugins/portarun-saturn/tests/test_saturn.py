"""Saturn Cloud: a resource is recognised from what Saturn sets inside it and keeps everything
on the workspace's persistent home; a laptop connected to a Saturn Dask cluster and a plain
Jupyter Docker Stacks image are not Saturn."""
from __future__ import annotations

from pathlib import Path

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime
from portarun.testing import simulate

SERVER_ENV = {
    "HOME": "/home/jovyan", "SATURN_IS_INTERNAL": "true", "SATURN_RESOURCE_TYPE": "SingleUserServer",
    "SATURN_VERSION": "2021.07.19", "SATURN_BASE_URL": "https://app.community.saturnenterprise.io",
    "SATURN_TOKEN": "redacted",
}


def verdict_of(rt: Runtime) -> tuple[float, tuple[str, ...]]:
    detection = next(v.detection for v in rt.verdicts if v.provider == "saturn")
    return (detection.confidence, detection.evidence) if detection else (0.0, ())


def test_jupyter_server_keeps_everything_on_its_persistent_home(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env=SERVER_ENV, paths=["/home/jovyan/workspace"], root=root, project="nlp") as rt:
        assert rt.host.name == "saturn"
        assert rt.host.confidence == pytest.approx(0.7)
        home = root / "home/jovyan"
        assert rt.paths.persist == home / "portarun/nlp"
        assert rt.paths.checkpoints == home / "portarun/nlp/checkpoints"
        assert rt.paths.output == home / "portarun/nlp/outputs"
        assert rt.paths.input == home / "workspace"
        assert rt.paths.cache == home / ".cache"
        assert rt.paths.scratch == root / "tmp/portarun-scratch"
        assert rt.session.limit is None


def test_a_resource_that_is_not_a_jupyter_server_warns_about_persist(tmp_path: Path) -> None:
    env = {**SERVER_ENV, "SATURN_RESOURCE_TYPE": "PrefectCloudFlowRun"}
    with pytest.warns(PortarunWarning, match="not a Jupyter server"):
        with simulate(env=env, root=tmp_path / "root") as rt:
            assert rt.host.name == "saturn"


def test_a_laptop_connected_to_a_saturn_dask_cluster_is_not_saturn() -> None:
    env = {"HOME": "/home/me", "SATURN_BASE_URL": "https://app.community.saturnenterprise.io",
           "SATURN_TOKEN": "redacted"}
    with simulate(env=env) as rt:
        assert rt.host.name == "local"
        confidence, evidence = verdict_of(rt)
        assert confidence == 0.0
        assert any("reach its Dask clusters" in line for line in evidence)


def test_an_external_client_flag_is_noted_not_counted() -> None:
    with simulate(env={"SATURN_IS_INTERNAL": "false"}) as rt:
        assert verdict_of(rt)[0] == 0.0


def test_a_jupyter_docker_stacks_image_is_not_saturn() -> None:
    with simulate(env={"HOME": "/home/jovyan"}, paths=["/home/jovyan/workspace"]) as rt:
        assert rt.host.name == "local"
        assert verdict_of(rt)[0] == pytest.approx(0.1)
