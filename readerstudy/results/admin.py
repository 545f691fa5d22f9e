"""Admin pages of the results app: machine-observer jobs."""

from django.contrib import admin

from readerstudy.core.admin import LeasedJobAdmin

from .models import MachineObserverJob


@admin.register(MachineObserverJob)
class MachineObserverJobAdmin(LeasedJobAdmin):
    list_display = ("pk", "study", "state", "progress_display", "attempts", "created_at")
    list_filter = ("state",)
    readonly_fields = ("state", "progress", "result", "error", "log", "attempts", "lease_owner", "finished_at")
