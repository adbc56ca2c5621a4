"""Fail when the test environment pulled CUDA packages or a non-CPU torch build.

requirements-test.txt pins torch==2.13.0, served here as a CPU wheel; any other torch version
drags in several GB of nvidia-* packages. Run by tox before the tests.
"""
from __future__ import annotations

import sys
from importlib.metadata import distributions, version

cuda = sorted({d.metadata["Name"] for d in distributions() if (d.metadata["Name"] or "").lower().startswith("nvidia-")})
torch_version = version("torch")
if cuda or "+cpu" not in torch_version:
    sys.exit(f"test environment is not CPU-only: torch {torch_version}, CUDA packages {cuda or 'none'}; "
             "pin torch==2.13.0 (the CPU wheel) in requirements-test.txt")
print(f"torch {torch_version}, no CUDA packages")
