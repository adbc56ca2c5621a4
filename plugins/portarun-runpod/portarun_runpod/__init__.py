"""portarun provider for RunPod pods (``runpod``), registered through the ``portarun``
entry-point group (see ``pod.py``)."""
