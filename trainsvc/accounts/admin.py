from django.contrib import admin, messages
from django.utils import timezone

from trainsvc.accounts.models import Account, ApiKey, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_at"]
    search_fields = ["id", "name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        return ["id", "created_at"] if obj else ["created_at"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["account", "user", "role", "created_at"]
    list_filter = ["role", "account"]
    search_fields = ["account__id", "user__username"]
    autocomplete_fields = ["user", "account"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "name", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["key_id", "user__username", "name"]
    autocomplete_fields = ["user"]
    actions = ["revoke_selected"]
    # The secret hash is never shown; the key id is enough to find a key.
    fields = ["user", "name", "expires_at", "key_id", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["key_id", "created_at", "last_used_at", "revoked_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the audit trail keeps the key id

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, plaintext = ApiKey.issue(user=obj.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.key_id = key.pk, key.key_id
        self.message_user(
            request, f"New key (copy it now, it is not shown again): {plaintext}", level=messages.WARNING
        )

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")


