from django.conf import settings
from django.contrib import admin, messages

from backends.models import BackendConfig


@admin.register(BackendConfig)
class BackendConfigAdmin(admin.ModelAdmin):
    """Operators may inspect configurations; changes go through PUT /v1/backends/{name}, where the
    backend validates them."""

    list_display = ["account", "backend", "updated_at", "updated_by"]
    list_filter = ["backend"]
    search_fields = ["account__id"]
    readonly_fields = ["account", "backend", "config", "updated_at", "updated_by"]

    def has_add_permission(self, request):
        return False

    def changelist_view(self, request, extra_context=None):
        if settings.TRAIN_LOCAL_BACKEND:
            from backends.local_engine import local_engine

            engine = local_engine(fresh=True)
            messages.add_message(request, messages.INFO if engine.ok else messages.WARNING, engine.describe())
        return super().changelist_view(request, extra_context)
