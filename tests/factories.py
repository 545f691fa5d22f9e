"""Factories for the tests, in one place: users, subjects, datasets, volumes, bank images, studies (with
their pools), readers, sessions and trials; and the volume files the ingest tests write."""

import hashlib
import locale
import secrets
from itertools import count
from pathlib import Path

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from generator.bank import bank_image_store
from generator.models import BankImage, Dataset, Subject, Volume
from readerstudy.core.models import ProbeJob
from readerstudy.core.roles import Role, user_set_role
from readerstudy.reading.models import Reader, ReadingSession, Study, Trial
from readerstudy.reading.pools import study_set_pools
from readerstudy.reading.sessions import session_build

PASSWORD = "correct-horse-battery"
REAL, SYNTHETIC = BankImage.ImageClass.REAL, BankImage.ImageClass.SYNTHETIC


class UserFactory(factory.django.DjangoModelFactory):
    """A user; ``role="readers"`` (or any Role value) puts them in that role's group."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(user, create, extracted, **kwargs):
        user.save()
        if extracted:
            user_set_role(user=user, role=Role(extracted))


class ProbeJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProbeJob

    steps = 5
    step_seconds = 0.0


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"dataset-{n}")
    fov_mm = 180.0


class SubjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subject
        django_get_or_create = ("label",)

    label = factory.Sequence(lambda n: f"person-{n:03d}")


class VolumeFactory(factory.django.DjangoModelFactory):
    """A stored volume row with a small file behind it (not a real scan: for listing, pages and
    foreign keys; ingest and alignment tests write real NIfTI files with ``write_nifti``)."""

    class Meta:
        model = Volume

    dataset = factory.SubFactory(DatasetFactory)
    subject = factory.SubFactory(SubjectFactory)
    source_name = factory.LazyAttribute(lambda volume: f"{volume.subject.label}.nii.gz")
    source_format = "nifti"
    checksum = factory.LazyFunction(lambda: hashlib.sha256(secrets.token_bytes(16)).hexdigest())
    file = factory.LazyAttribute(lambda volume: ContentFile(b"not a scan", name=f"{volume.checksum}.nii.gz"))
    shape = [64, 64, 48]
    voxel_size_mm = [1.0, 1.0, 1.0]


_pixel_seeds = count()


def random_pixels(size: int = 16, *, seed: int | None = None) -> np.ndarray:
    """Pixels in the model's [-1, 1] range, different for every call unless a seed is given."""
    rng = np.random.default_rng(next(_pixel_seeds) if seed is None else seed)
    return rng.uniform(-1, 1, (size, size)).astype(np.float32)


class BankImageFactory(factory.django.DjangoModelFactory):
    """A bank image stored through the one renderer (``bank_image_store``), with pixels of its
    own: ``BankImageFactory(image_class=REAL, matrix_size=32)``. A real one shows a person: its
    volume's subject, the ``subject`` given, or a new subject of its own."""

    class Meta:
        model = BankImage

    image_class = SYNTHETIC
    generator_name = "test"

    @classmethod
    def _create(cls, model_class, *, image_class, matrix_size: int = 16, pixels=None, **provenance):
        if image_class == REAL and "subject" not in provenance:
            volume = provenance.get("volume")
            provenance["subject"] = volume.subject if volume is not None else SubjectFactory()
        return bank_image_store(
            pixels=random_pixels(matrix_size) if pixels is None else pixels, image_class=image_class, **provenance
        )


def bank_images(number: int, image_class: str, *, size: int = 16, **provenance) -> list[BankImage]:
    """``number`` bank images of one class, each with pixels of its own."""
    return BankImageFactory.create_batch(number, image_class=image_class, matrix_size=size, **provenance)


class StudyFactory(factory.django.DjangoModelFactory):
    """A study, small by default (4 main images, 2 of them synthetic, 2 training images), with
    pools filled from new bank images: ``pools=(main_per_class, training_per_class)``;
    ``pools=None`` leaves them empty."""

    class Meta:
        model = Study
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Study {n}")
    images_per_session = 4
    synthetic_min = 2
    synthetic_max = 2
    training_images = 2

    @factory.post_generation
    def pools(study, create, extracted, image_size: int = 16, **kwargs):
        if not create or extracted is None:
            return
        main_per_class, training_per_class = extracted
        study_set_pools(
            study=study,
            main_pool=bank_images(main_per_class, REAL, size=image_size)
            + bank_images(main_per_class, SYNTHETIC, size=image_size),
            training_pool=bank_images(training_per_class, REAL, size=image_size)
            + bank_images(training_per_class, SYNTHETIC, size=image_size),
        )


def researcher_of(*studies: Study, **fields):
    """A researcher assigned to these studies (researchers see only the studies they are assigned to)."""
    user = UserFactory(role=Role.RESEARCHER.value, **fields)
    for study in studies:
        study.researchers.add(user)
    return user


class ReaderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reader

    user = factory.SubFactory(UserFactory, role=Role.READER.value)
    study = factory.SubFactory(StudyFactory, pools=(3, 1))


