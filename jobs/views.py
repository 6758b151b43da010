import re

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from backends.base import BackendError, SpecError
from jobs.filters import filter_jobs
from jobs.models import Job, Submission
from jobs.serializers import (
    JobCreateSerializer,
    JobEventSerializer,
    JobListQuerySerializer,
    JobLogsQuerySerializer,
    JobLogsSerializer,
    JobSerializer,
)
from jobs.services import (
    IdempotencyMismatch,
    JobConflict,
    job_backend,
    job_cancel,
    job_create,
    job_remote_ref,
    request_fingerprint,
)
from trainsvc.api.openapi import error_response
from trainsvc.api.strict import StrictQueryParamsMixin

MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Job ids are "job_" and hex; anything else in the path is no job (and never reaches the database, where
# a NUL byte would be an error rather than a miss).
JOB_ID_RE = re.compile(r"\A[A-Za-z0-9_-]{1,40}\Z")
IDEMPOTENCY_KEY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER,
    description="1-255 characters; a retry with the same key and body returns the same job.",
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class UnprocessableIdempotencyKey(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"


class BackendUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "backend_unavailable"


def api_actor(request) -> str:
    """Who an API request acts as, in job history: the API key's id (never its secret)."""
    return f"api:{request.auth.key.key_id}"


@extend_schema_view(list=extend_schema(parameters=[JobListQuerySerializer]))
class JobViewSet(StrictQueryParamsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    lookup_value_regex = "[^/]+"
    query_params_by_action = {
        "list": frozenset(JobListQuerySerializer().fields),
        "logs": frozenset(JobLogsQuerySerializer().fields),
    }

    def get_queryset(self):
        return Job.objects.for_account(self.request.auth.account).select_related("created_by", "mirror")

    def filter_queryset(self, queryset):
        return filter_jobs(queryset, self.request.query_params) if self.action == "list" else queryset

    @extend_schema(request=JobCreateSerializer, parameters=[IDEMPOTENCY_KEY_HEADER], responses={
        201: JobSerializer, 422: error_response("The Idempotency-Key was used with a different body."),
    })
    def create(self, request):
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH):
            raise ValidationError({"Idempotency-Key": [f"Must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} characters."]})
        body = JobCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job, created = job_create(
                account=request.auth.account, user=request.user, data=body.validated_data,
                idempotency_key=key, fingerprint=request_fingerprint(request.data) if key else "",
                actor=api_actor(request),
            )
        except SpecError as exc:
            raise ValidationError(exc.errors) from exc
        except IdempotencyMismatch as exc:
            raise UnprocessableIdempotencyKey(str(exc)) from exc
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(request=None, responses={202: JobSerializer, 409: error_response("The job already finished.")})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        try:
            job = job_cancel(job=job, actor=api_actor(request))
        except JobConflict as exc:
            raise Conflict(str(exc)) from exc
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: JobEventSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, pk=None):
        job = self.get_object()
        return Response(JobEventSerializer(job.events.all(), many=True).data)

    @extend_schema(parameters=[JobLogsQuerySerializer], responses={
        200: JobLogsSerializer, 503: error_response("The backend's log store could not be read."),
    })
    @action(detail=True, methods=["get"], pagination_class=None)
    def logs(self, request, pk=None):
        job = self.get_object()
        query = JobLogsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if job.submission != Submission.SUBMITTED:
            return Response({"lines": []})
        try:
            lines = job_backend(job).logs(job_remote_ref(job), tail=query.validated_data["tail"])
        except (BackendError, SpecError) as exc:
            raise BackendUnavailable(f"Could not read the logs from {job.backend}: {exc}") from exc
        return Response({"lines": lines})

    def get_object(self):
        if not JOB_ID_RE.match(self.kwargs["pk"]):
            raise Http404("No such job in this account.")
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
