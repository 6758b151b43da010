"""Error responses in DRF's shape, with validation errors keyed by the path of the field at fault.

`{"storage_mounts": [{}, {"source": ["..."]}]}` becomes `{"storage_mounts[1].source": ["..."]}`, so a
client can point at the exact field without walking a nested structure."""

from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from trainsvc.api.parsers import RequestTooLarge

NON_FIELD = "non_field_errors"


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}

    def add(path, message):
        out.setdefault(path or NON_FIELD, []).append(str(message))

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == NON_FIELD:
                    walk(value, path)
                elif isinstance(key, int):  # DRF keys a ListField's item errors by index: command[1], not command.1
                    walk(value, f"{path}[{key}]")
                else:
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and any(isinstance(item, (dict, list)) for item in node):
            for index, value in enumerate(node):
                if value:
                    walk(value, f"{path}[{index}]")
        elif isinstance(node, list):
            for message in node:
                add(path, message)
        else:
            add(path, node)

    walk(detail, prefix)
    return out


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        # DRF reads request.body before any parser runs, so Django's size check fires first; left alone it
        # becomes Django's HTML 400 instead of the API's JSON 413.
        exc = RequestTooLarge()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = flatten_errors(exc.detail)
    return response
