"""rt.dist against launcher cases taken from other projects' tests and launcher code
(tests/fixtures/launchers/README.md): every case's environment goes through simulate(env=...)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from portarun.distributed import _first_node, _host_count
from portarun.errors import PortarunWarning
from portarun.testing import simulate

CORPUS = Path(__file__).parent / "fixtures" / "launchers"
FIELDS = {"launcher", "is_main", "rank", "local_rank", "world_size", "local_world_size", "node_rank", "master_addr",
          "master_port"}


def load_cases() -> list[Any]:
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        if path.name == "slurm_nodelists.json":
            continue
        data = json.loads(path.read_text())
        cases += [pytest.param(data["peer"], case, id=f"{path.stem}-{case['id']}") for case in data["cases"]]
    return cases


CASES = load_cases()


def test_corpus_size_and_shape() -> None:
    peers = {p.values[0] for p in CASES}
    assert len(CASES) >= 55 and len(peers) >= 8
    for param in CASES:
        case = param.values[1]
        assert re.match(r"[\w.-]+/[\w.-]+@[0-9a-f]{7,40}\^?:\S+|https://", case["source"]), case["source"]
        assert case["kind"] in ("test", "code", "docs") and case["peer_asserts"]
        assert case["expected"] and set(case["expected"]) <= FIELDS, case["id"]
        assert all(isinstance(v, str) for v in case["env"].values())


@pytest.mark.parametrize(("peer", "case"), CASES)
def test_rt_dist_on_peer_case(peer: str, case: dict[str, Any], tmp_path: Path) -> None:
    for name, content in case.get("files", {}).items():
        target = tmp_path / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    with simulate(env=case["env"], root=tmp_path) as rt:
        if "warns" in case:
            with pytest.warns(PortarunWarning, match=case["warns"]):
                dist = rt.dist
        else:
            dist = rt.dist
    got = {field: getattr(dist, field) for field in case["expected"]}
    assert got == case["expected"], (case.get("disputed"), dist.evidence)
    assert dist.evidence  # every answer says why


def test_disputed_cases_say_why_and_are_a_minority() -> None:
    disputed = [p.values[1] for p in CASES if "disputed" in p.values[1]]
    assert all(len(case["disputed"]) > 40 for case in disputed)
    assert len(disputed) < len(CASES) / 3


NODELISTS = json.loads((CORPUS / "slurm_nodelists.json").read_text())["cases"]


@pytest.mark.parametrize("case", NODELISTS, ids=[c["nodelist"] for c in NODELISTS])
def test_slurm_nodelists_from_peers(case: dict[str, Any]) -> None:
    assert _first_node(case["nodelist"]) == case["first"]
    if "hosts" in case:
        assert _host_count(case["nodelist"]) == case["hosts"]


def test_user_typed_world_size_warns_naming_the_variables() -> None:
    with simulate(env={"WORLD_SIZE": "4"}) as rt, pytest.warns(PortarunWarning) as caught:
        assert rt.dist.world_size == 1
    message = str(caught[0].message)
    assert all(name in message for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"))
