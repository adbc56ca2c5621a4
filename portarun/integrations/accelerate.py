"""Hugging Face accelerate: ``Accelerator`` arguments from the runtime.

>>> from accelerate import Accelerator
>>> from portarun.integrations.accelerate import accelerator_kwargs
>>> accelerator = Accelerator(**accelerator_kwargs(rt))
>>> accelerator.save_state()   # into rt.paths.checkpoints/accelerate/checkpoints/checkpoint_<n>

accelerate is imported only by the function that needs it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import IntegrationError
from ..paths import is_remote, join
from . import AMP_NAMES

if TYPE_CHECKING:
    from ..runtime import Runtime


def accelerator_kwargs(rt: Runtime, *, automatic_checkpoint_naming: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``accelerate.Accelerator``: ``mixed_precision`` from
    ``rt.device.amp_dtype`` (``bf16``, ``fp16`` or ``no``) and a ``project_config`` whose
    ``project_dir`` is ``rt.paths.checkpoints/accelerate`` with automatic checkpoint naming, so
    ``accelerator.save_state()`` writes numbered checkpoints on storage that outlives the session
    and ``accelerator.load_state()`` finds the newest. Raises
    :class:`~portarun.errors.IntegrationError` when the checkpoints role is a bucket URL
    (accelerate writes local files only)."""
    from accelerate.utils import ProjectConfiguration

    if is_remote(rt.paths.checkpoints):
        raise IntegrationError(
            f"accelerate saves to a local folder, and rt.paths.checkpoints is {rt.paths.checkpoints}. Set "
            "PORTARUN_CHECKPOINTS_DIR to a local or mounted folder, or build the Accelerator with your own "
            "project_dir and copy the checkpoints with rt.stage_out(...).")
    project_dir = str(join(rt.paths.checkpoints, "accelerate"))
    return {
        "mixed_precision": AMP_NAMES[rt.device.amp_dtype]["accelerate"],
        "project_config": ProjectConfiguration(project_dir=project_dir,
                                               automatic_checkpoint_naming=automatic_checkpoint_naming),
    }
