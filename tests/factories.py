"""Factories for the tests, in one place."""

import factory
from django.contrib.auth import get_user_model

from readerstudy.core.models import ProbeJob
from readerstudy.core.roles import Role, user_set_role

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
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
