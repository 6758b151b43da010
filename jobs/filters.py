"""Query-string filters of GET /v1/jobs: status, backend, name, label=key:value (all repeatable but name).

Validated by JobListQuerySerializer, the same serializer that documents them in the schema."""

from django.db.models.fields.json import KeyTransform
from rest_framework.exceptions import ValidationError

from jobs.serializers import JobListQuerySerializer


def filter_jobs(queryset, params):
    query = JobListQuerySerializer(data=params)
    if not query.is_valid():
        # Name the query parameter (`status`), not the position of the bad value in it (`status[0]`).
        raise ValidationError({field: _messages(detail) for field, detail in query.errors.items()})
    wanted = query.validated_data
    if "status" in wanted:
        queryset = queryset.filter(status__in=wanted["status"])
    if "backend" in wanted:
        queryset = queryset.filter(backend__in=wanted["backend"])
    if "name" in wanted:
        queryset = queryset.filter(name=wanted["name"])
    for index, label in enumerate(wanted.get("label", [])):
        key, _, value = label.partition(":")
        # An explicit key transform: in `labels__<key>` a key such as "contains" or "isnull" would be read
        # as a lookup, not a label.
        alias = f"label_{index}"
        queryset = queryset.alias(**{alias: KeyTransform(key, "labels")}).filter(**{alias: value})
    return queryset


def _messages(detail) -> list[str]:
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value)]
    return [str(detail)]
