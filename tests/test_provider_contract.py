"""Every registered provider — built-in or installed from a plugin distribution — passes the
provider contract (:mod:`portarun.testing.contract`, which plugin authors run on their own
classes), and the contract catches providers that break it. ``tox -e plugins`` runs this file
with the plugin packages under plugins/ installed.
"""
from __future__ import annotations

import types
from collections.abc import Callable
from datetime import timedelta

import pytest

import portarun
from portarun.hookspecs import Register
from portarun.probe import Probe
from portarun.provider import Detection, HostLocations, Preset, Provider, Quota, SessionLimits
from portarun.testing import contract, plugin

PROVIDERS = sorted(portarun.providers())
Check = Callable[[type[Provider]], None]


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", PROVIDERS)
def test_every_registered_provider_keeps_the_contract(name: str, check: Check) -> None:
    check(portarun.providers()[name])


class _Sound(Provider):
    """A provider that keeps every promise; each case below breaks one."""

    name = "contract-sound"
    display_name = "Contract test host"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        return Detection(0.9, ("+0.90 env CONTRACT_HOST",)) if probe.getenv("CONTRACT_HOST") else None

    def locations(self, project: str) -> HostLocations:
        base = self.probe.path("/contract")
        return HostLocations(base / "in", base / "scratch", base / "out", base / "persist", base / "cache")

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return {cls.name: Preset(env={"CONTRACT_HOST": "1"}, paths=("/contract",))}

    def quotas(self) -> dict[str, Quota]:
        return {"/contract/out": Quota(10**9, "the contract test's own cap")}


def _broken(**attributes: object) -> type[Provider]:
    return type("Broken", (_Sound,), {"name": "contract-broken", **attributes})


def _claims_everything(cls: type[Provider], probe: Probe) -> Detection:
    return Detection(0.9, ("+0.90 always",))


_counter = iter(range(1_000_000))


@pytest.mark.parametrize("broken, check, promise", [
    (_broken(name="Upper"), contract.check_class, "not lower case"),
    (_broken(priority="high"), contract.check_class, "would be refused at registration"),
    (_broken(detect=classmethod(_claims_everything)), contract.check_empty_machine, "claims an empty machine"),
    (_broken(detect=classmethod(lambda cls, probe: Detection(0.2, (f"+0.20 call {next(_counter)}",)))),
     contract.check_detection, "differently twice"),
    (_broken(detect=classmethod(lambda cls, probe: Detection(0.2, ("line\x1b[31m",)))),
     contract.check_detection, "had to clean"),
    (_broken(locations=lambda self, project: HostLocations(*(["/contract-outside"] * 5))),
     contract.check_forced_paths, "outside the simulated machine's root"),
    (_broken(session_limits=lambda self: SessionLimits(timedelta(hours=-1), "x")),
     contract.check_forced_paths, "cannot answer as a winner"),
    (_broken(session_limits=lambda self: SessionLimits(None, "")),
     contract.check_session_and_devices, "without a source"),
    (_broken(device_order=lambda self: ("cpu", "cuda")), contract.check_session_and_devices, "ending with 'cpu'"),
    (_broken(presets=classmethod(lambda cls: {"elsewhere": Preset(env={"CONTRACT_HOST": "1"})})),
     contract.check_presets, "not named 'contract-broken'"),
    (_broken(presets=classmethod(lambda cls: {"contract-broken": Preset(env={})})),
     contract.check_presets, "on which 'local' wins"),
    (_broken(presets=classmethod(lambda cls: {"contract-broken": {"env": {}}})),
     contract.check_presets, "not a Preset"),
    (_broken(secret_sources=lambda self: ["vault"]), contract.check_host_services,
     "not a tuple of portarun.secrets.Source"),
    (_broken(quotas=lambda self: {"/data": Quota(0, "x")}), contract.check_host_services, "positive limit"),
    (_broken(quotas=lambda self: {"data": Quota(10, "x")}), contract.check_host_services, "absolute host folders"),
    (_broken(submission_note=lambda self, filename: ""), contract.check_host_services, "submission_note"),
    (_broken(storage_sync=lambda self, folder: object()), contract.check_host_services, "not None or a StorageSync"),
    (_broken(stand_in_apis=classmethod(lambda cls: {"acme.client": {"get": "not a function"}})),
     contract.check_host_services, "stand_in_apis"),
])
def test_the_contract_catches_a_provider_that_breaks_it(broken: type[Provider], check: Check, promise: str) -> None:
    with pytest.raises(contract.ContractViolation, match=promise):
        check(broken)


def test_a_sound_provider_passes_whether_registered_or_not() -> None:
    contract.check_provider(_Sound)
    with plugin(_plugin_of(_Sound)):
        contract.check_provider(_Sound)


def _plugin_of(cls: type[Provider]) -> object:
    @portarun.hookimpl
    def portarun_register_providers(register: Register) -> None:
        register(cls)

    return types.SimpleNamespace(portarun_register_providers=portarun_register_providers)
