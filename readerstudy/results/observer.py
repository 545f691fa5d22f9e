"""The machine observer's services: queue one for a study, and the work it does (a Celery task
on the gpu queue runs ``machine_observer_work`` under a job lease).

Images come from the study's pools (main and training) as rendered for readers, decoded back to
[−1, 1] by the renderer's fixed mapping. Groups keep the split held out (DESIGN.md, "Subjects are
people; held out means another person"): a real image's group is its subject, so two scans of one
person never fall on both sides; synthetic images are independent draws, one group each (ours:
training job and latent seed; an imported one: its file), so one external generator suffices.
The images the readers saw are put on the test side as far as the split allows."""

import io

import numpy as np
from django.db import transaction
from PIL import Image

from generator.models import BankImage
from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import JobHandle, JobState, job_enqueue
from readerstudy.reading.models import PoolEntry, Study, Trial

from .models import MachineObserverJob

# Latent seeds are independent draws, so each seed of a job is a group of its own; raise the block
# to group neighbouring seeds if a bank was filled from correlated ones.
SEED_BLOCK = 1


def machine_observer_create(*, study: Study, seed: int = 0, epochs: int = 8) -> MachineObserverJob:
    if not PoolEntry.objects.filter(study=study).exists():
        raise ApplicationError(f"{study} has no pools yet: set them first.")
    with transaction.atomic():
        job = MachineObserverJob.objects.create(study=study, seed=seed, epochs=epochs)
        job_enqueue(job=job)
    return job


def image_group(image: BankImage) -> str:
    """The unit an image is held out with: a person for real images, one draw for synthetic ones."""
    if image.image_class == BankImage.ImageClass.REAL:
        if image.subject_id is not None:
            return f"subject:{image.subject_id}"
        # A real image without a subject (none can be stored since subjects exist): its volume, or its file.
        return f"volume:{image.volume_id}" if image.volume_id is not None else f"real-file:{image.pk}"
    if image.training_job_id is not None:
        return f"job:{image.training_job_id}:seeds:{(image.latent_seed or 0) // SEED_BLOCK}"
    return f"file:{image.external_checksum or image.pk}"


def _pixels(image: BankImage) -> np.ndarray:
    with image.file.open("rb") as stored:
        values = np.asarray(Image.open(io.BytesIO(stored.read())).convert("L"), dtype=np.float32)
    return values / 127.5 - 1.0  # the inverse of the renderer's one fixed mapping


def machine_observer_work(job: MachineObserverJob, handle: JobHandle) -> None:
    from generator.ml.observer import run_observer

    images = list(
        BankImage.objects.filter(pool_entries__study=job.study, status=BankImage.Status.ACTIVE).order_by("pk")
    )
    seen = set(Trial.objects.filter(session__reader__study=job.study).values_list("bank_image_id", flat=True))
    handle.report(step=0, total=job.epochs, stage="loading images")
    pixels = np.stack([_pixels(image) for image in images])

    def progress(epoch: int, epochs: int, logs: dict) -> None:
        handle.checkpoint()
        handle.report(step=epoch, total=epochs, stage="training", loss=float(logs.get("loss", 0.0)))

    result = run_observer(
        pixels,
        [image.image_class for image in images],
        [image_group(image) for image in images],
        seed=job.seed,
        epochs=job.epochs,
        batch_size=job.batch_size,
        must_test={index for index, image in enumerate(images) if image.pk in seen},
        progress=progress,
    )
    job.result = result.to_json() | {"test_bank_images": [images[i].pk for i in result.test_indices]}
    job.save(update_fields=["result"])


def machine_observer_latest(*, study: Study) -> MachineObserverJob | None:
    return study.observer_jobs.filter(state=JobState.SUCCEEDED).order_by("-finished_at", "-pk").first()
