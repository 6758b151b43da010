from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination

INVALID_CURSOR = {"cursor": ["Invalid cursor."]}


class NewestFirstCursorPagination(CursorPagination):
    """Stable pages over a changing list: newest first, ties broken by id."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except Exception as exc:  # DRF raises NotFound for a tampered cursor; it is the client's input
            raise ValidationError(INVALID_CURSOR) from exc

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except DjangoValidationError as exc:
            # A cursor that decodes but carries a position that is not a timestamp fails in the query.
            raise ValidationError(INVALID_CURSOR) from exc

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
