"""The schema generator: drf-spectacular's, plus the error answers every endpoint can give.

Without them the schema claims an endpoint only ever answers 200, and contract tests (and clients
generated from the schema) are surprised by a 401 or a 400."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

ERROR_BODY = {
    "type": "object",
    "description": 'Either {"detail": "..."} or, for 400, field paths mapped to lists of messages.',
    "additionalProperties": True,
}
COMMON_ERRORS = {
    "400": "Invalid input (the fields at fault are named) or a malformed x-selected-account-id.",
    "401": "No API key, or an invalid, revoked or expired one.",
    "403": "The key's user is not a member of the account, or the role does not allow this.",
}
OBJECT_ERRORS = {"404": "No such object in this account."}
WRITE_ERRORS = {"413": "Request body too large.", "415": "The body is not JSON."}


def error_response(description: str) -> OpenApiResponse:
    """An error answer for `extend_schema(responses=…)`: the error body, described."""
    return OpenApiResponse(response=ERROR_BODY, description=description)


def _error_response_object(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR_BODY}}}


class TrainAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = dict(COMMON_ERRORS)
        if "{" in self.path:
            errors.update(OBJECT_ERRORS)
        if self.method in ("POST", "PUT", "PATCH"):
            errors.update(WRITE_ERRORS)
        for code, description in errors.items():
            responses.setdefault(code, _error_response_object(description))
        return responses
