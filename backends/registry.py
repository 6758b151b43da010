"""Which backends exist, which are enabled, and how to get one. Adapters are imported lazily, so a
gateway that never touches a cloud never imports its SDK."""

from django.conf import settings
from django.utils.module_loading import import_string

from backends.base import Backend

BACKEND_CLASSES = {
    "local": "backends.local.LocalBackend",
    "sagemaker": "backends.aws.sagemaker.SageMakerBackend",
    "azure-ml": "backends.azure.azureml.AzureMLBackend",
    "vertex-ai": "backends.gcp.vertex.VertexBackend",
}


def enabled_backend_names() -> list[str]:
    names = [name for name in BACKEND_CLASSES if name != "local"]
    if settings.TRAIN_LOCAL_BACKEND:
        names.append("local")
    return sorted(names)


def backend_class(name: str) -> type[Backend]:
    return import_string(BACKEND_CLASSES[name])


def get_backend(name: str, config: dict | None = None) -> Backend:
    return backend_class(name)(config)