class ReadingSessionFactory(factory.django.DjangoModelFactory):
    """A reader's session, built as readers get theirs (``session_build``): every trial at once."""

    class Meta:
        model = ReadingSession

    reader = factory.SubFactory(ReaderFactory)
    seed = 0

    @classmethod
    def _create(cls, model_class, *, reader, seed):
        return session_build(reader=reader, seed=seed)


class TrialFactory(factory.django.DjangoModelFactory):
    """A lone trial row (sessions make their own; this is for tests of one trial's fields)."""

    class Meta:
        model = Trial

    session = factory.SubFactory(ReadingSessionFactory)
    phase = Trial.Phase.MAIN
    position = factory.Sequence(lambda n: 1000 + n)
    bank_image = factory.SubFactory(BankImageFactory)
    token = factory.LazyFunction(lambda: secrets.token_urlsafe(32))


# --- Volume files ---------------------------------------------------------------------------


def write_nifti(path, data, voxel_size_mm=(1.0, 1.0, 1.0)):
    """Write a NIfTI file with an axis-aligned RAS affine; returns the path."""
    import nibabel as nib
    import numpy as np

    affine = np.diag([*voxel_size_mm, 1.0])
    shape = [*data.shape, 1, 1][:3]
    affine[:3, 3] = -np.asarray(shape) * np.asarray(voxel_size_mm) / 2
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return path


def write_template_nifti(path, *, shift_mm=(0.0, 0.0, 0.0), resolution_mm: int = 2):
    """The MNI152 template from the nilearn wheel, moved by a known shift: a volume whose
    alignment is known."""
    import nibabel as nib
    import numpy as np
    from nilearn.datasets import load_mni152_template

    template = load_mni152_template(resolution=resolution_mm)
    affine = template.affine.copy()
    affine[:3, 3] += np.asarray(shift_mm)
    nib.save(nib.Nifti1Image(np.asarray(template.dataobj, dtype=np.float32), affine), str(path))
    return path


def aligned_template_volume(tmp_path, *, dataset_name: str = "mni", fov_mm: float = 180.0):
    """A ready volume without running a registration: the MNI template is already in template
    space, so its alignment is the identity."""
    import numpy as np

    from generator.ingest import dataset_get_or_create, volumes_ingest
    from generator.ml.alignment import RigidAlignment
    from generator.models import Volume

    path = write_template_nifti(tmp_path / f"{dataset_name}.nii.gz")
    [result] = volumes_ingest(
        dataset=dataset_get_or_create(name=dataset_name, fov_mm=fov_mm), files=[(path, path.name)]
    )
    volume = result.volume
    import nibabel as nib

    affine = nib.load(str(path)).affine
    volume.alignment = RigidAlignment(np.eye(4), affine, final_metric=0.0, iterations=0, seconds=0.0).to_json()
    volume.status = Volume.Status.READY
    volume.save()
    return volume


PATIENT_TAGS = {
    "0010|0010": "DOE^JANE",  # patient name
    "0010|0020": "PID-314159",  # patient ID
    "0010|0030": "19600101",  # birth date
    "0008|0020": "20240102",  # study date
    "0008|0080": "St Elsewhere Hospital",  # institution
}
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # rows run to the patient's left, columns to posterior


def write_dicom_series(
    folder: Path,
    array_xyz: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (4.0, 3.0, 5.0),
    origin_lps: tuple[float, float, float] = (-100.0, -120.0, -60.0),
    orientation: tuple[float, ...] = AXIAL,
    series_uid: str = "1.2.826.0.1.3680043.2.1125.7.1",
    series_number: int = 3,
    description: str = "T1 MPRAGE",
    positions: list[int] | None = None,
    patient: dict[str, str] | None = None,
) -> Path:
    """One file per slice, with patient tags, written by SimpleITK; slice k lies k·spacing[2] along the normal."""
    import SimpleITK as sitk  # only the tests that write DICOM pay for it

    folder.mkdir(parents=True, exist_ok=True)
    normal = np.cross(orientation[:3], orientation[3:])
    saved_locale = locale.setlocale(locale.LC_ALL)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    slice_positions = positions if positions is not None else list(range(array_xyz.shape[2]))
    for number, k in enumerate(slice_positions):
        image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz[:, :, number % array_xyz.shape[2]].T))
        image.SetSpacing(spacing[:2])
        position = np.asarray(origin_lps) + k * spacing[2] * normal
        tags = {
            **PATIENT_TAGS,
            **(patient or {}),
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.7",
            "0020|000e": series_uid,
            "0020|0011": str(series_number),
            "0008|103e": description,
            "0020|0037": "\\".join(f"{v:g}" for v in orientation),
            "0020|0032": "\\".join(f"{v:.4f}" for v in position),
            "0020|0013": str(number + 1),
            "0008|0018": f"{series_uid}.{number + 1}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{series_number:02d}{number:04d}.dcm"))
        writer.Execute(image)
    # GDCM's DICOM writer leaves the process in the C locale (text then decodes as ASCII in every
    # later test of the run); put back what the process had. Our code only reads DICOM.
    locale.setlocale(locale.LC_ALL, saved_locale)
    return folder
