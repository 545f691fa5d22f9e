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
