"""Databricks: a cluster driver is recognised from what Databricks sets there, with DBFS for
persist and /local_disk0 for scratch; Databricks Connect on a laptop and a runtime image run
elsewhere are not."""
from __future__ import annotations

from pathlib import Path

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime
from portarun.testing import simulate

# A notebook on a classic cluster: the runtime's variables (kedro-org/kedro#1729), the
# init-script variables Databricks documents for every cluster, and its mounts.
NOTEBOOK_ENV = {
    "HOME": "/root", "DATABRICKS_RUNTIME_VERSION": "13.3", "DB_CLUSTER_ID": "0818-155203-cheese22",
    "DB_IS_DRIVER": "TRUE", "DEFAULT_DATABRICKS_ROOT_VIRTUALENV_ENV": "/databricks/python3",
    "DATABRICKS_CLUSTER_LIBS_R_ROOT_DIR": "r",
}
NOTEBOOK_PATHS = ["/dbfs", "/local_disk0", "/Volumes", "/databricks/python3"]


def confidence(rt: Runtime) -> float:
    return next(v.confidence for v in rt.verdicts if v.provider == "databricks")


def evidence(rt: Runtime) -> tuple[str, ...]:
    detection = next(v.detection for v in rt.verdicts if v.provider == "databricks")
    return detection.evidence if detection else ()


def test_cluster_notebook_is_detected_with_dbfs_and_local_disk_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env=NOTEBOOK_ENV, paths=NOTEBOOK_PATHS, root=root, project="churn") as rt:
        assert rt.host.name == "databricks"
        assert rt.host.confidence >= 0.9
        assert rt.paths.persist == root / "dbfs/portarun/churn"
        assert rt.paths.checkpoints == root / "dbfs/portarun/churn/checkpoints"
        assert rt.paths.output == root / "dbfs/portarun/churn/outputs"
        assert rt.paths.input == root / "Volumes"
        assert rt.paths.scratch == root / "local_disk0/portarun-scratch"
        assert rt.paths.cache == root / "local_disk0/portarun-cache"
        assert rt.session.limit is None


def test_without_dbfs_persist_warns_and_points_at_volumes(tmp_path: Path) -> None:
    with pytest.warns(PortarunWarning, match="/Volumes/<catalog>/<schema>/<volume>"):
        with simulate(env=NOTEBOOK_ENV, paths=["/local_disk0"], root=tmp_path / "root") as rt:
            assert rt.host.name == "databricks"
            assert rt.paths.persist == tmp_path / "root/local_disk0/portarun" / rt.project


def test_databricks_connect_on_a_laptop_is_not_databricks() -> None:
    env = {"HOME": "/home/boc", "DATABRICKS_RUNTIME_VERSION": "connect", "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net",
           "DATABRICKS_TOKEN": "redacted", "DATABRICKS_CLUSTER_ID": "0818-155203-cheese22"}
    with simulate(env=env) as rt:
        assert rt.host.name == "local"
        assert confidence(rt) == 0.0
        assert any("Databricks Connect" in line for line in evidence(rt))


def test_a_runtime_image_run_elsewhere_stays_below_the_threshold() -> None:
    env = {"DATABRICKS_RUNTIME_VERSION": "16.4", "VIRTUAL_ENV": "/databricks/python3", "USER": "root"}
    with simulate(env=env, paths=["/databricks/python3"]) as rt:
        assert rt.host.name == "local"
        assert confidence(rt) == pytest.approx(0.3)


@pytest.mark.parametrize("value", ["client.1.13", "1"])
def test_values_that_are_not_a_runtime_version_are_noted_not_counted(value: str) -> None:
    with simulate(env={"DATABRICKS_RUNTIME_VERSION": value}) as rt:
        assert confidence(rt) == 0.0
        assert any("not a cluster runtime version" in line for line in evidence(rt))


RUNTIME_SHELL = "/databricks/python_shell/dbruntime"


def test_the_runtime_package_alone_is_a_cluster(tmp_path: Path) -> None:
    """``dbruntime`` is the package the Databricks Runtime injects into its Python shell; the
    Databricks SDK takes a successful import of it as proof of a classic runtime. A traceback
    from a cluster shows it and nothing else Databricks sets (corpus databricks-vscode-*)."""
    with pytest.warns(PortarunWarning, match="no DBFS mount"):
        with simulate(modules=["dbruntime"], paths=[RUNTIME_SHELL], root=tmp_path / "root") as rt:
            assert rt.host.name == "databricks"
            assert any("module dbruntime" in line for line in evidence(rt))


def test_without_the_runtime_package_nothing_is_counted_for_it() -> None:
    with simulate(paths=[RUNTIME_SHELL]) as rt:
        assert confidence(rt) == 0.0
