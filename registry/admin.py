"""Read-only admin pages: repositories, tags with their history, manifests (searchable by digest).
Changes go through the registry protocol, where every rule and every TagEvent is applied. No page
reads a manifest's content (up to 4 MiB each): tags and manifests are loaded without it."""

from django.contrib import admin

from registry.models import Blob, Manifest, Repository, Tag, TagEvent, Upload


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def tags_without_content(queryset):
    return queryset.select_related("repository", "manifest__repository").defer("manifest__content")


class TagInline(admin.TabularInline):
    model = Tag
    fields = ["name", "manifest", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return tags_without_content(super().get_queryset(request))


@admin.register(Repository)
class RepositoryAdmin(ReadOnlyAdmin):
    list_display = ["name", "account", "last_push_at", "created_at"]
    list_filter = ["account"]
    search_fields = ["name", "manifests__digest"]
    inlines = [TagInline]


class TagEventInline(admin.TabularInline):
    model = TagEvent
    fk_name = "repository"
    fields = ["tag", "old_digest", "new_digest", "actor", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "digest", "updated_at"]
    search_fields = ["name", "repository__name", "manifest__digest"]
    readonly_fields = ["repository", "name", "manifest", "updated_at", "history"]

    def get_queryset(self, request):
        return tags_without_content(super().get_queryset(request))

    @admin.display(description="digest")
    def digest(self, obj):
        return obj.manifest.digest

    @admin.display(description="history (newest first)")
    def history(self, obj):
        events = TagEvent.objects.filter(repository=obj.repository, tag=obj.name)[:50]
        return "\n".join(f"{e.created_at:%Y-%m-%d %H:%M:%S} {e.old_digest or '∅'} → {e.new_digest or '∅'} "
                         f"by {e.actor}" for e in events)


@admin.register(TagEvent)
class TagEventAdmin(ReadOnlyAdmin):
    list_display = ["repository", "tag", "old_digest", "new_digest", "actor", "created_at"]
    search_fields = ["repository__name", "tag", "old_digest", "new_digest"]
    list_select_related = ["repository"]


@admin.register(Manifest)
class ManifestAdmin(ReadOnlyAdmin):
    list_display = ["digest", "repository", "media_type", "total_size", "pushed_by", "created_at"]
    list_filter = ["media_type"]
    search_fields = ["digest", "repository__name", "subject_digest"]
    exclude = ["content"]
    list_select_related = ["repository"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    list_display = ["digest", "size", "created_at", "quarantined_at"]
    search_fields = ["digest"]


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = ["id", "repository", "offset", "created_by", "updated_at", "expires_at"]
    search_fields = ["id", "repository__name"]
    exclude = ["hash_state", "store_state"]
