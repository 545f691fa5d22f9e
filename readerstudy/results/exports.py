"""Exports of a study's results: the CSV renderer (the API's, used by the command as well) and
the audit bundle another group can re-run the analysis from."""

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

from rest_framework.renderers import BaseRenderer

from generator.models import BankFillJob, BankImage, TrainingJob, VolumeCorrection
from readerstudy.core.provenance import code_version, installed_packages
from readerstudy.reading.models import ReadingSession, Study
from readerstudy.reading.viewing import session_viewing

from .scoring import CALLS_COLUMNS, TABLE_COLUMNS, calls_rows, imrmc_text, study_ended_trials, study_table_rows


class CSVRenderer(BaseRenderer):
    """Lists of flat rows as CSV; the columns come from the view (``csv_columns``) so an empty
    table still has its header. None is written as an empty cell."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        view = (renderer_context or {}).get("view")
        if isinstance(data, dict):  # an error: say it plainly
            return "".join(f"{key}: {value}\n" for key, value in data.items()).encode()
        columns = getattr(view, "csv_columns", None) or (list(data[0]) if data else [])
        return rows_to_csv(data, columns).encode()


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A value as a CSV cell: None empty; text that a spreadsheet would run as a formula (a
    reader's reason typed as ``=HYPERLINK(…)``) with a leading ``'``; numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def rows_to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return out.getvalue()


class PlainTextRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "imrmc"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return (data if isinstance(data, str) else json.dumps(data)).encode()


class ZipRenderer(BaseRenderer):
    media_type = "application/zip"
    format = "zip"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data if isinstance(data, bytes) else json.dumps(data).encode()


def table_csv(*, study: Study) -> str:
    return rows_to_csv(study_table_rows(study=study), TABLE_COLUMNS)


def calls_csv(*, study: Study) -> str:
    return rows_to_csv(calls_rows(study=study), CALLS_COLUMNS)


def _study_settings(study: Study) -> dict:
    fields = ["name", "state", "instructions", "consent_text", *Study.EVIDENCE_FIELDS, "show_score_after"]
    return {name: getattr(study, name) for name in fields} | {
        "id": study.pk,
        "created_at": study.created_at.isoformat(),
    }


def _sessions(study: Study, ended: set[tuple[int, int]]) -> list[dict]:
    """Every session's seed and orders, the orders cut to the images of ended trials (an open
    study's bundle must not list what a reader has still to see)."""
    sessions = ReadingSession.objects.filter(reader__study=study).select_related("reader__user").order_by("pk")
    return [
        {
            "reader": session.reader.user.get_username(),
            "role": session.reader.role,
            "simulated": session.reader.simulated,
            "seed": session.seed,
            "synthetic_count": session.synthetic_count,
            "max_images_per_subject": session.max_images_per_subject,
            "training_order": [image for image in session.training_order if (session.pk, image) in ended],
            "main_order": [image for image in session.main_order if (session.pk, image) in ended],
            "images_not_yet_ended": sum(
                (session.pk, image) not in ended for image in session.training_order + session.main_order
            ),
            "created_at": session.created_at.isoformat(),
            "finished_at": session.finished_at.isoformat() if session.finished_at else None,
            "viewing_conditions": session_viewing(session)
            | {"recorded_at": session.viewing_recorded_at.isoformat() if session.viewing_recorded_at else None},
        }
        for session in sessions
    ]


MANIFEST_COLUMNS = [
    "id", "image_class", "status", "exclusion_reason", "matrix_size", "pixel_checksum", "subject", "volume",
    "grid_index",
    "training_job", "latent_seed", "generator_name", "external_checksum", "fill_job",
]  # fmt: skip


def _manifest_row(image: BankImage) -> dict:
    row = {column: getattr(image, column, None) for column in MANIFEST_COLUMNS}
    return row | {
        "subject": image.subject.label if image.subject_id else "",
        "volume": image.volume_id,
        "training_job": image.training_job_id,
        "fill_job": image.fill_job_id,
    }


