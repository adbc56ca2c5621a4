"""portarun provider for Saturn Cloud resources (``saturn``), registered through the
``portarun`` entry-point group by ``resource.py``."""
