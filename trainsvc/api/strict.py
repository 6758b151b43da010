"""Serializer fields and mixins that take the request as sent, or refuse it.

DRF is lenient by default: it drops fields it does not know, trims strings, and turns 5 into "5" and
"5" into 5. A client that misspells `command` or sends a label as a number would then get a job that
is not the one it asked for, with a 201. Here every such case is a 400 that names the field."""

from collections.abc import Mapping

from rest_framework import serializers
from rest_framework.exceptions import ValidationError


class StrictFieldsMixin:
    """Refuse keys the serializer does not declare (read-only fields included: the server owns them)."""

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            expected = ", ".join(sorted(writable))
            message = f"Unknown field; expected one of: {expected}."
            unknown = {str(key): [message] for key in data if key not in writable}
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            # Report both: a misspelt `comand` is also a missing `command`.
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            raise ValidationError({**detail, **unknown}) from exc
        if unknown:
            raise ValidationError(unknown)
        return value


class StrictCharField(serializers.CharField):
    """A string exactly as sent: no trimming, and a number or a boolean is an error, not text."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: "5", 5.0 and true are errors, not 5."""

    default_error_messages = {"not_an_integer": "Must be a whole number (a JSON integer, not a string)."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer")
        return super().to_internal_value(data)


class StrictQueryParamsMixin:
    """Refuse query parameters an action does not take: `?stauts=FAILED` must not list every job.

    `query_params_by_action` maps an action to the parameters it reads; list actions also take the
    paginator's parameters."""

    query_params_by_action: dict[str, frozenset[str]] = {}

    def allowed_query_params(self) -> frozenset[str]:
        # Viewsets name their action; a generic list view is the "list" action.
        action = getattr(self, "action", None) or ("list" if self.request.method in ("GET", "HEAD") else None)
        allowed = set(self.query_params_by_action.get(action, ()))
        paginator = getattr(self, "paginator", None)
        if action == "list" and paginator is not None:
            allowed |= {getattr(paginator, name) for name in ("cursor_query_param", "page_size_query_param")
                        if getattr(paginator, name, None)}
        return frozenset(allowed)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not hasattr(self, request.method.lower()):
            return  # the view answers 405 next; unknown parameters are beside the point
        allowed = self.allowed_query_params()
        unknown = sorted(name for name in request.query_params if name not in allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) or "no query parameters"
            raise ValidationError({name[:100]: [f"Unknown query parameter; this endpoint takes {takes}."]
                                   for name in unknown})
