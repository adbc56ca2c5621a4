"""Azure ML compute instances: recognised from the instance's CI_* variables, its site name and
the workspace file share, keeping checkpoints on the share; Azure ML job variables, App Service
site names and a lone CI_* name are not an instance."""
from __future__ import annotations

from pathlib import Path

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime
from portarun.testing import simulate

SHARE = "/home/azureuser/cloudfiles/code"
INSTANCE_ENV = {
    "HOME": "/home/azureuser", "CI_NAME": "alice-ci", "CI_RESOURCE_GROUP": "ml-rg", "CI_WORKSPACE": "ml-ws",
    "CI_LOCAL_UBUNTU_USER": "azureuser", "APPSETTING_WEBSITE_SITE_NAME": "AMLComputeInstance",
    "MLFLOW_TRACKING_URI": "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/0000/resourceGroups/ml-rg",
}


def verdict_of(rt: Runtime) -> tuple[float, tuple[str, ...]]:
    detection = next(v.detection for v in rt.verdicts if v.provider == "azureml")
    return (detection.confidence, detection.evidence) if detection else (0.0, ())


def test_compute_instance_keeps_checkpoints_on_the_workspace_share(tmp_path: Path) -> None:
    root = tmp_path / "root"
    paths = [SHARE, "/mnt/batch/tasks/shared/LS_root/mounts/clusters/alice-ci/code"]
    with simulate(env=INSTANCE_ENV, paths=paths, root=root, project="vision") as rt:
        assert rt.host.name == "azureml"
        assert rt.host.confidence == 0.99
        share = root / SHARE.lstrip("/")
        assert rt.paths.persist == share / "portarun/vision"
        assert rt.paths.checkpoints == share / "portarun/vision/checkpoints"
        assert rt.paths.output == share / "portarun/vision/outputs"
        assert rt.paths.input == share
        assert rt.paths.cache == root / "home/azureuser/.cache"
        assert rt.paths.scratch == root / "tmp/portarun-scratch"
        assert rt.session.limit is None


def test_instance_variables_with_the_share_are_enough(tmp_path: Path) -> None:
    env = {k: INSTANCE_ENV[k] for k in ("CI_NAME", "CI_RESOURCE_GROUP", "CI_WORKSPACE")}
    with simulate(env=env, paths=[SHARE], root=tmp_path / "root") as rt:
        assert rt.host.name == "azureml"
        assert rt.host.confidence == pytest.approx(0.5)


def test_the_site_name_with_the_vm_metadata_file_is_enough(tmp_path: Path) -> None:
    env = {"APPSETTING_WEBSITE_SITE_NAME": "AMLComputeInstance"}
    with pytest.warns(PortarunWarning, match="no workspace file share"):
        with simulate(env=env, files=["/mnt/azmnt/.nbvm"], root=tmp_path / "root") as rt:
            assert rt.host.name == "azureml"
            assert rt.host.confidence == pytest.approx(0.5)
    with simulate(env=env, root=tmp_path / "bare") as rt:
        assert rt.host.name == "local"


def test_without_the_share_persist_warns_it_dies_with_the_instance(tmp_path: Path) -> None:
    with pytest.warns(PortarunWarning, match="no workspace file share"):
        with simulate(env=INSTANCE_ENV, root=tmp_path / "root") as rt:
            assert rt.host.name == "azureml"
            assert rt.paths.persist == tmp_path / "root/home/azureuser/portarun" / rt.project


def test_an_azureml_job_container_is_not_a_compute_instance() -> None:
    env = {"AZUREML_RUN_ID": "redacted", "AZUREML_COMPUTE_NAME": "redacted", "AML_COMPUTE_TARGET": "redacted"}
    with simulate(env=env) as rt:
        assert rt.host.name == "local"
        confidence, evidence = verdict_of(rt)
        assert confidence == 0.0
        assert any("job containers" in line for line in evidence)


@pytest.mark.parametrize("site", ["DUMMY", "az-cli-workaround", "my-web-app"])
def test_other_site_names_and_a_lone_ci_name_stay_weak(site: str) -> None:
    with simulate(env={"APPSETTING_WEBSITE_SITE_NAME": site, "CI_NAME": "build-42"}) as rt:
        assert rt.host.name == "local"
        assert verdict_of(rt)[0] == pytest.approx(0.1)
