"""Lightning AI Studios: detected from the Studio's own variables and folder, never from the
Lightning SDK's variables on a laptop."""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from portarun.runtime import Runtime
from portarun.testing import simulate

STUDIO = "/teamspace/studios/this_studio"
# Variables seen inside a Studio (zenml's rule, lightning.app, lightning_sdk, litdata).
STUDIO_ENV = {
    "HOME": STUDIO, "PWD": STUDIO, "LIGHTNING_CLOUDSPACE_HOST": "01hxyz.cloudspaces.litng.ai",
    "LIGHTNING_CLOUD_URL": "https://lightning.ai", "LIGHTNING_CLOUD_SPACE_ID": "01hxyzspace",
    "LIGHTNING_CLOUD_PROJECT_ID": "01hxyzproject", "LIGHTNING_USER_ID": "u-123",
}
# A laptop where the Lightning SDK is set up: credentials, a project id and the cloud URL.
LAPTOP_ENV = {
    "HOME": "/home/me", "LIGHTNING_USER_ID": "419ef76b", "LIGHTNING_API_KEY": "64b0976c",
    "LIGHTNING_CLOUD_PROJECT_ID": "01hxyzproject", "LIGHTNING_CLOUD_URL": "https://lightning.ai",
}


def confidence(rt: Runtime) -> float:
    return next(v.confidence for v in rt.verdicts if v.provider == "lightning")


def test_studio_is_detected_with_persistent_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env=STUDIO_ENV, paths=[STUDIO], root=root, project="llm") as rt:
        assert rt.host.name == "lightning"
        assert rt.host.confidence >= 0.9
        assert (rt.host.plugin, rt.host.version) == ("lightning", version("portarun-lightning"))
        studio = root / STUDIO.lstrip("/")
        assert rt.paths.persist == studio / "portarun/llm"
        assert rt.paths.checkpoints == studio / "portarun/llm/checkpoints"
        assert rt.paths.output == studio / "portarun/llm/outputs"
        assert rt.paths.cache == studio / ".cache"
        assert rt.paths.input == studio
        for role, value in rt.paths.as_dict().items():
            assert Path(value).is_relative_to(root), (role, value)
        assert rt.session.limit is None
        assert any("LIGHTNING_CLOUD_PROJECT_ID" in line and "not evidence" in line for line in rt.host.evidence)


def test_teamspace_datasets_are_the_input_when_mounted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate(env=STUDIO_ENV, paths=[STUDIO, "/teamspace/datasets"], root=root) as rt:
        assert rt.paths.input == root / "teamspace/datasets"


def test_laptop_with_lightning_sdk_credentials_is_not_a_studio() -> None:
    with simulate(env=LAPTOP_ENV) as rt:
        assert rt.host.name == "local"
        assert confidence(rt) == 0.0


def test_a_lone_studio_folder_is_not_enough() -> None:
    """Images use the Studio folder as their WORKDIR, so the folder alone stays weak."""
    with simulate(env={"HOME": "/home/me"}, paths=[STUDIO]) as rt:
        assert rt.host.name == "local"
        assert 0.2 <= confidence(rt) < 0.5


def test_studio_variables_without_the_folder_still_match() -> None:
    """A Studio whose working folder is elsewhere: its own variables are enough."""
    with simulate(env={k: v for k, v in STUDIO_ENV.items() if k not in ("HOME", "PWD")}) as rt:
        assert rt.host.name == "lightning"


def test_lightning_app_cloudspace_variables_alone_are_a_studio() -> None:
    """lightning.app's own cloudspace test sets exactly these two Studio variables."""
    with simulate(env={"LIGHTNING_CLOUDSPACE_HOST": "any", "LIGHTNING_CLOUDSPACE_EXPOSED_PORT_COUNT": "10"}) as rt:
        assert rt.host.name == "lightning"


def test_zenml_studio_rule_is_a_studio() -> None:
    """zenml: LIGHTNING_CLOUD_URL and LIGHTNING_CLOUDSPACE_HOST together mean a Studio."""
    with simulate(env={"LIGHTNING_CLOUD_URL": "https://lightning.ai",
                       "LIGHTNING_CLOUDSPACE_HOST": "01hxyz.cloudspaces.litng.ai"}) as rt:
        assert rt.host.name == "lightning"
    with simulate(env={"LIGHTNING_CLOUDSPACE_HOST": "01hxyz.cloudspaces.litng.ai"}) as rt:
        assert rt.host.name == "local"
        assert 0.2 <= confidence(rt) < 0.5
        assert "LIGHTNING_CLOUD_SPACE_ID" in rt.explain()


def test_cloud_space_id_alone_is_a_studio() -> None:
    """lightning_sdk refuses `lightning login` "within a Studio" on this variable alone."""
    with simulate(env={"LIGHTNING_INTERACTIVE": "true", "LIGHTNING_CLOUD_SPACE_ID": "cloud-space-id"}) as rt:
        assert rt.host.name == "lightning"


def test_studio_folder_as_home_is_a_studio(tmp_path: Path) -> None:
    """A Studio makes its persistent folder the home; an image that only uses the folder as
    its WORKDIR does not, and stays local."""
    with simulate(env={"HOME": STUDIO}, paths=[STUDIO], root=tmp_path / "a") as rt:
        assert rt.host.name == "lightning"
    with simulate(env={"HOME": "/root"}, paths=[STUDIO + "/vto_run_clothes"], root=tmp_path / "b") as rt:
        assert rt.host.name == "local"


def test_studio_python_environment_adds_to_the_folder(tmp_path: Path) -> None:
    paths = [STUDIO + "/WACV", "/home/zeus/miniconda3/envs/cloudspace/bin"]
    with simulate(env={"HOME": "/root"}, paths=paths, root=tmp_path / "root") as rt:
        assert rt.host.name == "lightning"
    with simulate(env={}, paths=paths[1:], root=tmp_path / "env-only") as rt:
        assert rt.host.name == "local"


def test_litdata_studio_pair_and_sdk_settings_are_not_evidence() -> None:
    """litdata's _IS_IN_STUDIO pair (project and cluster ids) is set by SDK users too."""
    with simulate(env={"LIGHTNING_CLOUD_PROJECT_ID": "2", "LIGHTNING_CLUSTER_ID": "1", **LAPTOP_ENV}) as rt:
        assert rt.host.name == "local"
        assert confidence(rt) == 0.0
