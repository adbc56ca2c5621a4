"""Reading SageMaker's JSON configuration files through the probe."""
from __future__ import annotations

import json
from typing import Any

from portarun.probe import Probe

#: The training container's configuration folder (sagemaker-training-toolkit
#: ``src/sagemaker_training/environment.py``: ``input_config_dir``).
CONFIG_DIR = "/opt/ml/input/config"


def read_json(probe: Probe, host_path: str) -> dict[str, Any] | None:
    """The JSON object in ``host_path`` (mapped under the probe's root), or ``None`` when the
    file is missing, unreadable, not JSON, or not an object. Never raises."""
    try:
        data = json.loads(probe.path(host_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
