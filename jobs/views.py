from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from backends.base import BackendError, RemoteRef, SpecError
from backends.services import backend_for_account
from jobs.filters import filter_jobs
from jobs.models import Job
from jobs.serializers import JobCreateSerializer, JobEventSerializer, JobLogsSerializer, JobSerializer
from jobs.services import IdempotencyMismatch, JobConflict, job_cancel, job_create, request_fingerprint

MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_LOG_LINES = 5000


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class UnprocessableIdempotencyKey(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"


class BackendUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "backend_unavailable"


@extend_schema_view(
    list=extend_schema(parameters=[
        OpenApiParameter("status", str, many=True), OpenApiParameter("backend", str, many=True),
        OpenApiParameter("name", str), OpenApiParameter("label", str, many=True, description="key:value"),
    ]),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return Job.objects.for_account(self.request.auth.account).select_related("created_by")

    def filter_queryset(self, queryset):
        return filter_jobs(queryset, self.request.query_params) if self.action == "list" else queryset

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer, 200: JobSerializer})
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
            )
        except SpecError as exc:
            raise ValidationError(exc.errors) from exc
        except IdempotencyMismatch as exc:
            raise UnprocessableIdempotencyKey(str(exc)) from exc
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        actor = f"api:{request.auth.key.key_id}"
        try:
            job = job_cancel(job=job, actor=actor)
        except JobConflict as exc:
            raise Conflict(str(exc)) from exc
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: JobEventSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        job = self.get_object()
        return Response(JobEventSerializer(job.events.all(), many=True).data)

    @extend_schema(parameters=[OpenApiParameter("tail", int, description=f"lines (1-{MAX_LOG_LINES})")],
                   responses={200: JobLogsSerializer})
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        job = self.get_object()
        raw = request.query_params.get("tail", "200")
        if not raw.isdigit() or not 0 < int(raw) <= MAX_LOG_LINES:
            raise ValidationError({"tail": [f"Must be a whole number from 1 to {MAX_LOG_LINES}."]})
        if not job.remote_name or job.submission != "SUBMITTED":
            return Response({"lines": []})
        try:
            backend = backend_for_account(account=job.account, name=job.backend)
            lines = backend.logs(RemoteRef(name=job.remote_name, remote_id=job.remote_id), tail=int(raw))
        except (BackendError, SpecError) as exc:
            raise BackendUnavailable(f"Could not read the logs from {job.backend}: {exc}") from exc
        return Response({"lines": lines})

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
