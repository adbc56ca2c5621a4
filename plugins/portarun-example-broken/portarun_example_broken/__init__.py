"""Deliberately broken portarun plugins. They exist so portarun's own tests can check that a
misbehaving plugin is skipped with a warning naming it and its version (or raises under
``PORTARUN_STRICT=1``), and never breaks detection. Do not install this for real use."""
