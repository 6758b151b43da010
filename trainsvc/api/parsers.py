"""A JSON parser that turns every malformed body into a 4xx.

DRF's own parser lets a deeply nested body escape as a RecursionError (a 500) and reads bodies of any
size; this one caps the size and the nesting depth and refuses NaN/Infinity. It also refuses text that
the database cannot store (a NUL byte, a lone surrogate from a `\\ud800` escape) anywhere in the body,
keys included: PostgreSQL rejects both, and a free-form field such as `backend_options` would otherwise
reach it as a 500."""

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "too_large"


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _depth_exceeds(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def invalid_text(value: str) -> bool:
    """Whether `value` holds characters no UTF-8 database column can store."""
    return "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value)


def _invalid_text_path(value) -> str | None:
    """The field path (as the API names fields: `env.KEY`, `command[1]`) of the first string or key
    holding invalid text, or None. Depth is already bounded, so recursion is safe."""
    def walk(node, path):
        if isinstance(node, str):
            return path if invalid_text(node) else None
        if isinstance(node, dict):
            for key, child in node.items():
                child_path = f"{path}.{key}" if path else key
                if invalid_text(key):
                    return path or "non_field_errors"
                if (found := walk(child, child_path)) is not None:
                    return found
        if isinstance(node, list):
            for index, child in enumerate(node):
                if (found := walk(child, f"{path}[{index}]")) is not None:
                    return found
        return None

    return walk(value, "")


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            raw = stream.read(limit + 1) if stream is not None else b""
        except RequestDataTooBig as exc:
            raise RequestTooLarge(f"Request body larger than {limit} bytes.") from exc
        if len(raw) > limit:
            raise RequestTooLarge(f"Request body larger than {limit} bytes.")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except RecursionError as exc:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        if (path := _invalid_text_path(data)) is not None:
            raise ValidationError({path or "non_field_errors": [
                "Text may not contain NUL characters or unpaired surrogates."]})
        return data
