"""Query-string filters of GET /v1/jobs: status, backend, name, label=key:value (repeatable)."""

from rest_framework.exceptions import ValidationError

from jobs.models import JobStatus
from jobs.serializers import LABEL_KEY_RE, LABEL_VALUE_RE


def filter_jobs(queryset, params):
    errors = {}
    if "status" in params:
        statuses = params.getlist("status")
        if unknown := [s for s in statuses if s not in JobStatus.values]:
            errors["status"] = [f"Unknown status {unknown[0]!r}; use one of {', '.join(JobStatus.values)}."]
        queryset = queryset.filter(status__in=statuses)
    if "backend" in params:
        queryset = queryset.filter(backend__in=params.getlist("backend"))
    if "name" in params:
        queryset = queryset.filter(name=params["name"])
    for label in params.getlist("label"):
        key, sep, value = label.partition(":")
        if not sep or not LABEL_KEY_RE.match(key) or not LABEL_VALUE_RE.match(value):
            errors["label"] = ["Use label=key:value with a valid label key and value."]
            continue
        queryset = queryset.filter(**{f"labels__{key}": value})  # the key grammar has no "__"
    if errors:
        raise ValidationError(errors)
    return queryset
