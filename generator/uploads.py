"""Volume uploads ingested on a worker, so a web request never decodes a volume.

An upload (the page, the API, ``ingest_volumes --queue``) stores its files at once in private
storage under ``uploads/<job>/`` (never served; on S3 any worker reads them) and answers with an
``UploadJob``; a worker on the `default` queue copies each file to its own folder, ingests it as
``ingest.volume_ingest_one`` always has (same checks, same verdicts), and deletes the stored copy.
Raw uploads carry patient names, so nothing of one outlives its job: the job's end removes what is
left, and a worker starting up removes the leftovers of jobs that died without ending
(``uploads_leftovers_remove``).
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import FINISHED_STATES, JobHandle, JobState, LeaseLost, job_enqueue, job_log
from readerstudy.core.storage import storage_delete_prefix

from .ingest import IngestResult, volume_ingest_one
from .models import Dataset, UploadJob

logger = logging.getLogger(__name__)


def _stored_name(job: UploadJob, index: int, original_name: str) -> str:
    """Our own name for an uploaded file (an uploaded name is never a path): only its suffixes kept."""
    suffixes = "".join(Path(original_name).suffixes[-2:]).lower()
    return f"{job.storage_prefix}/upload-{index}{suffixes}"


def upload_job_create(
    *,
    dataset: Dataset,
    uploads: Iterable,
    align: bool = True,
    subject_label: str = "",
    user=None,
) -> UploadJob:
    """Store uploaded files (Django ``UploadedFile``s, or ``File``s with a name) and queue their
    ingest; returns the job at once. A file over ``VOLUME_MAX_UPLOAD_BYTES`` is not stored: its
    verdict (refused) is known now and comes with the others'; a bad file never costs the rest."""
    uploads = list(uploads)
    if not uploads:
        raise ApplicationError("Choose at least one file to upload.")
    limit = settings.VOLUME_MAX_UPLOAD_BYTES
    # Marked sent already (queued_at), so the periodic check does not send it while its files are
    # still being stored; job_enqueue below sends it. One that never gets there (the web process
    # died mid-upload) keeps an empty file list: uploads_leftovers_remove ends it.
    job = UploadJob.objects.create(
        dataset=dataset, align=align, subject_label=subject_label, created_by=user, queued_at=timezone.now()
    )
    files = []
    try:
        for index, upload in enumerate(uploads):
            original = Path(upload.name).name
            if upload.size is not None and upload.size > limit:
                refusal = (
                    f"{original} is {upload.size / 1e6:.1f} MB, over the upload limit of {limit / 1e6:.1f} MB "
                    "(VOLUME_MAX_UPLOAD_BYTES). Upload one T1-weighted series, or ask the admin to raise the limit."
                )
                files.append({"name": original, "stored": None, "bytes": upload.size, "refused": refusal})
                continue
            name = _stored_name(job, index, original)
            default_storage.delete(name)
            stored = default_storage.save(name, upload)
            files.append({"name": original, "stored": stored, "bytes": upload.size})
    except BaseException:
        storage_delete_prefix(job.storage_prefix)
        job.delete()
        raise
    job.files = files
    job.progress = {"step": 0, "total": len(files)}
    job.save(update_fields=["files", "progress"])
    with transaction.atomic():
        job_enqueue(job=job)
    return job


