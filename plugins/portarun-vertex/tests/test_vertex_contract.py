"""portarun.testing.contract, the checks every portarun provider passes, run on this plugin's
providers."""
from __future__ import annotations

import pytest

from portarun.provider import Provider
from portarun.testing.contract import check_provider
from portarun_vertex.workbench import VertexWorkbenchProvider


@pytest.mark.parametrize("provider", [VertexWorkbenchProvider], ids=lambda cls: cls.name)
def test_contract(provider: type[Provider]) -> None:
    check_provider(provider)
