"""Models of the reading app: studies, readers, sessions, trials and pools (the evidence)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from generator.models import BankImage
from readerstudy.core.errors import EvidenceFrozen


class Study(models.Model):
    """A blinded real-or-synthetic reader study; its defaults are the paper's protocol.

    Settings that shape the evidence (``EVIDENCE_FIELDS``) freeze once any session has started:
    saving a change to one of them then raises ``EvidenceFrozen``."""

    # The protocol settings an admin chooses; with the fixed sets they are the evidence settings.
    PROTOCOL_FIELDS = (
        "images_per_session",
        "synthetic_min",
        "synthetic_max",
        "time_limit_s",
        "training_images",
        "training_feedback",
        "fixed_set",
        "ask_confidence",
        "ask_reason",
        "display_size_px",
    )
    EVIDENCE_FIELDS = (*PROTOCOL_FIELDS, "fixed_main_set", "fixed_training_set")

    class State(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        CLOSED = "closed"

    name = models.CharField(max_length=200, unique=True)
    instructions = models.TextField(blank=True)
    consent_text = models.TextField(blank=True, help_text="If set, a reader must accept it before reading.")
    images_per_session = models.PositiveIntegerField(default=50)
    synthetic_min = models.PositiveIntegerField(default=20)
    synthetic_max = models.PositiveIntegerField(default=30)
    time_limit_s = models.FloatField(null=True, blank=True, default=10.0, help_text="Empty: unlimited.")
    training_images = models.PositiveIntegerField(default=10, help_text="Half real, half synthetic.")
    training_feedback = models.BooleanField(default=True, help_text="Show the answer after each training call.")
    fixed_set = models.BooleanField(default=False, help_text="Every reader gets the same images, in their own order.")
    fixed_main_set = models.JSONField(default=list, blank=True)
    fixed_training_set = models.JSONField(default=list, blank=True)
    ask_confidence = models.BooleanField(default=False, help_text="Ask a 5-point confidence with each call.")
    ask_reason = models.BooleanField(default=False, help_text="Offer a free-text reason with each call.")
    display_size_px = models.PositiveIntegerField(
        default=512,
        help_text="The most room an image gets, in CSS pixels; each image pixel is shown as k × k screen pixels, "
        "k the largest whole number that fits (all images alike).",
    )
    show_score_after = models.BooleanField(
        default=False, help_text="Show a reader their main-phase score on the thank-you page."
    )
    quiz_enabled = models.BooleanField(
        default=False, help_text="A public real-or-synthetic quiz page for this study (images from the quiz pool)."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    researchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="assigned_studies",
        help_text="The researchers who see this study's results and exports (admins see every study).",
    )

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.has_started:
            stored = Study.objects.filter(pk=self.pk).values(*self.EVIDENCE_FIELDS).first()
            changed = [name for name in self.EVIDENCE_FIELDS if stored and stored[name] != getattr(self, name)]
            if changed:
                raise EvidenceFrozen(f"Readers have started {self}; its {', '.join(changed)} can no longer change.")
        super().save(*args, **kwargs)

    @property
    def has_started(self) -> bool:
        return self.pk is not None and ReadingSession.objects.filter(reader__study_id=self.pk).exists()


class Reader(models.Model):
    class Role(models.TextChoices):
        NEURORADIOLOGIST = "neuroradiologist"
        RADIOLOGIST = "radiologist", "other radiologist"
        RESIDENT = "resident"
        OTHER = "other"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="readings")
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="readers")
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.OTHER)
    years_experience = models.PositiveIntegerField(default=0)
    invited_at = models.DateTimeField(null=True, blank=True)
    consent_accepted_at = models.DateTimeField(null=True, blank=True)
    simulated = models.BooleanField(default=False, help_text="Not a person: a simulated reader (the demo's).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "study"], name="one_reader_per_user_and_study")]

    def __str__(self) -> str:
        return f"{self.user} in {self.study}"

    def clean(self) -> None:
        """The admin's reader forms check what ``reader_add`` checks."""
        from .readers import reader_user_refusal  # the rule lives with the readers' services

        if self.user_id is not None and (refusal := reader_user_refusal(self.user)):
            raise ValidationError({"user": refusal})


class DisplayCheck(models.TextChoices):
    """What a reader saw of the display check's two low-contrast patches (13 on 0, 242 on 255)."""

    BOTH_SEEN = "both_seen", "saw both patches"
    DARK_MISSED = "dark_missed", "missed the dark patch"
    LIGHT_MISSED = "light_missed", "missed the light patch"
    NEITHER_SEEN = "neither_seen", "saw neither patch"


