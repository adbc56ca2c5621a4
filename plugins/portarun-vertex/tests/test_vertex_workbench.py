"""Vertex AI Workbench: an instance is recognised from VERTEX_PRODUCT with its jupyter home and
keeps everything under /home/jupyter; Colab Enterprise stays Colab's, and Vertex SDK variables
on a laptop are not a Workbench."""
from __future__ import annotations

from pathlib import Path

import pytest

from portarun.runtime import Runtime
from portarun.testing import simulate

WORKBENCH_ENV = {"HOME": "/home/jupyter", "VERTEX_PRODUCT": "WORKBENCH_INSTANCE", "GOOGLE_CLOUD_PROJECT": "my-project"}


def verdict_of(rt: Runtime) -> tuple[float, tuple[str, ...]]:
    detection = next(v.detection for v in rt.verdicts if v.provider == "vertex-workbench")
    return (detection.confidence, detection.evidence) if detection else (0.0, ())


def test_workbench_instance_keeps_everything_under_the_jupyter_home(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env=WORKBENCH_ENV, paths=["/home/jupyter"], root=root, project="forecast") as rt:
        assert rt.host.name == "vertex-workbench"
        assert rt.host.confidence == pytest.approx(0.75)
        home = root / "home/jupyter"
        assert rt.paths.persist == home / "portarun/forecast"
        assert rt.paths.checkpoints == home / "portarun/forecast/checkpoints"
        assert rt.paths.output == home / "portarun/forecast/outputs"
        assert rt.paths.cache == home / ".cache"
        assert rt.paths.scratch == root / "tmp/portarun-scratch"
        assert rt.session.limit is None


def test_the_product_variable_alone_is_a_workbench(tmp_path: Path) -> None:
    """Google's own SDKs label a process "Workbench" from this one variable (corpus
    vertex-vendor-aiplatform-workbench-instance), so portarun does too."""
    with simulate(env={"VERTEX_PRODUCT": "WORKBENCH_INSTANCE"}, root=tmp_path / "root", project="p") as rt:
        assert rt.host.name == "vertex-workbench"
        assert verdict_of(rt)[0] == pytest.approx(0.5)
        assert rt.paths.persist == tmp_path / "root/home/jupyter/portarun/p"


@pytest.mark.parametrize("value", ["WORKBENCH_CUSTOM_CONTAINER", "OTHER"])
def test_other_product_values_are_noted_not_counted(value: str) -> None:
    with simulate(env={"VERTEX_PRODUCT": value}) as rt:
        assert rt.host.name == "local"
        assert verdict_of(rt)[0] == 0.0


def test_a_jupyter_home_without_the_product_variable_is_not_a_workbench() -> None:
    with simulate(env={"HOME": "/home/jupyter"}, paths=["/home/jupyter"]) as rt:
        assert rt.host.name == "local"
        assert verdict_of(rt)[0] == pytest.approx(0.25)


def test_colab_enterprise_is_left_to_the_colab_provider() -> None:
    with simulate(env={"VERTEX_PRODUCT": "COLAB_ENTERPRISE"}) as rt:
        confidence, evidence = verdict_of(rt)
        assert confidence == 0.0
        assert any("colab provider" in line for line in evidence)


def test_vertex_sdk_variables_on_a_laptop_are_not_a_workbench() -> None:
    env = {"HOME": "/home/me", "AIP_MODEL_DIR": "gs://bucket/model", "AIP_HEALTH_ROUTE": "/ping",
           "GOOGLE_CLOUD_PROJECT": "my-project", "CLOUD_ML_PROJECT_ID": "my-project"}
    with simulate(env=env) as rt:
        assert rt.host.name == "local"
        confidence, evidence = verdict_of(rt)
        assert confidence == 0.0
        assert any("AIP_HEALTH_ROUTE, AIP_MODEL_DIR" in line for line in evidence)
