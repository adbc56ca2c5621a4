"""portarun provider for Databricks notebooks and jobs on classic compute (``databricks``),
registered through the ``portarun`` entry-point group by ``cluster.py``."""