class ReadingSession(models.Model):
    """One reader's session: its seed and order are stored, so it can be rebuilt and audited."""

    reader = models.OneToOneField(Reader, on_delete=models.PROTECT, related_name="session")
    seed = models.BigIntegerField()
    synthetic_count = models.PositiveIntegerField()
    main_order = models.JSONField(help_text="Bank image ids of the main phase, in reading order.")
    training_order = models.JSONField(help_text="Bank image ids of the training phase, in reading order.")
    max_images_per_subject = models.PositiveIntegerField(
        null=True, blank=True, help_text="The most main-phase real images of one person (empty: built before #19)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Viewing conditions, recorded once, when the reader answers the display check before the
    # first image (empty: read before #23, or through the API without the reading page).
    # Sizes are CSS pixels as the browser reports them; × device_pixel_ratio gives screen pixels.
    screen_width_px = models.PositiveIntegerField(null=True, blank=True)
    screen_height_px = models.PositiveIntegerField(null=True, blank=True)
    window_width_px = models.PositiveIntegerField(null=True, blank=True)
    window_height_px = models.PositiveIntegerField(null=True, blank=True)
    device_pixel_ratio = models.FloatField(null=True, blank=True)
    browser = models.CharField(max_length=400, blank=True, help_text="The browser's User-Agent.")
    display_check = models.CharField(max_length=16, choices=DisplayCheck.choices, blank=True)
    viewing_recorded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"session of {self.reader}"


class Trial(models.Model):
    """One image of a session, behind its own unguessable token; ends with a call or expired."""

    class Phase(models.TextChoices):
        TRAINING = "training"
        MAIN = "main"

    class Call(models.TextChoices):
        REAL = "real"
        SYNTHETIC = "synthetic"

    session = models.ForeignKey(ReadingSession, on_delete=models.PROTECT, related_name="trials")
    phase = models.CharField(max_length=16, choices=Phase.choices)
    position = models.PositiveIntegerField(help_text="Order within the whole session, training first.")
    bank_image = models.ForeignKey("generator.BankImage", on_delete=models.PROTECT, related_name="trials")
    token = models.CharField(max_length=64, unique=True)
    shown_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    call = models.CharField(max_length=16, choices=Call.choices, blank=True)
    expired = models.BooleanField(default=False)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # How the image was on screen when called (empty: expired, read before #23, or an API client).
    scale_factor = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="k: each image pixel shown as k × k screen pixels."
    )
    full_screen = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "position"], name="one_trial_per_position")]
        ordering = ["session", "position"]

    def __str__(self) -> str:
        return f"trial {self.position} of {self.session}"


class PoolEntry(models.Model):
    """One bank image in one pool of a study. Within a (study, pool, class) the ranks run densely
    from 0, so a session draws ranks at random and fetches just those rows through the unique
    index, whatever the size of the pool. An image sits in at most one pool of a study, which
    keeps the training pool (whose answers are revealed) apart from the main pool."""

    class Pool(models.TextChoices):
        MAIN = "main"
        TRAINING = "training"

    # No index of their own on the two foreign keys: each leads one of the unique constraints'
    # indexes, and a pool of a million entries writes every index a million times.
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="pool_entries", db_index=False)
    pool = models.CharField(max_length=16, choices=Pool.choices)
    image_class = models.CharField(
        max_length=16, choices=BankImage.ImageClass.choices, help_text="Copied from the bank image."
    )
    rank = models.PositiveIntegerField(help_text="0…n-1 within the study, pool and class.")
    bank_image = models.ForeignKey(
        "generator.BankImage", on_delete=models.PROTECT, related_name="pool_entries", db_index=False
    )
    # The person a real image shows (its subject's id; minus the image's id where it has none, a
    # person of one image), and its rank 0…m-1 among that person's entries of the pool: a session
    # draws people first, then an image of each, without loading the pool.
    subject_key = models.BigIntegerField(default=0)
    subject_rank = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "pool", "image_class", "rank"], name="one_pool_entry_per_rank"),
            models.UniqueConstraint(fields=["bank_image", "study"], name="one_pool_per_image_and_study"),
            models.UniqueConstraint(
                fields=["study", "pool", "image_class", "subject_key", "subject_rank"],
                name="one_pool_entry_per_subject_rank",
            ),
        ]
        verbose_name_plural = "pool entries"

    def __str__(self) -> str:
        return f"{self.pool} {self.image_class} #{self.rank} of {self.study}"


class PoolSubject(models.Model):
    """One person of one class of a study's pool, with how many entries they have: ranked 0…n-1,
    so a session draws people at random by rank (real images: each person is spread evenly)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="pool_subjects", db_index=False)
    pool = models.CharField(max_length=16, choices=PoolEntry.Pool.choices)
    image_class = models.CharField(max_length=16, choices=BankImage.ImageClass.choices)
    rank = models.PositiveIntegerField()
    subject_key = models.BigIntegerField()
    size = models.PositiveIntegerField(help_text="The person's entries in this pool and class.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "pool", "image_class", "rank"], name="one_pool_subject_per_rank")
        ]

    def __str__(self) -> str:
        return f"{self.pool} {self.image_class} subject #{self.rank} of {self.study}"


class QuizImage(models.Model):
    """A bank image of the public quiz pool. The quiz reveals its answers to anyone, so these
    images are kept out of every study's pools: a reader who played the quiz never meets its
    answers again in a study."""

    bank_image = models.OneToOneField("generator.BankImage", on_delete=models.PROTECT, related_name="quiz_entry")
    added_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"quiz image {self.bank_image_id}"
