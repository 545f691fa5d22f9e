"""The demo pipeline `make demo` runs once the worker is up: demo pseudo-subjects made from the
MNI152 template in the nilearn wheel (cached in var/), ingested and aligned, a modern-64 DCGAN
trained on some of them, the bank filled (its memorisation screen holding the others out), a demo
study with its readers (one simulated reader already finished, so results show numbers at once),
and the machine observer run on it.

Every step reuses what an earlier run left, so a second `make demo` is serving in seconds. Jobs
run on the real worker; each is followed with a progress bar."""

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from tqdm import tqdm

from generator.bank_fill import bank_fill_create
from generator.ingest import dataset_get_or_create, volumes_ingest
from generator.models import BankFillJob, BankImage, Dataset, Subject, TrainingJob, Volume
from generator.subjects import pseudo_subject_files, subject_get_or_create
from generator.training_jobs import training_job_create
from generator.volumes import alignment_job_create
from readerstudy.core.accounts import account_ensure
from readerstudy.core.jobs import FINISHED_STATES, JobState
from readerstudy.core.roles import Role
from readerstudy.reading.models import Reader, ReadingSession, Study
from readerstudy.reading.pools import study_pools_from_bank
from readerstudy.reading.quiz import QUIZ_SIZE, quiz_pool_counts, quiz_pool_fill
from readerstudy.reading.readers import reader_add
from readerstudy.reading.sessions import session_build, study_open
from readerstudy.reading.studies import researchers_assignable, study_create
from readerstudy.reading.trials import call_record, trial_current, trial_serve
from readerstudy.results.observer import machine_observer_create, machine_observer_latest

DATASET = "demo-mni152"
HELD_OUT_DATASET = "demo-mni152-held-out"
PSEUDO_SUBJECT_NOTE = (
    "Demo pseudo-subject, not a person: the MNI152 2009 T1 template (nilearn) with a random head size, "
    "ventricle size, smooth deformation, bias field, noise and pose (generator/ml/pseudo_subjects.py, seed {seed})."
)
STUDY = "Demo study"
DEMO_COLLAPSE_REASON = (
    "The demo: a few minutes of training on a CPU, to show the pipeline; its images are not evidence."
)
SIMULATED_READER = "demo-simulated"
# (username, password, study role, years of experience): the readers a newcomer can log in as.
DEMO_READERS = (
    ("demo-reader", "synthread-reader", Reader.Role.NEURORADIOLOGIST, 15),
    ("demo-body-radiologist", "synthread-body", Reader.Role.RADIOLOGIST, 10),
    ("demo-resident", "synthread-resident", Reader.Role.RESIDENT, 4),
)


@dataclass(frozen=True)
class DemoSizes:
    """How big the demo is: the paper's session on a bank of 200 + 200; `tiny` for tests."""

    training_steps: int | None = None  # None: train for training_minutes
    # modern-64's three minutes, so the demo serves within ten minutes of `make demo` on the
    # slow 2-core kind too (install 3–4 min, migrate 1, 14 alignments 1–2, the bank and observer 0.5).
    # There they buy an estimated 430–750 steps; modern-64 was diverse from about 300 (README).
    training_minutes: float = 3.0
    # Pseudo-subjects the generator trains on (their slices are the study's real images: the quiz
    # and the training pool take a person or two, the main pool the rest, spread over a session)
    # and ones only the memorisation screen sees, as held-out people.
    training_subjects: int = 12
    held_out_subjects: int = 2
    bank_per_class: int = 200
    images_per_session: int = 50
    synthetic_min: int = 20
    synthetic_max: int = 30
    training_images: int = 10

    @classmethod
    def tiny(cls) -> "DemoSizes":
        return cls(
            training_steps=30,
            training_subjects=6,
            bank_per_class=24,
            images_per_session=8,
            synthetic_min=3,
            synthetic_max=5,
            training_images=2,
        )


Follow = Callable[..., object]  # readerstudy.core.follow.job_follow


def _pending(jobs):
    return jobs.exclude(state__in=FINISHED_STATES).order_by("-pk").first()


def demo_subject_files(*, count: int) -> list[Path]:
    """The pseudo-subjects' NIfTI files, made once and cached in var/ (seconds each)."""
    with tqdm(total=count, desc="making demo pseudo-subjects", unit="subject", file=sys.stderr) as bar:
        paths = pseudo_subject_files(count=count, on_written=lambda *_: bar.update(1))
        bar.update(count - bar.n)  # the cached ones
    return paths


def demo_volumes(*, sizes: DemoSizes, follow: Follow) -> tuple[Dataset, Dataset]:
    """The training and the held-out dataset of pseudo-subjects, every volume aligned."""
    training, held_out = dataset_get_or_create(name=DATASET), dataset_get_or_create(name=HELD_OUT_DATASET)
    paths = demo_subject_files(count=sizes.training_subjects + sizes.held_out_subjects)
    for index, path in enumerate(paths):
        label = f"demo-pseudo-{index + 1:02d}"
        if Volume.objects.filter(subject__label=label).exists():
            continue
        subject_get_or_create(label=label, kind=Subject.Kind.DEMO_PSEUDO, note=PSEUDO_SUBJECT_NOTE.format(seed=index))
        dataset = training if index < sizes.training_subjects else held_out
        [result] = volumes_ingest(dataset=dataset, files=[(path, path.name)], subject_labels={path.name: label})
        if result.outcome == "error":
            raise RuntimeError(f"Could not ingest the demo pseudo-subject {label}: {result.message}")
    waiting = Volume.objects.filter(dataset__in=[training, held_out]).exclude(status=Volume.Status.READY)
    jobs = [_pending(volume.alignment_jobs.all()) or alignment_job_create(volume=volume) for volume in waiting]
    for number, job in enumerate(jobs, start=1):  # all queued at once: the worker never waits for us
        follow(job, label=f"aligning pseudo-subject {number} of {len(jobs)}", unit="step")
    return training, held_out


