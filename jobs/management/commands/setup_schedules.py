from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

# (name, task, minutes). Schedule.name is not unique in django-q2, so this command owns these names:
# it keeps exactly one row per name and corrects its task and interval.
SCHEDULES = [
    ("train: poll due jobs", "jobs.tasks.poll_due_jobs", lambda: max(1, settings.TRAIN_POLL_INTERVAL_SECONDS // 60)),
    ("train: sweep jobs", "jobs.tasks.sweep_jobs", lambda: 1),
    # Idle sessions hold an account's upload slots: reclaim them soon after the idle timeout.
    ("train: reclaim registry uploads", "registry.tasks.reclaim_uploads", lambda: 10),
    ("train: registry gc", "registry.tasks.collect_garbage", lambda: settings.TRAIN_REGISTRY_GC_INTERVAL_MINUTES),
    # The local backend's podman image store: what no recent or active job wants (jobs/image_store.py).
    ("train: prune local images", "jobs.tasks.prune_local_images", lambda: 60),
]
# Names this command created before and no longer wants. (Missed runs are not caught up: Q_CLUSTER
# sets catch_up off, so a worker that was down runs each schedule once, not once per missed period.)
RETIRED = ["train: expire registry uploads"]


class Command(BaseCommand):
    help = "Create or update the worker's periodic schedules (idempotent; run after migrate)."

    @transaction.atomic
    def handle(self, *args, **options):
        Schedule.objects.filter(name__in=RETIRED).delete()
        for name, func, minutes in SCHEDULES:
            rows = list(Schedule.objects.select_for_update().filter(name=name).order_by("id"))
            for extra in rows[1:]:
                extra.delete()
            schedule = rows[0] if rows else Schedule(name=name)
            schedule.func = func
            schedule.schedule_type = Schedule.MINUTES
            schedule.minutes = minutes()
            schedule.repeats = -1
            schedule.save()
            self.stdout.write(f"{name}: every {schedule.minutes} min")
