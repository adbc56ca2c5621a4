"""Runtime, DeviceInfo and LoaderOptions as notebook tables and terminal text; no secret leaks."""
from __future__ import annotations

import html
import re

import pytest

from portarun.display import html_table, redact, text_table
from portarun.errors import PortarunWarning
from portarun.testing import simulate

TOKEN = "eyJhbGciOi.sim"  # the Kaggle preset's KAGGLE_USER_SECRETS_TOKEN


def _cells(markup: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", markup)]


def test_runtime_renders_as_html_and_text_with_every_role() -> None:
    with simulate("kaggle", gpus=["Tesla T4"] * 2) as rt:
        markup, text = rt._repr_html_(), str(rt)
        cells = _cells(markup)
        for role, value in rt.paths.as_dict().items():
            assert role in cells and value in cells
            assert re.search(rf"^  {role}\s+{re.escape(value)}$", text, re.M)
        assert any(c.startswith("Kaggle (kaggle), confidence") for c in cells)
        assert any(c.startswith("cuda × 2 (Tesla T4), amp float16") for c in cells)
        assert "12 h" in text or "11 h" in text  # Kaggle's session limit, counted down
        assert repr(rt).startswith("<Runtime host='kaggle'")  # repr stays one line


def test_secrets_never_appear() -> None:
    env = {"PORTARUN_OUTPUT_DIR": "memory://AKIAEXAMPLE:hunter2@bucket/out", "WANDB_API_KEY": "wandb-secret-value"}
    with simulate("kaggle", env=env) as rt:
        rendered = [rt._repr_html_(), str(rt), rt.device._repr_html_(), rt.loader._repr_html_()]
        assert "memory://***@bucket/out" in rendered[1]
        for text in rendered:
            for secret in (TOKEN, "hunter2", "AKIAEXAMPLE", "wandb-secret-value"):
                assert secret not in text


def test_redact_masks_url_credentials_and_secret_assignments() -> None:
    assert redact("s3://key:pw@bucket/x and gs://b/y") == "s3://***@bucket/x and gs://b/y"
    assert redact("HF_TOKEN=abc KAGGLE_URL_BASE=https://www.kaggle.com") == (
        "HF_TOKEN=*** KAGGLE_URL_BASE=https://www.kaggle.com")


def test_html_is_escaped() -> None:
    markup = html_table("<title>", [("<b>", "a & <script>alert(1)</script>")])
    assert "<script>" not in markup and "<b>" not in markup and "&lt;script&gt;" in markup
    assert _cells(markup) == ["<b>", "a & <script>alert(1)</script>"]


def test_text_table_aligns_columns() -> None:
    assert text_table("t", [("a", "1", "x"), ("long", "22", "y")]) == "t\n  a     1   x\n  long  22  y"


def test_device_and_loader_tables() -> None:
    with simulate("colab", gpus=["NVIDIA A100-SXM4-40GB"], cpus=12) as rt:
        device = _cells(rt.device._repr_html_())
        assert device[:2] == ["kind", "cuda × 1 (using index 0)"]
        assert "NVIDIA A100-SXM4-40GB" in device and "bfloat16" in device
        loader = _cells(rt.loader._repr_html_())
        i = loader.index("num_workers")
        assert loader[i + 1] == str(rt.loader.num_workers) and loader[i + 2] == rt.loader.reasons["num_workers"]
        assert loader[loader.index("pin_memory") + 1] == "True"


def test_runtime_renders_a_device_error_instead_of_raising() -> None:
    with simulate("local", env={"PORTARUN_DEVICE": "cuda"}) as rt:  # no GPU: rt.device raises
        text = str(rt)
        assert re.search(r"^  device\s+unavailable: .*cuda", text, re.M | re.I)


def test_rendering_shows_device_diagnostics_once_like_rt_device() -> None:
    # PJRT_DEVICE=TPU without TPU chips: a diagnostic, warned by rt.device on first access.
    with simulate("local", env={"PJRT_DEVICE": "TPU"}) as rt:
        with pytest.warns(PortarunWarning, match="PJRT_DEVICE=TPU"):
            str(rt)
        str(rt)  # already warned: silent (warnings are errors in this suite)
        assert rt.device.diagnostics
