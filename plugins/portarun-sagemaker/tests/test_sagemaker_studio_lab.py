"""SageMaker Studio Lab: the project home and conda environment, and the CPU/GPU session limits."""
from __future__ import annotations

from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

from portarun.testing import simulate

HOME = "/home/studio-lab-user"
STUDIO_LAB_ENV = {"HOME": HOME, "USER": "studio-lab-user", "PWD": HOME, "CONDA_DEFAULT_ENV": "default"}
STUDIO_LAB_PATHS = [f"{HOME}/.conda/envs/default", f"{HOME}/sagemaker-studiolab-notebooks"]


def test_cpu_project_is_detected_with_persistent_home_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env=STUDIO_LAB_ENV, paths=STUDIO_LAB_PATHS, root=root, project="mnist") as rt:
        assert rt.host.name == "sagemaker-studiolab"
        assert (rt.host.plugin, rt.host.version) == ("sagemaker", version("portarun-sagemaker"))
        home = root / HOME.lstrip("/")
        assert rt.paths.persist == home / "portarun/mnist"
        assert rt.paths.checkpoints == home / "portarun/mnist/checkpoints"
        assert rt.paths.output == home / "portarun/mnist/outputs"
        assert rt.paths.cache == home / ".cache"
        for role, value in rt.paths.as_dict().items():
            assert Path(value).is_relative_to(root), (role, value)
        assert rt.session.limit == timedelta(hours=12)


def test_gpu_project_has_a_four_hour_session() -> None:
    with simulate(env=STUDIO_LAB_ENV, paths=STUDIO_LAB_PATHS, gpus=["Tesla T4"]) as rt:
        assert rt.host.name == "sagemaker-studiolab"
        assert rt.session.limit == timedelta(hours=4)
        assert "GPU" in rt.session.source


def test_older_studiolab_conda_env_counts_too() -> None:
    with simulate(env={"HOME": HOME}, paths=[f"{HOME}/.conda/envs/studiolab"]) as rt:
        assert rt.host.name == "sagemaker-studiolab"


def test_a_lone_folder_or_user_name_is_not_studio_lab() -> None:
    with simulate(env={"HOME": "/home/me"}, paths=[HOME]) as rt:
        assert rt.host.name == "local"
    with simulate(env={"USER": "studio-lab-user", "HOME": "/home/me"}) as rt:
        assert rt.host.name == "local"


def test_session_files_and_image_variable_identify_studio_lab_without_home_variables() -> None:
    """A process that lost HOME/USER still runs in the Studio Lab home with its conda envs; the
    image sets SAGEMAKER_INTERNAL_IMAGE_URI (gutris1/segsmaker script/marking.py)."""
    env = {"SAGEMAKER_INTERNAL_IMAGE_URI": "redacted", "PWD": HOME}
    with simulate(env=env, paths=[f"{HOME}/.conda/envs"]) as rt:
        assert rt.host.name == "sagemaker-studiolab"
    with simulate(env={"HOME": HOME}, paths=[f"{HOME}/.conda/envs/my-env"]) as rt:
        assert rt.host.name == "sagemaker-studiolab"


def test_image_variable_alone_is_sagemaker_studio_not_studio_lab() -> None:
    with simulate(env={"SAGEMAKER_INTERNAL_IMAGE_URI": "redacted", "HOME": "/home/sagemaker-user"}) as rt:
        assert rt.host.name == "local"


def test_a_near_miss_names_the_studio_lab_home() -> None:
    with simulate(env={"HOME": HOME, "USER": "studio-lab-user"}) as rt:
        assert rt.host.name == "local"
        verdict = next(v for v in rt.verdicts if v.provider == "sagemaker-studiolab")
        assert verdict.detection is not None
        assert any(HOME in m for m in verdict.detection.missing)
