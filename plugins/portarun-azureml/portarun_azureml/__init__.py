"""portarun provider for Azure Machine Learning compute instances (``azureml``), registered
through the ``portarun`` entry-point group by ``compute_instance.py``."""
