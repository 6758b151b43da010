"""Read-only admin pages: repositories, tags with their history, manifests (searchable by digest),
mirrors with their progress. Changes go through the registry protocol, where every rule and every
TagEvent is applied; the one action is a mirror's "retry". No page reads a manifest's content (up to
4 MiB each): tags and manifests are loaded without it."""

from django.contrib import admin, messages

from registry.mirror import mirror_retry
from registry.models import Blob, Manifest, Mirror, MirrorBlob, MirrorState, Repository, Tag, TagEvent, Upload


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


class MirrorBlobInline(admin.TabularInline):
    model = MirrorBlob
    fields = ["digest", "size", "bytes_sent", "upload_offset", "done_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Mirror)
class MirrorAdmin(ReadOnlyAdmin):
    list_display = ["manifest_digest", "repository", "target", "state", "progress", "attempts", "error_summary",
                    "updated_at"]
    list_filter = ["state", "target_registry"]
    search_fields = ["manifest_digest", "repository__name", "target_repository"]
    list_select_related = ["repository"]
    readonly_fields = ["repository", "manifest_digest", "target_registry", "target_repository", "state",
                       "progress", "attempts", "error", "lease_until", "next_attempt_at", "created_at",
                       "started_at", "finished_at", "updated_at"]
    exclude = ["lease_holder", "bytes_done", "bytes_total", "blobs_done", "blobs_total"]
    inlines = [MirrorBlobInline]
    actions = ["retry"]

    @admin.display(description="target")
    def target(self, obj):
        return f"{obj.target_registry}/{obj.target_repository}"

    @admin.display(description="progress")
    def progress(self, obj):
        return (f"{obj.bytes_done / 1e9:.2f} of {obj.bytes_total / 1e9:.2f} GB, "
                f"{obj.blobs_done} of {obj.blobs_total} blobs")

    @admin.display(description="error")
    def error_summary(self, obj):
        return obj.error[:120]

    @admin.action(description="Retry the selected failed mirrors")
    def retry(self, request, queryset):
        retried = sum(mirror_retry(mirror=mirror) for mirror in queryset.filter(state=MirrorState.FAILED))
        skipped = queryset.count() - retried
        self.message_user(request, f"{retried} mirror(s) put back in line; the worker's sweep starts the copy "
                                   f"within a minute and the jobs waiting on them follow."
                                   + (f" {skipped} were not FAILED and were left as they are." if skipped else ""),
                          messages.SUCCESS if retried else messages.WARNING)
