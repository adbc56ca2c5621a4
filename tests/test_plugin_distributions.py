"""The provider packages under plugins/ as an outside author ships them: each is built and
installed with pip into a temporary folder (real distributions, real dist-info entry points)
and used from a fresh interpreter with that folder on ``PYTHONPATH``.

Checks: the good plugins' providers are registered with their distribution and version, and
detected in simulation; the deliberately broken ones (plugins/portarun-example-broken) are each
skipped with a warning naming the plugin and its version, or raise ``PluginError`` under
``PORTARUN_STRICT=1``; the plugin controls of ``portarun/_plugins/manager.py`` behave as documented; and
the provider contract test plus each plugin's own tests pass against the installed plugins.
"""
from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # pip builds four distributions (~10 s), then fresh interpreters

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
GOOD = ("portarun-sagemaker", "portarun-lightning", "portarun-runpod")
BROKEN = "portarun-example-broken"
#: Entry-point name → the providers it registers, for the good distributions.
GOOD_PLUGINS = {"sagemaker": ("sagemaker", "sagemaker-studiolab"), "lightning": ("lightning",), "runpod": ("runpod",)}
BROKEN_PLUGINS = ("example-broken-import", "example-broken-detect", "example-broken-type", "example-broken-exit",
                  "example-broken-hang", "example-broken-impostor")
#: What each broken plugin's warning says, after its name and version.
BROKEN_WARNINGS = ("failed to load", "raised in detect()", "returned float", "raised in detect(): SystemExit",
                   "detect() did not return within 0.5 s", "registered a second provider named 'kaggle'")
#: The hanging plugin is given up on after this long, instead of the default 5 s.
QUICK = {"PORTARUN_PLUGIN_TIMEOUT": "0.5"}


def dist_version(distribution: str) -> str:
    """The version declared in the distribution's setup.cfg."""
    config = configparser.ConfigParser()
    config.read(PLUGINS / distribution / "setup.cfg")
    return config["metadata"]["version"]


@dataclass(frozen=True)
class Installed:
    good: Path
    broken: Path


def pip_install(target: Path, distributions: Sequence[str], sources: Path) -> None:
    """Build and install ``distributions`` into ``target`` from copies of their source trees
    (setuptools builds in-tree; the copies keep build/ and *.egg-info out of plugins/)."""
    copies = []
    for name in distributions:
        copy = sources / name
        shutil.copytree(PLUGINS / name, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        copies.append(str(copy))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), *copies],
        check=True, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("plugin-dists")
    (base / "src").mkdir()
    pip_install(base / "good", GOOD, base / "src")
    pip_install(base / "broken", (BROKEN,), base / "src")
    return Installed(good=base / "good", broken=base / "broken")