def _used_images(study: Study):
    """The bank images of the study's ended trials."""
    ended = study_ended_trials(study=study)
    return BankImage.objects.filter(pk__in=ended.values("bank_image")).order_by("pk")


def _file_sha256(field) -> str:
    digest = hashlib.sha256()
    with field.open("rb") as stored:
        for block in iter(lambda: stored.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _generators(images) -> list[dict]:
    jobs = TrainingJob.objects.filter(pk__in=images.exclude(training_job=None).values("training_job")).order_by("pk")
    return [
        {
            "training_job": job.pk,
            "preset": job.preset,
            "config": job.config,
            "generator_file": job.generator_file.name or None,
            "generator_sha256": _file_sha256(job.generator_file) if job.generator_file else None,
            "diversity": job.diversity,
        }
        for job in jobs
    ]


def _audit_log(images) -> list[dict]:
    """Admin decisions that shaped the evidence: alignment fixes of the volumes the real images
    came from, bank fills from a generator judged collapsed, and exclusions from the bank."""
    volumes = images.exclude(volume=None).values("volume")
    log = [
        {"what": "alignment correction", "volume": c.volume_id, "by": str(c.user or ""), "at": c.at.isoformat(),
         "before": c.before, "after": c.after}
        for c in VolumeCorrection.objects.filter(volume__in=volumes).select_related("user").order_by("at")
    ]  # fmt: skip
    overridden = BankFillJob.objects.filter(pk__in=images.exclude(fill_job=None).values("fill_job")).exclude(
        collapse_override_at=None
    )
    log += [
        {"what": "bank filled from a collapsed generator", "bank_fill": fill.pk, "training_job": fill.training_job_id,
         "by": str(fill.collapse_override_by or "the command line"), "at": fill.collapse_override_at.isoformat(),
         "reason": fill.collapse_override_reason, "diversity": fill.diversity}
        for fill in overridden.select_related("collapse_override_by").order_by("collapse_override_at")
    ]  # fmt: skip
    log += [
        {"what": "excluded from the bank", "bank_image": image.pk, "reason": image.exclusion_reason}
        for image in images.filter(status=BankImage.Status.EXCLUDED)
    ]
    return log


def study_bundle(*, study: Study) -> bytes:
    """A zip that lets another group audit or re-run the analysis (see README, "Exports")."""
    images = _used_images(study)
    ended = set(study_ended_trials(study=study).values_list("session_id", "bank_image_id"))
    manifest = [_manifest_row(image) for image in images.select_related("subject")]
    files = {
        "README.txt": BUNDLE_README.format(study=study.name),
        "study.json": json.dumps(_study_settings(study), indent=2),
        "sessions.json": json.dumps(_sessions(study, ended), indent=2),
        "bank_manifest.csv": rows_to_csv(manifest, MANIFEST_COLUMNS),
        "generators.json": json.dumps(_generators(images), indent=2),
        "code_version.txt": code_version() + "\n",
        "packages.txt": installed_packages(),
        "audit_log.json": json.dumps(_audit_log(images), indent=2),
        "table.csv": table_csv(study=study),
        "calls.csv": calls_csv(study=study),
        "study.imrmc": imrmc_text(study=study),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in files.items():
            bundle.writestr(f"{Path(safe_filename(study.name))}/{name}", text)
    return out.getvalue()


def safe_filename(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip("-") or "study"


BUNDLE_README = """SynthRead audit bundle of the study "{study}".

study.json         the study's settings (the protocol as run)
sessions.json      every reader's session: seed, training and main order (bank image ids), viewing conditions
bank_manifest.csv  every bank image a reader saw: class, provenance, pixel checksum, status
generators.json    the training jobs behind the synthetic images: configuration, sha256, collapse verdict
code_version.txt   the SynthRead git commit that produced this bundle
packages.txt       the Python, the platform and every installed distribution (name==version) that produced it
audit_log.json     admin decisions: alignment fixes of source volumes, fills from a collapsed generator, exclusions
table.csv          one row per reader and per group (columns documented in SynthRead's README)
calls.csv          one row per trial, with how its image was on screen (scale factor k, full screen)
study.imrmc        the main-phase calls in iMRMC's input format
"""
