"""Admin pages of the reading app."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from readerstudy.core.errors import ApplicationError

from .models import QuizImage, Reader, Study
from .pools import study_pools_from_bank
from .quiz import quiz_pool_counts
from .readers import ReaderError, invitation_send, invitation_url, reader_progress
from .sessions import study_close, study_open, study_pool_counts
from .studies import researchers_assignable


class ReaderInline(admin.TabularInline):
    """The study page's reader table: who reads, how far they are, their invitation link."""

    model = Reader
    extra = 0
    fields = ("user", "role", "years_experience", "simulated", "progress_display", "invited_at", "consent_accepted_at")
    readonly_fields = ("progress_display", "invited_at", "consent_accepted_at")
    autocomplete_fields = ("user",)

    @admin.display(description="progress")
    def progress_display(self, reader: Reader) -> str:
        if reader.pk is None:
            return "-"
        progress = reader_progress(reader=reader)
        expired = f", {progress.expired} expired" if progress.expired else ""
        return format_html(
            '<progress value="{}" max="{}"></progress> {}/{} {}{}',
            progress.done,
            progress.total,
            progress.done,
            progress.total,
            progress.status,
            expired,
        )


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "readers_count", "images_per_session", "time_limit_s", "fixed_set", "created_at")
    list_filter = ("state",)
    search_fields = ("name",)
    inlines = [ReaderInline]
    actions = ["open_studies", "close_studies", "pools_from_whole_bank"]
    readonly_fields = ("state", "pools_display", "dry_run_link", "quiz_link", "fixed_main_set", "fixed_training_set")
    fieldsets = (
        (None, {"fields": ("name", "state", "dry_run_link", "instructions", "consent_text")}),
        (
            "Protocol (frozen once a reader has started)",
            {"fields": Study.PROTOCOL_FIELDS},
        ),
        ("Pools", {"fields": ("pools_display", "fixed_main_set", "fixed_training_set")}),
        ("After reading", {"fields": ("show_score_after",)}),
        ("Who sees the results", {"fields": ("researchers",)}),
        ("Public quiz", {"fields": ("quiz_enabled", "quiz_link")}),
    )

    filter_horizontal = ("researchers",)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "researchers":
            kwargs["queryset"] = researchers_assignable()
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        frozen = Study.EVIDENCE_FIELDS if obj is not None and obj.has_started else ()
        return tuple(dict.fromkeys((*self.readonly_fields, *frozen)))

    @admin.display(description="readers")
    def readers_count(self, study: Study) -> int:
        return study.readers.count()

    @admin.display(description="pools")
    def pools_display(self, study: Study) -> str:
        counts = study_pool_counts(study=study)
        if not any(counts.values()):
            return "empty: select the study in the list and run “Set pools from the whole active bank”"
        return ", ".join(f"{name.replace('_', ' ')}: {count}" for name, count in counts.items())

    @admin.display(description="dry run")
    def dry_run_link(self, study: Study) -> str:
        if study.pk is None:
            return "-"
        return format_html(
            '<a class="button" href="{}">Read it as a reader would (nothing is recorded)</a>',
            reverse("dry-run", args=[study.pk]),
        )

    @admin.display(description="quiz page")
    def quiz_link(self, study: Study) -> str:
        if study.pk is None or not study.quiz_enabled:
            return "off"
        url = reverse("quiz", args=[study.pk])
        return format_html('<a href="{}">{}</a> (quiz pool: {})', url, url, quiz_pool_counts())

    def save_model(self, request, obj, form, change) -> None:
        try:
            super().save_model(request, obj, form, change)
        except ApplicationError as error:
            self.message_user(request, str(error), messages.ERROR)

    @admin.action(description="Open selected studies for reading")
    def open_studies(self, request, queryset) -> None:
        for study in queryset:
            try:
                study_open(study=study)
            except ApplicationError as error:
                self.message_user(request, f"{study}: {error}", messages.ERROR)
        self.message_user(request, "Opened the studies that could open.")

    @admin.action(description="Close selected studies")
    def close_studies(self, request, queryset) -> None:
        for study in queryset:
            study_close(study=study)
        self.message_user(request, f"Closed {queryset.count()} stud{'y' if queryset.count() == 1 else 'ies'}.")

    @admin.action(description="Set pools from the whole active bank (training pool drawn at random)")
    def pools_from_whole_bank(self, request, queryset) -> None:
        for study in queryset:
            try:
                counts = study_pools_from_bank(study=study)
            except ApplicationError as error:
                self.message_user(request, f"{study}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{study}: {counts}", messages.SUCCESS)


@admin.register(Reader)
class ReaderAdmin(admin.ModelAdmin):
    list_display = ("user", "study", "role", "years_experience", "simulated", "progress_display", "invited_at")
    list_filter = ("study", "role", "simulated")
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
    readonly_fields = ("invited_at", "consent_accepted_at")
    actions = ["show_invitation_links", "email_invitations"]
    progress_display = ReaderInline.progress_display

    @admin.action(description="Show invitation links")
    def show_invitation_links(self, request, queryset) -> None:
        base_url = request.build_absolute_uri("/")
        for reader in queryset.select_related("user", "study"):
            self.message_user(
                request, f"{reader.user} ({reader.study}): {invitation_url(reader=reader, base_url=base_url)}"
            )

    @admin.action(description="E-mail invitations")
    def email_invitations(self, request, queryset) -> None:
        base_url = request.build_absolute_uri("/")
        for reader in queryset.select_related("user", "study"):
            try:
                invitation_send(reader=reader, base_url=base_url)
            except ReaderError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Invitation e-mailed to {reader.user.email}.", messages.SUCCESS)


@admin.register(QuizImage)
class QuizImageAdmin(admin.ModelAdmin):
    """The public quiz pool (fill it with ``manage.py quiz_pool --per-class N``)."""

    list_display = ("bank_image", "added_at")

    def has_add_permission(self, request) -> bool:
        return False
