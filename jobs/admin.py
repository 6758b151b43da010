from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from jobs.models import Job, JobEvent
from jobs.services import JobConflict, job_cancel


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    fields = ["at", "from_status", "to_status", "remote_status", "reason", "actor", "effects", "effects_done_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    CHOICES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    def lookups(self, request, model_admin):
        return [(key, f"Created in the last {key}") for key in self.CHOICES] + [("older", "Older than 30d")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() in self.CHOICES:
            return queryset.filter(created_at__gte=now - self.CHOICES[self.value()])
        if self.value() == "older":
            return queryset.filter(created_at__lt=now - self.CHOICES["30d"])
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "account", "backend", "status", "remote_status", "created_at", "finished_at"]
    list_filter = ["status", "backend", "account", AgeFilter]
    search_fields = ["=id", "name", "=remote_id", "=remote_name"]
    date_hierarchy = "created_at"
    inlines = [JobEventInline]
    actions = ["cancel_selected"]
    list_select_related = ["account"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["id", "account", "created_by", "name", "backend", "status", "status_message",
                           "remote_status", "log_tail"]}),
        ("What runs", {"fields": ["image", "image_digest", "cloud_image", "command", "args", "env", "resources",
                                  "storage_mounts", "max_runtime_seconds", "labels", "backend_options"]}),
        ("Remote job", {"fields": ["submission", "mirror", "submit_attempts", "next_submit_at", "remote_name",
                                   "remote_id", "console_url", "backend_config"]}),
        ("Times", {"fields": ["created_at", "pending_deadline_at", "submitted_at", "started_at", "finished_at",
                              "cancel_requested_at", "cancel_requested_by", "next_cancel_at", "last_seen_at",
                              "next_poll_at", "poll_failures"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False  # jobs are submitted through the API, where they are validated

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_selected(self, request, queryset):
        canceled, finished = 0, 0
        for job in queryset:
            try:
                job_cancel(job=job, actor=f"admin:{request.user.get_username()}")
                canceled += 1
            except JobConflict:
                finished += 1
        self.message_user(request, f"Cancellation requested for {canceled} job(s); {finished} had already finished.")
