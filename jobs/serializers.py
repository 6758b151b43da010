"""The job body: shape and backend-independent rules here; backend rules in `backends/<name>`."""

import re

from django.conf import settings
from rest_framework import serializers

from backends.registry import enabled_backend_names
from jobs.mirroring import job_mirror_status
from jobs.models import Job, JobEvent, JobStatus
from trainsvc.api.strict import StrictCharField, StrictFieldsMixin, StrictIntegerField

NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._ -]{0,127}\Z")
ENV_KEY_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,255}\Z")
# Train sets these itself; a user value would silently break mounts or job identity.
RESERVED_ENV_PREFIXES = ("STORAGE_MOUNT_", "TRAIN_")
# No "__" in keys: it is the ORM's lookup separator, and label filters are ORM lookups.
LABEL_KEY_RE = re.compile(r"\A(?!.*__)[a-z][a-z0-9_-]{0,62}\Z")
LABEL_VALUE_RE = re.compile(r"\A[a-z0-9_-]{0,63}\Z")
MAX_ENV_VARS = 100  # the strictest cloud limit (Vertex, SageMaker)
MAX_LABELS = 50
MAX_MOUNTS = 32
MAX_RUNTIME_CEILING_SECONDS = 28 * 24 * 3600  # no backend runs longer (SageMaker's maximum)


class ResourcesSerializer(StrictFieldsMixin, serializers.Serializer):
    machine_type = StrictCharField(max_length=128, required=False, allow_blank=False)
    accelerator_type = StrictCharField(max_length=128, required=False, allow_blank=False)
    accelerator_count = StrictIntegerField(min_value=0, max_value=64, required=False, default=0)
    instance_count = StrictIntegerField(min_value=1, max_value=256, required=False, default=1)

    def validate(self, attrs):
        if attrs.get("accelerator_count") and not attrs.get("accelerator_type"):
            raise serializers.ValidationError({"accelerator_type": "Required when accelerator_count is above 0."})
        return attrs


class StorageMountSerializer(StrictFieldsMixin, serializers.Serializer):
    source = StrictCharField(max_length=1024)
    mode = serializers.ChoiceField(choices=["ro", "rw"], default="ro")

    def validate_source(self, value):
        if not re.match(r"\A[a-z][a-z0-9+.-]*://", value):
            raise serializers.ValidationError("Must be a URI such as gs://bucket/path, s3://bucket/prefix or file:///path.")
        return value


class JobCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    name = StrictCharField(max_length=128)
    # Choices are the backends this deployment enables (set per instance, so the schema's enum and the
    # error message follow the settings).
    backend = serializers.ChoiceField(choices=())
    image = StrictCharField(max_length=512)
    command = serializers.ListField(child=StrictCharField(max_length=4096), min_length=1, max_length=256)
    args = serializers.ListField(
        child=StrictCharField(max_length=32768, allow_blank=True), max_length=1024, required=False, default=list,
    )
    env = serializers.DictField(child=StrictCharField(max_length=32768, allow_blank=True), required=False,
                                default=dict)
    resources = ResourcesSerializer(required=False)
    storage_mounts = StorageMountSerializer(many=True, required=False, default=list)
    max_runtime_seconds = StrictIntegerField(min_value=1, max_value=MAX_RUNTIME_CEILING_SECONDS, required=False)
    labels = serializers.DictField(child=StrictCharField(allow_blank=True, max_length=63), required=False,
                                   default=dict)
    backend_options = serializers.DictField(required=False, default=dict)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        enabled = enabled_backend_names()
        backend = self.fields["backend"]
        backend.choices = enabled
        backend.error_messages["invalid_choice"] = (
            "Unknown or disabled backend {input!r}; this deployment offers: " + ", ".join(enabled) + "."
        )

    def validate_name(self, value):
        if not NAME_RE.match(value):
            raise serializers.ValidationError(
                "Use 1-128 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit."
            )
        return value

    def validate_command(self, value):
        if not value[0].strip():
            raise serializers.ValidationError("The first element (the program) must not be blank.")
        return value

    def validate_env(self, value):
        if len(value) > MAX_ENV_VARS:
            raise serializers.ValidationError(f"At most {MAX_ENV_VARS} variables.")
        errors = {}
        for key in value:
            if not ENV_KEY_RE.match(key):
                errors[key] = ["Names are letters, digits and '_', not starting with a digit (at most 256)."]
            elif key.startswith(RESERVED_ENV_PREFIXES):
                errors[key] = [f"Names starting with {' or '.join(RESERVED_ENV_PREFIXES)} are set by Train."]
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_labels(self, value):
        if len(value) > MAX_LABELS:
            raise serializers.ValidationError(f"At most {MAX_LABELS} labels.")
        errors = {}
        for key, label in value.items():
            if not LABEL_KEY_RE.match(key):
                errors[key] = ["Keys are 1-63 lowercase letters, digits, '_' or '-', starting with a letter (no '__')."]
            elif not LABEL_VALUE_RE.match(label):
                errors[key] = ["Values are at most 63 lowercase letters, digits, '_' or '-'."]
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_storage_mounts(self, value):
        if len(value) > MAX_MOUNTS:
            raise serializers.ValidationError(f"At most {MAX_MOUNTS} mounts.")
        return value

    def validate(self, attrs):
        attrs.setdefault("resources", {"accelerator_count": 0, "instance_count": 1})
        attrs.setdefault("max_runtime_seconds", settings.TRAIN_DEFAULT_MAX_RUNTIME_SECONDS)
        return attrs


class JobSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    sub_status = serializers.SerializerMethodField(
        help_text="The cloud's own status of the job; while its image is mirrored, the copy's progress "
                  "(\"mirroring to ECR: 1.2 of 3.4 GB\").")
    # Empty until the backend has a console page for the job, so not declared as a URI in the schema.
    console_url = serializers.CharField(read_only=True)

    def get_sub_status(self, job) -> str:
        return job_mirror_status(job) or job.remote_status

    class Meta:
        model = Job
        fields = [
            "id", "name", "backend", "status", "status_message", "sub_status", "image", "image_digest",
            "cloud_image", "command", "args", "env", "resources", "storage_mounts", "max_runtime_seconds",
            "labels", "backend_options", "remote_id", "console_url", "log_tail", "created_by", "created_at",
            "submitted_at", "started_at", "finished_at", "cancel_requested_at", "last_seen_at",
        ]
        read_only_fields = fields


class JobEventSerializer(serializers.ModelSerializer):
    # "" on the first event, the job's creation.
    from_status = serializers.ChoiceField(choices=JobStatus.choices, allow_blank=True, read_only=True)

    class Meta:
        model = JobEvent
        fields = ["from_status", "to_status", "reason", "remote_status", "actor", "at"]
        read_only_fields = fields


class JobLogsSerializer(serializers.Serializer):
    lines = serializers.ListField(child=serializers.CharField())


MAX_LOG_LINES = 5000


class JobLogsQuerySerializer(serializers.Serializer):
    tail = serializers.IntegerField(min_value=1, max_value=MAX_LOG_LINES, default=200,
                                    help_text="How many of the last lines to return.")


class JobListQuerySerializer(serializers.Serializer):
    """The list filters: validated here, applied in jobs/filters.py, documented in the schema."""

    status = serializers.ListField(child=serializers.ChoiceField(choices=JobStatus.choices), required=False)
    backend = serializers.ListField(child=serializers.CharField(max_length=32), required=False)
    name = serializers.CharField(required=False, allow_blank=True)
    label = serializers.ListField(
        child=serializers.RegexField(
            r"^(?!.*__)[a-z][a-z0-9_-]{0,62}:[a-z0-9_-]{0,63}$",
            error_messages={"invalid": "Use key:value with a valid label key and value."},
        ),
        required=False,
        help_text="key:value; repeat to require several labels.",
    )
