"""portarun provider for SkyPilot clusters and managed jobs (``skypilot``), registered through
the ``portarun`` entry-point group by ``cluster.py``."""
