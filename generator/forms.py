"""Forms of the generator app."""

from django import forms


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
    files = MultipleFileField(
        help_text="NIfTI (.nii, .nii.gz) files, or one .zip per DICOM series. Several at once are fine."
    )


class TrainingJobForm(forms.Form):
    """The "New training job" form; the budget starts at the chosen preset's."""

    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)
    preset = forms.ChoiceField()
    budget = forms.IntegerField(min_value=1, help_text="How long to train, in the unit beside it.")
    budget_unit = forms.ChoiceField(choices=[("steps", "steps"), ("epochs", "epochs over the whole grid")])
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
        from .models import Dataset, TrainingJob
        from .training_jobs import preset_form_defaults

        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.filter(volumes__status="ready").distinct().order_by("name")
        self.fields["preset"].choices = TrainingJob.Preset.choices
        self.fields["preset"].initial = TrainingJob.Preset.QUICK_64
        defaults = preset_form_defaults(TrainingJob.Preset.QUICK_64)
        unit, amount = next(iter(defaults["budget"].items()))
        self.fields["budget"].initial = amount
        self.fields["budget_unit"].initial = unit
        self.fields["discriminator_input_batchnorm"].initial = defaults["discriminator_input_batchnorm"]

    def service_arguments(self) -> dict:
        data = dict(self.cleaned_data)
        data[data.pop("budget_unit")] = data.pop("budget")
        return data
