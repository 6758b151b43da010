from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from backends.base import SpecError
from backends.models import BackendConfig
from backends.registry import backend_class, enabled_backend_names
from backends.services import backend_configure
from trainsvc.accounts.models import Role
from trainsvc.api.strict import StrictQueryParamsMixin


class BackendSerializer(serializers.Serializer):
    name = serializers.CharField()
    storage_schemes = serializers.ListField(child=serializers.CharField())
    max_runtime_seconds = serializers.IntegerField()
    requires_config = serializers.BooleanField()
    configured = serializers.BooleanField()
    config = serializers.DictField()
    health = serializers.DictField(
        help_text="What runs this backend's jobs on this deployment, when Train checks it (local: the container "
                  "engine, its version, whether GPUs are available, or why jobs run as host processes).")


BackendConfigRequest = inline_serializer("BackendConfigRequest", {"config": serializers.DictField()})


def describe(name: str, row: BackendConfig | None, *, role: str) -> dict:
    cls = backend_class(name)
    return {
        "name": name,
        "storage_schemes": list(cls.storage_schemes),
        "max_runtime_seconds": cls.max_runtime_seconds,
        "requires_config": cls.requires_config,
        "configured": row is not None or not cls.requires_config,
        "config": cls.public_config(row.config, admin=role == Role.ADMIN) if row else {},
        "health": cls.health(),
    }


class BackendViewSet(StrictQueryParamsMixin, viewsets.ViewSet):
    """The backends this deployment offers, and this account's configuration of each."""

    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    write_role = Role.ADMIN

    def finalize_response(self, request, response, *args, **kwargs):
        # Admins see the ExternalId that guards the account's assumed role: no cache may keep it.
        add_never_cache_headers(response)
        return super().finalize_response(request, response, *args, **kwargs)

    def _rows(self):
        return {row.backend: row for row in BackendConfig.objects.filter(account=self.request.auth.account)}

    @extend_schema(responses={200: BackendSerializer(many=True)})
    def list(self, request):
        rows = self._rows()
        role = request.auth.role
        return Response([describe(name, rows.get(name), role=role) for name in enabled_backend_names()])

    @extend_schema(responses={200: BackendSerializer})
    def retrieve(self, request, name=None):
        if name not in enabled_backend_names():
            raise NotFound(f"No backend {name!r} on this deployment.")
        return Response(describe(name, self._rows().get(name), role=request.auth.role))

    @extend_schema(request=BackendConfigRequest, responses={200: BackendSerializer})
    def update(self, request, name=None):
        if name not in enabled_backend_names():
            raise NotFound(f"No backend {name!r} on this deployment.")
        if not isinstance(request.data, dict) or "config" not in request.data:
            raise ValidationError({"config": ["Send {\"config\": {...}}."]})
        if unknown := sorted(key for key in request.data if key != "config"):
            raise ValidationError({key: ["Unknown field; send only {\"config\": {...}}."] for key in unknown})
        try:
            row = backend_configure(account=request.auth.account, name=name, config=request.data["config"],
                                    user=request.user)
        except SpecError as exc:
            raise ValidationError({f"config.{path}" if path != "config" else path: msgs
                                   for path, msgs in exc.errors.items()}) from exc
        return Response(describe(name, row, role=request.auth.role))
