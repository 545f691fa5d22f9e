"""Admin pages of the platform: the furniture every long job's admin shares, the probe job and
worker heartbeats."""

from django.contrib import admin, messages
from django.utils.html import format_html

from .jobs import job_cancel, job_enqueue
from .models import ProbeJob, WorkerHeartbeat
from .workers import workers_alive


def progress_bar(job) -> str:
    step, total = job.progress.get("step", 0), job.progress.get("total") or 0
    if not total:
        return "-"
    return format_html('<progress value="{}" max="{}"></progress> {}/{}', step, total, step, total)


class LeasedJobAdmin(admin.ModelAdmin):
    """Admin furniture every long job shares: a progress bar in the list."""

    @admin.display(description="progress")
    def progress_display(self, job) -> str:
        return progress_bar(job)


@admin.register(ProbeJob)
class ProbeJobAdmin(LeasedJobAdmin):
    list_display = ("pk", "queue", "state", "progress_display", "attempts", "lease_owner", "created_at")
    list_filter = ("state", "queue")
    readonly_fields = (
        "state",
        "created_at",
        "queued_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "lease_owner",
        "lease_expires_at",
        "attempts",
        "cancel_requested",
        "progress",
        "error",
        "log",
    )
    actions = ["cancel_jobs", "run_again"]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            job_enqueue(job=obj)

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset) -> None:
        for job in queryset:
            job_cancel(job=job)
        self.message_user(request, f"Cancel requested for {queryset.count()} job(s).")

    @admin.action(description="Run selected finished jobs again")
    def run_again(self, request, queryset) -> None:
        finished = [job for job in queryset if job.is_finished]
        for job in finished:
            job.cancel_requested = False
            job.progress = {}
            job_enqueue(job=job)
        self.message_user(request, f"Queued {len(finished)} job(s).", messages.SUCCESS)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "queues", "pid", "started_at", "last_seen", "alive")

    @admin.display(boolean=True)
    def alive(self, worker: WorkerHeartbeat) -> bool:
        return worker.pk in {w.pk for w in workers_alive()}

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