def demo_training_job(*, dataset: Dataset, sizes: DemoSizes, follow: Follow) -> TrainingJob:
    jobs = TrainingJob.objects.filter(dataset=dataset)
    done = jobs.filter(state=JobState.SUCCEEDED).exclude(generator_file="").order_by("-pk").first()
    if done:
        return done
    budget = {"steps": sizes.training_steps} if sizes.training_steps else {"minutes": sizes.training_minutes}
    job = _pending(jobs) or training_job_create(dataset=dataset, preset=TrainingJob.Preset.MODERN_64, seed=0, **budget)
    return follow(job, label="training the modern-64 DCGAN", unit="step")


def demo_bank(*, training_job: TrainingJob, held_out: Dataset, sizes: DemoSizes, follow: Follow) -> None:
    have = BankImage.objects.filter(image_class=BankImage.ImageClass.SYNTHETIC, training_job=training_job).count()
    if have >= sizes.bank_per_class:
        return
    fills = BankFillJob.objects.filter(training_job=training_job)
    job = _pending(fills) or bank_fill_create(
        training_job=training_job,
        synthetic_count=sizes.bank_per_class,
        held_out_dataset=held_out,
        seed=0,
        # A generator judged collapsed (the tiny demo's 30 steps) still fills the demo's bank, on the
        # record; the reason is kept only when it was needed.
        collapse_override_reason=DEMO_COLLAPSE_REASON,
    )
    follow(job, label="filling the bank (screened)", unit="image")


def demo_study(*, sizes: DemoSizes) -> Study:
    """The demo study, its quiz, its readers, and a simulated reader who has finished."""
    study = Study.objects.filter(name=STUDY).first()
    if study is None:
        if sum(quiz_pool_counts().values()) < QUIZ_SIZE:
            quiz_pool_fill(per_class=QUIZ_SIZE // 2, seed=0)  # first: studies never take quiz images
        study = study_create(
            name=STUDY,
            instructions="A demo of the paper's protocol: decide for each brain MR image whether it was "
            "acquired from a person (real) or made by the DCGAN (synthetic).",
            consent_text="This is a demo. Your calls are stored in this demo's database only.",
            images_per_session=sizes.images_per_session,
            synthetic_min=sizes.synthetic_min,
            synthetic_max=sizes.synthetic_max,
            training_images=sizes.training_images,
            quiz_enabled=True,
            show_score_after=True,
        )
        study_pools_from_bank(study=study, seed=0)
        study_open(study=study, seed=0)
    study.researchers.add(*researchers_assignable())  # the demo's researchers (demo-researcher) see it
    for username, password, role, years in DEMO_READERS:
        user = account_ensure(username=username, password=password, role=Role.READER)
        Reader.objects.get_or_create(user=user, study=study, defaults={"role": role, "years_experience": years})
    if not Reader.objects.filter(study=study, simulated=True).exists():
        simulated = reader_add(
            study=study, username=SIMULATED_READER, role=Reader.Role.RADIOLOGIST, years_experience=5, simulated=True
        )
        simulated_reading(reader=simulated, right_share=0.7, seed=0)
    return study


def simulated_reading(*, reader: Reader, right_share: float, seed: int) -> ReadingSession:
    """Read a whole session through the same services as a person, on a simulated clock: each
    call right with probability ``right_share``, after 2–8 s."""
    rng = random.Random(seed)
    session = session_build(reader=reader, seed=seed)
    now = timezone.now() - timedelta(hours=1)
    while (trial := trial_current(session=session, now=now)) is not None:
        trial_serve(session=session, token=trial.token, now=now)
        truth = trial.bank_image.image_class
        call = (
            truth
            if rng.random() < right_share
            else (BankImage.ImageClass.SYNTHETIC if truth == BankImage.ImageClass.REAL else BankImage.ImageClass.REAL)
        )
        now += timedelta(seconds=rng.uniform(2, 8))
        call_record(session=session, token=trial.token, call=call, now=now)
        now += timedelta(seconds=1)
    return session


def demo_observer(*, study: Study, follow: Follow) -> None:
    """The machine observer's row on the demo's results page: real images from several
    pseudo-subjects let it hold whole subjects out."""
    if machine_observer_latest(study=study) is not None:
        return
    job = _pending(study.observer_jobs.all()) or machine_observer_create(study=study, seed=0)
    follow(job, label="running the machine observer", unit="epoch")


def demo_pipeline(*, sizes: DemoSizes, follow: Follow) -> Study:
    training, held_out = demo_volumes(sizes=sizes, follow=follow)
    training_job = demo_training_job(dataset=training, sizes=sizes, follow=follow)
    demo_bank(training_job=training_job, held_out=held_out, sizes=sizes, follow=follow)
    study = demo_study(sizes=sizes)
    demo_observer(study=study, follow=follow)
    return study
