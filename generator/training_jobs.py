"""Training jobs: create one from a preset, run it on a worker (resuming from its latest
checkpoint in storage), and read back its samples, loss plot, quality metrics and generator."""

import logging
import re
import shutil
from pathlib import Path

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction

from generator.ml.dcgan import BUDGET_FIELDS, PRESETS, TrainingConfig, preset_config
from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import JobCancelled, JobHandle, job_enqueue, job_log
from readerstudy.core.storage import storage_files

from .models import Dataset, TrainingJob, Volume
from .volumes import volume_slice_source

logger = logging.getLogger(__name__)


def preset_budget(preset: str) -> dict[str, float]:
    """The budget a new job's form starts from: the preset's epochs, steps or minutes."""
    return {key: PRESETS[preset][key] for key in BUDGET_FIELDS if key in PRESETS[preset]}


def preset_form_defaults(preset: str) -> dict:
    """What a new job's form shows for a preset: its budget and its options."""
    config = preset_config(preset)
    return {"budget": preset_budget(preset), "discriminator_input_batchnorm": config.discriminator_input_batchnorm}


def training_job_create(
    *,
    dataset: Dataset,
    preset: str = TrainingJob.Preset.MODERN_64,
    user=None,
    epochs: int | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    **options,
) -> TrainingJob:
    """Queue a training run; ``options`` are TrainingConfig fields (batch_size, seed, ...). The
    budget is the preset's unless one of epochs, steps or minutes is given."""
    if not dataset.volumes.filter(status=Volume.Status.READY).exists():
        raise ApplicationError(f"Dataset {dataset} has no aligned volume yet: upload and align volumes first.")
    given = {name: value for name, value in (("epochs", epochs), ("steps", steps), ("minutes", minutes)) if value}
    if len(given) > 1:
        raise ApplicationError(f"Give one budget (epochs, steps or minutes), not {' and '.join(given)}.")
    budget = given
    try:
        config = preset_config(preset, **budget, **{k: v for k, v in options.items() if v is not None})
    except ValueError as error:  # generator.ml checks a configuration; here that is the user's input
        raise ApplicationError(str(error)) from error
    with transaction.atomic():
        job = TrainingJob.objects.create(dataset=dataset, preset=preset, config=config.to_dict(), created_by=user)
        job_enqueue(job=job)
    return job


# --- Checkpoints through Django's storage -----------------------------------------------------


