from django.contrib import admin

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
