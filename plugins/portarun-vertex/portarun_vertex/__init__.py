"""portarun provider for Vertex AI Workbench instances (``vertex-workbench``), registered
through the ``portarun`` entry-point group by ``workbench.py``."""
