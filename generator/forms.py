"""Forms of the generator app."""

from django import forms

from .models import BankImage


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented pattern)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None) -> list:
        single_file_clean = super().clean
        if isinstance(data, list | tuple):
            return [single_file_clean(item, initial) for item in data]
        return [single_file_clean(data, initial)]


class VolumeUploadForm(forms.Form):
    dataset_name = forms.SlugField(
        max_length=100, help_text="An existing dataset, or a new one to create (letters, digits, - and _)."
    )
    fov_mm = forms.FloatField(
        required=False,
        min_value=60,
        max_value=400,
        label="Field of view (mm)",
        help_text="For a new dataset: side of the square slice frame (default 180 mm).",
    )
    subject = forms.CharField(
        max_length=64,
        required=False,
        help_text="The person these scans are of (a pseudonymous label, e.g. sub-017), if you know it. "
        "Blank: DICOM series of one patient are linked by a keyed hash of their patient ID, and any "
        "other file becomes a new subject.",
    )
    files = MultipleFileField(
        help_text="NIfTI (.nii, .nii.gz) files, or one .zip per DICOM series. Several at once are fine."
    )


class TrainingJobForm(forms.Form):
    """The "New training job" form; the budget starts at the chosen preset's."""

    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)
    preset = forms.ChoiceField()
    budget = forms.FloatField(
        min_value=0.01,
        help_text="How long to train, in the unit beside it. Minutes hold on any machine; a resumed job "
        "gets the time it had left.",
    )
    budget_unit = forms.ChoiceField(
        choices=[("minutes", "minutes of training"), ("steps", "steps"), ("epochs", "epochs over the whole grid")]
    )
    batch_size = forms.IntegerField(min_value=1, max_value=1024, initial=64)
    seed = forms.IntegerField(min_value=0, initial=0)
    generator_steps_per_discriminator_step = forms.TypedChoiceField(
        choices=[(1, "1"), (2, "2 (the TF1 DCGAN)")], coerce=int, initial=1, label="Generator steps per D step"
    )
    label_smoothing = forms.FloatField(min_value=0.0, max_value=0.5, initial=0.0, help_text="One-sided (real labels).")
    discriminator_input_batchnorm = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Off: Radford's variant, no batch norm on the discriminator's input layer.",
    )
    mixed_precision = forms.ChoiceField(
        choices=[("auto", "auto (bf16 where the hardware is fast)"), ("on", "on"), ("off", "off (float32)")]
    )

    def __init__(self, *args, **kwargs) -> None:
        from .models import Dataset, TrainingJob, Volume
        from .training_jobs import preset_form_defaults

        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = (
            Dataset.objects.filter(volumes__status=Volume.Status.READY).distinct().order_by("name")
        )
        self.fields["preset"].choices = TrainingJob.Preset.choices
        self.fields["preset"].initial = TrainingJob.Preset.MODERN_64
        defaults = preset_form_defaults(TrainingJob.Preset.MODERN_64)
        unit, amount = next(iter(defaults["budget"].items()))
        self.fields["budget"].initial = amount
        self.fields["budget_unit"].initial = unit
        self.fields["discriminator_input_batchnorm"].initial = defaults["discriminator_input_batchnorm"]

    def clean(self) -> dict:
        cleaned = super().clean()
        budget, unit = cleaned.get("budget"), cleaned.get("budget_unit")
        if budget is not None and unit in ("steps", "epochs"):
            if budget != int(budget) or budget < 1:
                self.add_error("budget", f"A budget in {unit} is a whole number, at least 1.")
            else:
                cleaned["budget"] = int(budget)
        return cleaned

    def service_arguments(self) -> dict:
        data = dict(self.cleaned_data)
        data[data.pop("budget_unit")] = data.pop("budget")
        return data


class BankFillForm(forms.Form):
    synthetic_count = forms.IntegerField(min_value=1, max_value=100_000, initial=200, label="Synthetic images")
    real_count = forms.IntegerField(
        min_value=0, max_value=100_000, required=False, label="Real images", help_text="Default: as many as synthetic."
    )
    held_out_dataset = forms.ModelChoiceField(
        queryset=None,
        required=False,
        help_text="Other subjects, never trained on: they set the screen's threshold and the data-copying statistic.",
    )
    seed = forms.IntegerField(min_value=0, initial=0)
    collapse_override_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason to fill from a collapsed generator",
        help_text="Only for a generator judged collapsed; kept with the fill, your name and the time, and "
        "listed in the audit bundle.",
    )

    def __init__(self, *args, **kwargs) -> None:
        from .models import Dataset

        super().__init__(*args, **kwargs)
        self.fields["held_out_dataset"].queryset = Dataset.objects.order_by("name")


class ImageImportForm(forms.Form):
    generator_name = forms.CharField(
        max_length=100, help_text="The generator that made them, or the real images' source."
    )
    image_class = forms.ChoiceField(
        choices=[(choice, choice) for choice in (BankImage.ImageClass.SYNTHETIC, BankImage.ImageClass.REAL)],
        label="Class",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    expected_size = forms.IntegerField(
        required=False,
        min_value=8,
        max_value=1024,
        label="Matrix size",
        help_text="Refuse images of any other size (optional).",
    )
    subject = forms.CharField(
        max_length=64,
        required=False,
        help_text="Real images: the person they show (one label for all files), unless a manifest is given.",
    )
    manifest = forms.FileField(
        required=False,
        help_text="Real images of several people: a CSV with columns file,subject (file names as uploaded).",
    )
    files = MultipleFileField(help_text="PNG/TIFF (8- or 16-bit), .npy or 2D NIfTI; several at once.")
