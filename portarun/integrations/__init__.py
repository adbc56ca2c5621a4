"""Settings for the libraries people already train with, taken from a :class:`~portarun.Runtime`.

Each module imports its library only inside its functions, so importing portarun (or this
package) never imports Lightning, transformers or accelerate:

* :mod:`portarun.integrations.lightning`: ``Trainer`` keyword arguments and a ``ModelCheckpoint``;
* :mod:`portarun.integrations.huggingface`: ``TrainingArguments`` keyword arguments and a
  callback that saves before the session's deadline;
* :mod:`portarun.integrations.accelerate`: ``Accelerator`` keyword arguments;
* :mod:`portarun.integrations.caches`: cache variables (``HF_HOME``, ``TORCH_HOME``, ...) pointed
  at ``rt.paths.cache`` (``rt.configure_caches()``).

See docs/integrations.md.
"""
from __future__ import annotations

from datetime import timedelta

#: How long before the session's deadline the integrations save: room for a large model's
#: checkpoint to be written (and, on Colab, flushed to Drive) before the host stops the VM.
DEADLINE_MARGIN = timedelta(minutes=10)

#: ``rt.device.amp_dtype`` → each library's precision name.
AMP_NAMES: dict[str | None, dict[str, str]] = {
    "bfloat16": {"lightning": "bf16-mixed", "accelerate": "bf16"},
    "float16": {"lightning": "16-mixed", "accelerate": "fp16"},
    None: {"lightning": "32-true", "accelerate": "no"},
}
