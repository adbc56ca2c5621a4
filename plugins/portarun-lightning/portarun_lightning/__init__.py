"""portarun provider for Lightning AI Studios (``lightning``), registered through the
``portarun`` entry-point group (see ``studio.py``)."""
