"""Checked by `mypy --strict` (tox -e typecheck), never run: a user's script must type-check
against portarun's public names exactly as the README writes them."""
from __future__ import annotations

from pathlib import Path

import portarun
from portarun.testing import simulate


def where_am_i() -> tuple[str, str | Path]:
    rt: portarun.Runtime = portarun.detect()
    return rt.host.name, rt.paths.checkpoints


def as_kaggle() -> bool:
    with simulate("kaggle") as rt:
        return portarun.detect() is rt


try:
    portarun.detect(host="nowhere")
except portarun.UnknownHostError as exc:
    print(exc)
