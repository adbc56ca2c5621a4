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


# "On Saturn Cloud, every job pod gets these environment variables for free" (Saturn's docs,
# corpus saturn-docs-job-pod-variables); the values below only stand in for the names.
JOB_ENV = {"SATURN_JOB_SCALE": "2", "SATURN_JOB_RANK": "0", "SATURN_JOB_RUN": "run", "SATURN_JOB_LEADER": "run-0",
           "SATURN_INTERNAL_SUBDOMAIN": "sub", "SATURN_NAMESPACE": "main-namespace"}


def test_a_job_pod_is_recognised_from_its_job_variables_and_warns_about_persist(tmp_path: Path) -> None:
    with pytest.warns(PortarunWarning, match="a job"):
        with simulate(env=JOB_ENV, root=tmp_path / "root") as rt:
            assert rt.host.name == "saturn"
            assert verdict_of(rt)[0] == pytest.approx(0.5)


def test_one_job_variable_alone_is_not_saturn() -> None:
    with simulate(env={"SATURN_JOB_RANK": "0"}) as rt:
        assert rt.host.name == "local"
        assert 0.0 < verdict_of(rt)[0] < 0.5
