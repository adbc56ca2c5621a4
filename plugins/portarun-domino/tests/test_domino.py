"""Domino Data Lab: a run is recognised from the variables Domino injects into it; a DFS
project keeps persist in its working directory and outputs in its results folder, a Git-based
project in its artifacts; Domino API settings on a laptop or CI machine are not a run."""
from __future__ import annotations

from pathlib import Path

import pytest

from portarun.runtime import Runtime
from portarun.testing import simulate

RUN_ENV = {
    "HOME": "/home/ubuntu", "DOMINO_RUN_ID": "60f829fad7e1834bafb5fd02", "DOMINO_RUN_NUMBER": "16",
    "DOMINO_HARDWARE_TIER_ID": "small-k8s", "DOMINO_STARTING_USERNAME": "alice", "DOMINO_WORKING_DIR": "/mnt",
    "DOMINO_PROJECT_NAME": "churn", "DOMINO_PROJECT_OWNER": "alice", "DOMINO_API_HOST": "http://nucleus-frontend.domino-platform:80",
}


def verdict_of(rt: Runtime) -> tuple[float, tuple[str, ...]]:
    detection = next(v.detection for v in rt.verdicts if v.provider == "domino")
    return (detection.confidence, detection.evidence) if detection else (0.0, ())


def test_dfs_run_persists_in_the_working_directory_and_writes_results(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env=RUN_ENV, paths=["/mnt", "/domino/datasets"], root=root, project="churn") as rt:
        assert rt.host.name == "domino"
        assert rt.host.confidence == pytest.approx(0.75)
        assert rt.paths.persist == root / "mnt/portarun/churn"
        assert rt.paths.checkpoints == root / "mnt/portarun/churn/checkpoints"
        assert rt.paths.output == root / "mnt/results/churn"
        assert rt.paths.input == root / "domino/datasets"
        assert rt.paths.scratch == root / "tmp/portarun-scratch"
        assert rt.paths.cache == root / "home/ubuntu/.cache"
        assert rt.session.limit is None


def test_git_based_run_persists_in_the_artifacts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    env = {**RUN_ENV, "DOMINO_WORKING_DIR": "/mnt/code", "DOMINO_IS_GIT_BASED": "true",
           "DOMINO_ARTIFACTS_DIR": "/mnt/artifacts", "DOMINO_DATASETS_DIR": "/mnt/data"}
    with simulate(env=env, paths=["/mnt/code", "/mnt/artifacts", "/mnt/data"], root=root, project="churn") as rt:
        assert rt.host.name == "domino"
        assert rt.paths.persist == root / "mnt/artifacts/portarun/churn"
        assert rt.paths.output == root / "mnt/artifacts/portarun/churn/outputs"
        assert rt.paths.input == root / "mnt/data"


def test_a_custom_working_directory_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    env = {**RUN_ENV, "DOMINO_WORKING_DIR": "/mnt/alice/churn"}
    with simulate(env=env, root=root, project="churn") as rt:
        assert rt.paths.persist == root / "mnt/alice/churn/portarun/churn"


@pytest.mark.parametrize("value", ["", "redacted", "mnt/work"])
def test_a_working_directory_that_is_not_absolute_falls_back_to_mnt(value: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env={**RUN_ENV, "DOMINO_WORKING_DIR": value}, root=root, project="churn") as rt:
        assert rt.paths.persist == root / "mnt/portarun/churn"


def test_domino_api_settings_on_a_ci_machine_are_not_a_run() -> None:
    env = {"DOMINO_API_HOST": "https://demo.dominodatalab.com", "DOMINO_USER_API_KEY": "redacted",
           "DOMINO_PROJECT_NAME": "Model-Pipeline-GBP", "DOMINO_PROJECT_OWNER": "elliott_botwick"}
    with simulate(env=env, paths=["/mnt"]) as rt:
        assert rt.host.name == "local"
        confidence, evidence = verdict_of(rt)
        assert confidence == 0.0
        assert any("drive the Domino API" in line for line in evidence)


def test_a_run_id_alone_stays_below_the_threshold() -> None:
    with simulate(env={"DOMINO_RUN_ID": "1"}) as rt:
        assert rt.host.name == "local"
        assert verdict_of(rt)[0] == pytest.approx(0.3)