def checkpoints_download(*, job: TrainingJob, local_dir: Path) -> int:
    """Lay the job's stored run folder out locally (a fresh copy); returns the files copied."""
    shutil.rmtree(local_dir, ignore_errors=True)
    local_dir.mkdir(parents=True)
    prefix = f"{job.storage_prefix}/run"
    names = storage_files(prefix)
    for name in names:
        target = local_dir / name[len(prefix) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(name, "rb") as stored, target.open("wb") as out:
            shutil.copyfileobj(stored, out)
    return len(names)


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of the latest checkpoint in a run folder (TensorFlow names them ckpt-<step>)."""
    index = run_dir / "checkpoint"
    if not index.exists():
        return None
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', index.read_text(), flags=re.MULTILINE)
    return int(found.group(1)) if found else None


class CheckpointUploader:
    """Mirrors the local run folder to storage whenever the trainer saved a new checkpoint."""

    def __init__(self, *, job: TrainingJob, local_dir: Path) -> None:
        self.job = job
        self.local_dir = local_dir
        self.prefix = f"{job.storage_prefix}/run"
        self.uploaded: dict[str, tuple[float, int]] = {}
        self.index_mtime: float | None = None
        self.logged_step: int | None = None

    def sync_if_new_checkpoint(self) -> bool:
        index = self.local_dir / "checkpoint"  # rewritten by TensorFlow's CheckpointManager on every save
        mtime = index.stat().st_mtime if index.exists() else None
        if mtime is None or mtime == self.index_mtime:
            return False
        self.sync()
        self.index_mtime = mtime
        return True

    def sync(self) -> dict[str, str]:
        local_names = set()
        for path in sorted(p for p in self.local_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(self.local_dir).as_posix()
            local_names.add(relative)
            stamp = (path.stat().st_mtime, path.stat().st_size)
            if self.uploaded.get(relative) == stamp:
                continue
            name = f"{self.prefix}/{relative}"
            default_storage.delete(name)  # overwrite: storages rename on a clash otherwise
            with path.open("rb") as handle:
                default_storage.save(name, File(handle))
            self.uploaded[relative] = stamp
        for relative in set(self.uploaded) - local_names:  # checkpoints the manager rotated out
            default_storage.delete(f"{self.prefix}/{relative}")
            del self.uploaded[relative]
        step = checkpoint_step(self.local_dir)
        if step != self.logged_step:
            job_log(job=self.job, message=f"checkpoint at step {step} saved to storage")
            self.logged_step = step
        return training_pictures(job=self.job)


def training_pictures(*, job: TrainingJob) -> dict[str, str]:
    """Storage names of the latest sample grid and the loss plot, where they exist yet."""
    names = storage_files(f"{job.storage_prefix}/run/samples")
    samples = sorted(name for name in names if Path(name).name.startswith("samples-"))
    pictures = {}
    if samples:
        pictures["samples"] = samples[-1]
    loss = [name for name in names if name.endswith("loss.png")]
    if loss:
        pictures["loss_plot"] = loss[0]
    return pictures


# --- The work a worker does -------------------------------------------------------------------


def training_job_work(job: TrainingJob, handle: JobHandle) -> None:
    from generator.ml.hardware import device_summary
    from generator.ml.streaming import slice_dataset, steps_per_epoch
    from generator.ml.training import export_generator, train

    config = TrainingConfig.from_dict(job.config)
    volumes = list(job.dataset.volumes.filter(status=Volume.Status.READY))
    if not volumes:
        raise ApplicationError(f"Dataset {job.dataset} has no aligned volume.")
    sources = [volume_slice_source(volume=volume) for volume in volumes]
    dataset = slice_dataset(
        sources,
        matrix_size=config.size,
        fov_mm=job.dataset.fov_mm,
        batch_size=config.batch_size,
        seed=config.seed,
        drop_remainder=True,
    )
    epoch_steps = steps_per_epoch(sources, batch_size=config.batch_size, drop_remainder=True)

    local_dir = Path(settings.TRAINING_WORK_DIR) / str(job.pk)
    if checkpoints_download(job=job, local_dir=local_dir):
        job_log(job=job, message=f"resuming from the stored checkpoint at step {checkpoint_step(local_dir)}")
    uploader = CheckpointUploader(job=job, local_dir=local_dir)
    job_log(job=job, message=f"training on {device_summary(config.mixed_precision)}, budget {job.budget_text}")

    def on_progress(progress) -> None:
        handle.report(
            epoch=progress.epoch,
            step=progress.step,
            total=progress.total_steps,
            d_loss=round(float(progress.d_loss), 4),
            g_loss=round(float(progress.g_loss), 4),
            images_per_s=round(float(progress.images_per_s), 1),
            eta_s=round(float(progress.eta_s)),
            fraction=round(progress.fraction, 4),
            trained_s=round(progress.trained_s, 1),
            budget_s=progress.budget_s,
        )
        if uploader.sync_if_new_checkpoint():
            handle.report(**training_pictures(job=job))

    logged_steps = {point["step"] for point in job.metrics}

    def on_metrics(history: list[dict]) -> None:
        # Straight to the row (progress waits for the next heartbeat), and only while this worker holds the job.
        TrainingJob.objects.filter(pk=job.pk, lease_owner=handle.owner).update(metrics=history)
        latest = history[-1] if history else None
        if latest is not None and latest["step"] not in logged_steps:  # a resume hands over earlier points
            logged_steps.add(latest["step"])
            job_log(
                job=job,
                message=f"quality at step {latest['step']}: SWD×1e3 {latest['swd_mean']}, MS-SSIM synthetic "
                f"{latest['ms_ssim_synthetic']} / real {latest['ms_ssim_real']} ({latest['scales']} scales)",
            )

    result = train(
        config,
        dataset,
        steps_per_epoch=epoch_steps,
        checkpoint_dir=local_dir,
        on_progress=on_progress,
        should_stop=handle.should_stop,
        checkpoint_every_s=settings.TRAINING_CHECKPOINT_EVERY_S,
        on_metrics=on_metrics,
    )
    uploader.sync()
    handle.report(
        step=result.steps_done,
        total=result.total_steps,
        eta_s=0,
        trained_s=round(result.trained_s, 1),
        **({} if result.stopped else {"fraction": 1.0}),
        **training_pictures(job=job),
    )
    if result.stopped:
        raise JobCancelled(f"training job {job.pk} stopped at step {result.steps_done}")
    exported = local_dir.parent / f"{job.pk}-generator.keras"
    export_generator(local_dir, exported)
    with exported.open("rb") as handle_file:
        job.generator_file.save(f"{job.pk}/generator-{job.preset}.keras", File(handle_file), save=False)
    TrainingJob.objects.filter(pk=job.pk).update(generator_file=job.generator_file.name)
    exported.unlink()
    shutil.rmtree(local_dir, ignore_errors=True)  # storage holds the run now
