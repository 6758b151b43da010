import binascii
from base64 import b64decode
from urllib import parse

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import Cursor, CursorPagination

from trainsvc.api.parsers import invalid_text

INVALID_CURSOR = {"cursor": ["Invalid cursor."]}


class NewestFirstCursorPagination(CursorPagination):
    """Stable pages over a changing list: newest first, ties broken by id."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        """The cursor exactly as `encode_cursor` writes it, or 400. DRF's own decoder ignores what it
        cannot read, so `cursor=!!!!` would silently serve the first page."""
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            querystring = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(querystring, keep_blank_values=True, strict_parsing=True)
        except (UnicodeError, binascii.Error, ValueError) as exc:
            raise ValidationError(INVALID_CURSOR) from exc
        if not tokens or set(tokens) - {"o", "r", "p"} or any(len(values) != 1 for values in tokens.values()):
            raise ValidationError(INVALID_CURSOR)
        offset, reverse, position = tokens.get("o", ["0"])[0], tokens.get("r", ["0"])[0], tokens.get("p", [None])[0]
        if not (offset.isascii() and offset.isdigit()) or len(offset) > 9 or reverse not in ("0", "1"):
            raise ValidationError(INVALID_CURSOR)
        if position is not None and self._position_error(position):
            raise ValidationError(INVALID_CURSOR)
        return Cursor(offset=min(int(offset), self.offset_cutoff), reverse=reverse == "1", position=position)

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except DjangoValidationError as exc:
            # A cursor that decodes but carries a position that is not a timestamp fails in the query.
            raise ValidationError(INVALID_CURSOR) from exc

    def _position_error(self, position: str) -> bool:
        """Positions hold the first ordering field's value, as DRF wrote it: a timestamp for
        `created_at`; any text the database can compare otherwise."""
        if invalid_text(position):
            return True
        if self.ordering[0].lstrip("-") != "created_at":
            return False
        try:
            return parse_datetime(position) is None
        except ValueError:
            return True

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                # Larger values are served as the maximum, so the schema states only the minimum.
                parameter["schema"]["minimum"] = 1
                cap = self.max_page_size
                parameter["description"] = f"Results per page, 1 or more; above {cap} means {cap}."
        return parameters

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # str.isdigit() alone accepts "²" and "٣"; int() rejects the first and reads the second.
        digits = raw.lstrip("0") if raw.isascii() and raw.isdigit() else ""
        if not digits:
            raise ValidationError({"page_size": ["Must be a positive whole number."]})
        # Anything past nine digits is over the maximum; int() refuses strings of more than 4300 digits.
        return self.max_page_size if len(digits) > 9 else min(int(digits), self.max_page_size)