def upload_job_create_from_paths(
    *, dataset: Dataset, paths: Iterable[Path], align: bool = True, subject_label: str = "", user=None
) -> UploadJob:
    """``upload_job_create`` for files on this machine (the command's ``--queue``); a DICOM folder
    travels as a zip of itself, which the ingest reads as it reads an uploaded zip."""
    opened = []
    scratch = Path(settings.FILE_UPLOAD_TEMP_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    zipped = []
    try:
        for path in map(Path, paths):
            if path.is_dir():
                archive = scratch / f"{path.name}-{len(zipped)}.zip"
                with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
                    for member in sorted(p for p in path.rglob("*") if p.is_file()):
                        out.write(member, member.relative_to(path).as_posix())
                zipped.append(archive)
                handle, name = archive.open("rb"), f"{path.name}.zip"
            else:
                handle, name = path.open("rb"), path.name
            opened.append(File(handle, name=name))
        return upload_job_create(dataset=dataset, uploads=opened, align=align, subject_label=subject_label, user=user)
    finally:
        for file in opened:
            file.close()
        for archive in zipped:
            archive.unlink(missing_ok=True)


def _work_dir(job: UploadJob) -> Path:
    return Path(settings.UPLOAD_WORK_DIR) / str(job.pk)


def upload_job_work(job: UploadJob, handle: JobHandle) -> None:
    """Ingest the job's files one by one (a resumed job skips those with a verdict already);
    each verdict is kept on the job as soon as it is known, its stored copy deleted."""
    from .volumes import alignment_job_create  # volumes imports the ML stack; keep this module light

    work_dir = _work_dir(job)
    shutil.rmtree(work_dir, ignore_errors=True)  # a killed attempt's copies
    work_dir.mkdir(parents=True)
    results = list(job.results)
    lease_lost = False
    try:
        for index, entry in enumerate(job.files):
            if index < len(results):
                continue
            handle.checkpoint()
            result = _ingest_entry(job, entry, work_dir)
            results.append(_result_row(result))
            UploadJob.objects.filter(pk=job.pk).update(results=results)
            handle.report(step=index + 1, total=len(job.files), stored=sum(r["outcome"] == "stored" for r in results))
            if job.align and result.outcome == "stored":
                alignment_job_create(volume=result.volume)
        job_log(job=job, message=_summary(results))
    except LeaseLost:
        lease_lost = True  # another worker owns the job now: its files are that worker's
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        if not lease_lost:  # ended (done, cancelled, failed): nothing raw stays
            storage_delete_prefix(job.storage_prefix)
            UploadJob.objects.filter(pk=job.pk).update(raw_removed=True)


def _ingest_entry(job: UploadJob, entry: dict, work_dir: Path) -> IngestResult:
    """One uploaded file: copied here from storage, ingested, both copies deleted."""
    if entry["stored"] is None:
        return IngestResult(entry["name"], "error", entry["refused"])
    local = work_dir / Path(entry["stored"]).name
    with default_storage.open(entry["stored"], "rb") as stored, local.open("wb") as out:
        shutil.copyfileobj(stored, out)
    result = volume_ingest_one(
        dataset=job.dataset, path=local, source_name=entry["name"], subject_label=job.subject_label or None
    )
    local.unlink()
    default_storage.delete(entry["stored"])
    return result


def _result_row(result: IngestResult) -> dict:
    return {
        "name": result.name,
        "outcome": result.outcome,
        "message": result.message,
        "volume": result.volume.pk if result.volume is not None else None,
    }


def _summary(results: list[dict]) -> str:
    counts = {outcome: sum(r["outcome"] == outcome for r in results) for outcome in ("stored", "duplicate", "error")}
    return f"{counts['stored']} stored, {counts['duplicate']} already present, {counts['error']} refused"


UNFINISHED_UPLOAD_AFTER = timedelta(hours=1)


def uploads_leftovers_remove() -> int:
    """What raw uploads of ended jobs left behind (a worker killed mid-ingest, its job failed or
    cancelled since): their stored copies and this machine's working copies; and uploads whose
    web process died while storing them (no file list an hour on), which end here as failed.
    Returns the files removed. Runs when a worker starts."""
    UploadJob.objects.filter(
        state=JobState.QUEUED, attempts=0, files=[], created_at__lt=timezone.now() - UNFINISHED_UPLOAD_AFTER
    ).update(
        state=JobState.FAILED,
        finished_at=timezone.now(),
        error="The upload never finished: the web process stopped while storing its files.",
    )
    removed = 0
    for job in UploadJob.objects.filter(state__in=FINISHED_STATES, raw_removed=False).only("pk"):
        removed += storage_delete_prefix(job.storage_prefix)
        UploadJob.objects.filter(pk=job.pk).update(raw_removed=True)
    work_root = Path(settings.UPLOAD_WORK_DIR)
    if work_root.is_dir():
        live = {str(pk) for pk in UploadJob.objects.exclude(state__in=FINISHED_STATES).values_list("pk", flat=True)}
        for folder in work_root.iterdir():
            if folder.name not in live:
                removed += sum(1 for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder, ignore_errors=True)
    if removed:
        logger.info("Removed %d file(s) left by ended uploads", removed)
    return removed
