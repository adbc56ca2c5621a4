"""portarun providers for RunPod pods (``runpod``) and serverless workers
(``runpod-serverless``), both registered through the ``portarun`` entry-point group by
``pod.py``."""