def run(args: Sequence[str], pythonpath: Sequence[Path], env: Mapping[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run ``python <args>`` in a fresh interpreter from the repository root, with
    ``pythonpath`` prepended and no PORTARUN_* variables inherited."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PORTARUN_")}
    environment["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    environment.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=300)


def run_json(code: str, pythonpath: Sequence[Path], env: Mapping[str, str] | None = None) -> Any:
    """Run ``code`` and parse the JSON it prints last."""
    result = run(["-c", code], pythonpath, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_distributions_install_with_entry_points_in_dist_info(installed: Installed) -> None:
    for distribution in (*GOOD, BROKEN):
        folder = installed.broken if distribution == BROKEN else installed.good
        dist_info = folder / f"{distribution.replace('-', '_')}-{dist_version(distribution)}.dist-info"
        entry_points = (dist_info / "entry_points.txt").read_text()
        assert "[portarun]" in entry_points, distribution


def test_good_plugins_are_listed_with_distribution_and_version(installed: Installed) -> None:
    result = run(["-m", "portarun", "info", "--json"], [installed.good])
    assert result.returncode == 0, result.stderr
    plugins = json.loads(result.stdout)["plugins"]
    for name, distribution in zip(GOOD_PLUGINS, GOOD):
        assert plugins[name]["distribution"] == distribution
        assert plugins[name]["version"] == dist_version(distribution)
        assert plugins[name]["builtin"] is False and plugins[name]["error"] is None
    providers = run_json(
        "import json, portarun\n"
        "print(json.dumps({n: [c.__module__, c.version()] for n, c in portarun.providers().items()}))",
        [installed.good])
    for name, distribution in zip(GOOD_PLUGINS, GOOD):
        for provider in GOOD_PLUGINS[name]:
            module, provider_version = providers[provider]
            assert module.startswith(distribution.replace("-", "_") + ".")
            assert provider_version == dist_version(distribution)


SIMULATIONS = {
    "sagemaker": dict(env={"TRAINING_JOB_NAME": "job"}, paths=["/opt/ml/model", "/opt/ml/checkpoints"],
                      files=["/opt/ml/input/config/trainingjobconfig.json"]),
    "sagemaker-studiolab": dict(env={"HOME": "/home/studio-lab-user", "USER": "studio-lab-user"},
                                paths=["/home/studio-lab-user/.conda/envs/default"]),
    "lightning": dict(env={"LIGHTNING_CLOUDSPACE_HOST": "x.cloudspaces.litng.ai", "LIGHTNING_CLOUD_SPACE_ID": "s1"},
                      paths=["/teamspace/studios/this_studio"]),
    "runpod": dict(env={"RUNPOD_POD_ID": "abc123", "RUNPOD_CPU_COUNT": "6"}, paths=["/workspace"]),
}


def test_simulated_detection_picks_each_plugin(installed: Installed) -> None:
    code = (
        "import json\nfrom pathlib import Path\nfrom portarun.testing import simulate\n"
        f"simulations = {SIMULATIONS!r}\nout = {{}}\n"
        "for name, kw in simulations.items():\n"
        "    with simulate(**kw) as rt:\n"
        "        out[name] = {'host': rt.host.name, 'plugin': rt.host.plugin, 'version': rt.host.version,\n"
        "                     'under_root': all(Path(v).is_relative_to(rt.probe.root)\n"
        "                                       for v in rt.paths.as_dict().values())}\n"
        "print(json.dumps(out))\n"
    )
    seen = run_json(code, [installed.good])
    plugin_of = {p: (name, dist) for (name, providers), dist in zip(GOOD_PLUGINS.items(), GOOD) for p in providers}
    for provider, (plugin, distribution) in plugin_of.items():
        assert seen[provider] == {"host": provider, "plugin": plugin, "version": dist_version(distribution),
                                  "under_root": True}


BROKEN_REPORT = (
    "import json, warnings, portarun\nfrom portarun.testing import simulate\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    providers = sorted(portarun.providers())\n"
    "    with simulate(env={'PORTARUN_PLUGIN_TIMEOUT': '0.5'}) as rt:\n"
    "        host = rt.host.name\n"
    "        errors = {v.provider: v.error for v in rt.verdicts if v.error}\n"
    "print(json.dumps({'providers': providers, 'host': host, 'errors': errors,\n"
    "                  'kaggle': portarun.providers()['kaggle'].__module__,\n"
    "                  'warnings': [str(w.message) for w in caught\n"
    "                               if issubclass(w.category, portarun.PortarunWarning)]}))\n"
)


def test_broken_plugins_are_skipped_with_a_warning_naming_plugin_and_version(installed: Installed) -> None:
    report = run_json(BROKEN_REPORT, [installed.broken], QUICK)
    label = f"({BROKEN} {dist_version(BROKEN)})"
    assert report["host"] == "local"
    for provider in ("example-broken-detect", "example-broken-type", "example-broken-exit", "example-broken-hang"):
        assert provider in report["providers"]
    assert report["errors"] == {"example-broken-detect": "RuntimeError: example-broken-detect fails on purpose",
                                "example-broken-type": "returned float",
                                "example-broken-exit": "SystemExit: example-broken-exit exits on purpose",
                                "example-broken-hang": ("did not return within 0.5 s "
                                                        "(set PORTARUN_PLUGIN_TIMEOUT to change the limit)")}
    assert report["kaggle"] == "portarun.hosts.kaggle"  # the impostor did not replace it
    assert len(report["warnings"]) == len(BROKEN_PLUGINS), report["warnings"]
    for plugin, what in zip(BROKEN_PLUGINS, BROKEN_WARNINGS):
        message = next(w for w in report["warnings"] if f"'{plugin}' {label}" in w)
        assert what in message and "PORTARUN_STRICT=1" in message


@pytest.mark.parametrize("plugin", BROKEN_PLUGINS)
def test_strict_mode_raises_plugin_error(installed: Installed, plugin: str) -> None:
    code = (
        "import json, portarun\nfrom portarun.errors import PluginError\n"
        "try:\n    portarun.providers()\n    portarun.detect()\n    print(json.dumps(None))\n"
        "except PluginError as exc:\n    print(json.dumps(str(exc)))\n"
    )
    env = {"PORTARUN_STRICT": "1", "PORTARUN_PLUGINS": plugin, **QUICK}
    error = run_json(code, [installed.broken], env)
    assert error is not None and f"'{plugin}' ({BROKEN} {dist_version(BROKEN)})" in error


CONTROLS = {
    "default": {},
    "autoload-off": {"PORTARUN_DISABLE_PLUGIN_AUTOLOAD": "1"},
    "autoload-off-allow-runpod": {"PORTARUN_DISABLE_PLUGIN_AUTOLOAD": "1", "PORTARUN_PLUGINS": "runpod"},
    "allow-lightning": {"PORTARUN_PLUGINS": "lightning"},
    "block": {"PORTARUN_DISABLE_PLUGINS": f"sagemaker,kaggle,{','.join(BROKEN_PLUGINS)}"},
    "block-local": {"PORTARUN_DISABLE_PLUGINS": f"local,{','.join(BROKEN_PLUGINS)}"},
}


def test_plugin_controls_behave_as_documented(installed: Installed) -> None:
    """Each control as documented in portarun/_plugins/manager.py, good and broken plugins installed."""
    code = (
        "import json, warnings\nfrom portarun import runtime\nfrom portarun._plugins.manager import BUILTIN_PLUGINS\n"
        f"controls = {CONTROLS!r}\nout = {{'builtins': sorted(BUILTIN_PLUGINS)}}\n"
        "for label, env in controls.items():\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        plugins = runtime.plugin_set(env)\n"
        "        out[label] = {'providers': sorted(plugins.providers()),\n"
        "                      'plugins': sorted(i.name for i in plugins.infos if i.error is None),\n"
        "                      'warnings': [str(w.message) for w in caught]}\n"
        "print(json.dumps(out))\n"
    )
    out = run_json(code, [installed.good, installed.broken])
    builtins = set(out["builtins"])
    # Plugins installed in the environment itself (another distribution under development, say)
    # load too; the controls are checked on the plugins this test installs.
    known = builtins | set(GOOD_PLUGINS) | set(BROKEN_PLUGINS)
    good_providers = {p for providers in GOOD_PLUGINS.values() for p in providers}

    default = out["default"]
    assert good_providers <= set(default["providers"]) and builtins <= set(default["plugins"])
    assert any("example-broken-import" in w for w in default["warnings"])

    autoload_off = out["autoload-off"]
    assert set(autoload_off["plugins"]) == builtins and autoload_off["warnings"] == []
    assert not good_providers & set(autoload_off["providers"])

    allowed = out["autoload-off-allow-runpod"]
    assert set(allowed["plugins"]) == builtins | {"runpod"}

    allow_lightning = out["allow-lightning"]
    assert set(allow_lightning["plugins"]) == builtins | {"lightning"} and allow_lightning["warnings"] == []

    blocked = out["block"]
    assert set(blocked["plugins"]) & known == (builtins - {"kaggle"}) | {"lightning", "runpod"}
    assert not {"sagemaker", "sagemaker-studiolab", "kaggle"} & set(blocked["providers"])
    assert blocked["warnings"] == []

    block_local = out["block-local"]
    assert "local" in block_local["providers"]
    assert any("'local', the fallback provider; it stays enabled" in w for w in block_local["warnings"])


def test_contract_and_plugin_test_suites_pass_against_installed_plugins(installed: Installed) -> None:
    """tests/test_provider_contract.py runs every registered provider, the plugins' included,
    through the same checks; each plugin's own tests need its installed entry point."""
    suites = ["tests/test_provider_contract.py", *(f"plugins/{name}/tests" for name in GOOD)]
    result = run(["-m", "pytest", "-v", "-p", "no:cacheprovider", *suites], [installed.good])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for provider in ("sagemaker", "sagemaker-studiolab", "lightning", "runpod"):
        assert f"test_every_registered_provider_keeps_the_contract[{provider}-check_session_and_devices] PASSED" \
            in result.stdout
    for name in GOOD:
        assert f"plugins/{name}/tests/" in result.stdout
