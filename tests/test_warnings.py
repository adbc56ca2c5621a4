"""portarun's warnings point at the user's line, however deep inside portarun (and pluggy) they
are raised, so ``warnings`` filters by module and the printed location are the user's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from portarun.errors import PortarunWarning, warn
from portarun.testing import simulate


def test_a_warning_raised_inside_a_hook_points_at_the_caller() -> None:
    # The Drive warning comes from the paths hook, called through pluggy from detect().
    with pytest.warns(PortarunWarning, match="Google Drive is not mounted") as record:
        with simulate("colab-nodrive"):
            pass
    assert [Path(r.filename) for r in record] == [Path(__file__)] * len(record)


def test_a_direct_call_points_at_the_caller() -> None:
    with pytest.warns(PortarunWarning) as record:
        warn("plain")
    assert record[0].filename == __file__ and record[0].lineno > 0


def test_the_printed_location_is_the_script(tmp_path: Path) -> None:
    script = tmp_path / "user_script.py"
    script.write_text("import portarun\nrt = portarun.detect()\nrt.dist\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WORLD_SIZE": "4", "RANK": "1"})
    assert done.returncode == 0, done.stderr
    assert f"{script}:3: PortarunWarning" in done.stderr, done.stderr
