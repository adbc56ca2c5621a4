"""The module the ``portarun`` entry point names: it registers both SageMaker providers."""
from __future__ import annotations

from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.provider import Provider

from .studio_lab import StudioLabProvider
from .training_job import TrainingJobProvider


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(TrainingJobProvider)
    register(StudioLabProvider)
