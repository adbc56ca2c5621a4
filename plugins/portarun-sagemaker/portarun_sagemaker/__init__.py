"""portarun providers for Amazon SageMaker: training jobs (``sagemaker``) and SageMaker Studio Lab
(``sagemaker-studiolab``). Installing this distribution is all it takes: portarun finds the
providers through the ``portarun`` entry-point group (see ``plugin.py``)."""
