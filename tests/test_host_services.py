"""A third-party host supplies everything host-specific from its provider, and portarun uses it:
its simulation preset, its secret store, its own submission delivery, its storage quota (in
staging and in the run monitor) and its answer to ``rt.mount_drive()``. The plugin is registered
the way an outside package's entry point is loaded (``portarun.testing.plugin``); nothing in
portarun names it."""
from __future__ import annotations

import shutil
import time
import types
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from portarun.errors import NotAvailableError, PortarunWarning, SecretNotFoundError
from portarun.hookspecs import Register, hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Preset, Provider, Quota
from portarun.runtime import Runtime
from portarun.secrets import Lookup, Source
from portarun.submission import SubmitOptions
from portarun.testing import contract, plugin, presets, simulate

VAULT = "/acme/vault"  # one file per secret, as a mounted secret volume has them
OUTBOX = "/acme/outbox"
WORK = "/acme/work"
WORK_QUOTA = 1024**2


def _vault_usable(rt: Runtime) -> str | None:
    return None if rt.probe.is_dir(VAULT) else f"no vault mounted at {VAULT}"


def _vault_get(rt: Runtime, name: str) -> Lookup:
    path = rt.probe.path(VAULT) / name
    return Lookup(path.read_text().strip() if path.is_file() else None)


class AcmeProvider(Provider):
    """Acme Cloud jobs: ``ACME_JOB_ID`` set, work folder with a 1 MiB cap, a secret vault and an
    outbox that Acme uploads when the job ends."""

    name = "acme"
    display_name = "Acme Cloud"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.getenv("ACME_JOB_ID"):
            ev.add(0.9, "env ACME_JOB_ID", "set in every Acme job")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        work = self.probe.path(WORK)
        return HostLocations(input=self.probe.path("/acme/input"), scratch=self.probe.path("/acme/scratch"),
                             output=work / "outputs", persist=work / "persist", cache=self.probe.path("/acme/cache"))

    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        return {"acme": Preset(env={"HOME": "/root", "ACME_JOB_ID": "job-7"}, paths=(WORK, VAULT), kernel=False)}

    def secret_sources(self) -> tuple[Source, ...]:
        return (Source("acme-vault", _vault_usable, _vault_get, "write {name} into the job's Acme vault"),)

    def deliver_submission(self, runtime: Runtime, path: Path, options: SubmitOptions) -> tuple[str, ...]:
        outbox = runtime.probe.path(OUTBOX)
        outbox.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, outbox / options.filename)
        return (f"queued {options.filename} in the Acme outbox",)

    def quotas(self) -> Mapping[str, Quota]:
        return {WORK: Quota(WORK_QUOTA, "Acme caps the work folder at 1 MiB")}


@hookimpl
def portarun_register_providers(register: Register) -> None:
    register(AcmeProvider)


ACME_PLUGIN = types.SimpleNamespace(portarun_register_providers=portarun_register_providers)


@pytest.fixture
def acme() -> Iterator[None]:
    with plugin(ACME_PLUGIN, name="acme"):
        yield


def test_the_plugin_preset_is_simulated_by_name(acme: None, tmp_path: Path) -> None:
    assert "acme" in presets()
    with simulate("acme", root=tmp_path / "root") as rt:
        assert rt.host.name == "acme" and isinstance(rt.provider, AcmeProvider)
        assert (tmp_path / "root/acme/vault").is_dir() and not rt.session.interactive


def test_a_preset_is_known_only_while_its_provider_is_installed() -> None:
    assert "acme" not in presets()
    with pytest.raises(LookupError, match="unknown simulated host 'acme'"):
        with simulate("acme"):
            pass


def test_secrets_come_from_the_plugins_store_before_the_environment(acme: None, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate("acme", root=root, env={"HF_TOKEN": "from-env", "OTHER": "env-only"}) as rt:
        (root / "acme/vault/HF_TOKEN").write_text("from-vault\n")
        secret = rt.secret("HF_TOKEN")
        assert (secret.source, secret.reveal()) == ("acme-vault", "from-vault")
        assert rt.secret("OTHER").source == "env"
        with pytest.raises(SecretNotFoundError) as info:
            rt.secret("MISSING")
    assert "acme-vault: not found" in str(info.value) and "write MISSING into the job's Acme vault" in str(info.value)


def test_submissions_are_delivered_the_plugins_way(acme: None, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with simulate("acme", root=root) as rt, pytest.warns(PortarunWarning, match="basic checks"):
        result = rt.submit({"id": [1, 2], "target": [0.5, 0.25]})
    assert result.path == root / "acme/work/outputs/submission.csv"
    assert (root / "acme/outbox/submission.csv").read_bytes() == result.path.read_bytes()
    assert "queued submission.csv in the Acme outbox" in result.notes


def test_staging_warns_before_passing_the_plugins_quota(acme: None, tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"\0" * (WORK_QUOTA + 1))
    with simulate("acme", root=tmp_path / "root") as rt:
        with pytest.warns(PortarunWarning, match=r"bring /acme/work .* past its 1\.0 MiB limit \(Acme caps"):
            rt.stage(src, to="output")


def test_the_monitor_tracks_the_plugins_quota(acme: None, tmp_path: Path) -> None:
    with simulate("acme", root=tmp_path / "root") as rt:
        out = Path(rt.paths.output)
        with pytest.warns(PortarunWarning, match="/acme/work at .* of its 1.0 MiB quota"):
            with rt.monitor(interval=0.05, quota_every=0.0) as mon:
                (out / "model.bin").write_bytes(b"\0" * (WORK_QUOTA - 1000))
                time.sleep(0.4)
    assert [(a.kind, a.subject) for a in mon.alerts] == [("disk", WORK)]


def test_mount_drive_is_refused_on_a_host_without_one(acme: None, tmp_path: Path) -> None:
    with simulate("acme", root=tmp_path / "root") as rt:
        with pytest.raises(NotAvailableError, match="Acme Cloud.*PORTARUN_PERSIST_DIR"):
            rt.mount_drive()


def test_the_plugin_keeps_the_provider_contract() -> None:
    contract.check_provider(AcmeProvider)


def test_a_provider_whose_presets_fail_leaves_the_other_hosts_simulable(tmp_path: Path) -> None:
    def broken(cls: type[Provider]) -> Mapping[str, Preset]:
        raise RuntimeError("presets table missing")

    failing = type("Failing", (AcmeProvider,), {"name": "acme-failing", "presets": classmethod(broken)})

    @hookimpl
    def portarun_register_providers(register: Register) -> None:
        register(failing)

    with plugin(types.SimpleNamespace(portarun_register_providers=portarun_register_providers)):
        with pytest.warns(PortarunWarning, match="'acme-failing' failed to list its simulation presets"):
            with simulate("kaggle", root=tmp_path / "root") as rt:
                assert rt.host.name == "kaggle"


def test_simulated_colab_mounts_drive_through_the_providers_stand_in(tmp_path: Path) -> None:
    """ColabProvider.stand_in_apis gives the stand-in google.colab.drive its mount: mounting in a
    simulation makes the Drive folder, and persist moves there, with nothing patched by hand."""
    with pytest.warns(PortarunWarning, match="Drive is not mounted"):
        with simulate("colab-nodrive", root=tmp_path / "root", project="p") as rt:
            mounted = rt.mount_drive()
            assert (tmp_path / "root/content/drive/MyDrive").is_dir()
            assert mounted.paths.persist == tmp_path / "root/content/drive/MyDrive/portarun/p"
