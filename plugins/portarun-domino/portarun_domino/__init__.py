"""portarun provider for Domino Data Lab workspaces and jobs (``domino``), registered through
the ``portarun`` entry-point group by ``run.py``."""
