"""The demo pipeline `make demo` runs once the worker is up: the MNI152 template from the nilearn
wheel ingested and aligned, a quick-64 DCGAN trained, the bank filled, and a demo study with its
readers (one simulated reader already finished, so results show numbers at once).

Every step reuses what an earlier run left, so a second `make demo` is serving in seconds. Jobs
run on the real worker; each is followed with a progress bar."""

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from generator.bank import bank_fill_create
from generator.ingest import dataset_get_or_create, volumes_ingest
from generator.models import BankFillJob, BankImage, TrainingJob, Volume
from generator.training_jobs import training_job_create
from generator.volumes import alignment_job_create
from readerstudy.core.accounts import account_ensure
from readerstudy.core.jobs import FINISHED_STATES, JobState
from readerstudy.core.roles import Role
from readerstudy.reading.models import Reader, ReadingSession, Study
from readerstudy.reading.quiz import QUIZ_SIZE, quiz_pool_counts, quiz_pool_fill
from readerstudy.reading.readers import reader_add
from readerstudy.reading.sessions import session_build, study_open, study_pools_from_bank
from readerstudy.reading.studies import study_create
from readerstudy.reading.trials import call_record, trial_current, trial_serve

DATASET = "demo-mni152"
STUDY = "Demo study"
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

    training_steps: int | None = None  # None: the quick-64 preset's budget
    bank_per_class: int = 200
    images_per_session: int = 50
    synthetic_min: int = 20
    synthetic_max: int = 30
    training_images: int = 10

    @classmethod
    def tiny(cls) -> "DemoSizes":
        return cls(
            training_steps=30,
            bank_per_class=24,
            images_per_session=8,
            synthetic_min=3,
            synthetic_max=5,
            training_images=2,
        )


Follow = Callable[..., object]  # readerstudy.core.follow.job_follow


def template_path() -> Path:
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def _pending(jobs):
    return jobs.exclude(state__in=FINISHED_STATES).order_by("-pk").first()


def demo_volume(*, follow: Follow) -> Volume:
    dataset = dataset_get_or_create(name=DATASET)
    if not dataset.volumes.exists():
        results = volumes_ingest(dataset=dataset, files=[(template_path(), "mni152_2009_t1_from_nilearn.nii.gz")])
        if results[0].outcome != "stored":
            raise RuntimeError(f"Could not ingest the demo template: {results[0].message}")
    volume = dataset.volumes.order_by("pk").first()
    if volume.status != Volume.Status.READY:
        job = _pending(volume.alignment_jobs.all()) or alignment_job_create(volume=volume)
        follow(job, label="aligning the MNI152 template", unit="step")
        volume.refresh_from_db()
    return volume


def demo_training_job(*, volume: Volume, sizes: DemoSizes, follow: Follow) -> TrainingJob:
    jobs = TrainingJob.objects.filter(dataset=volume.dataset)
    done = jobs.filter(state=JobState.SUCCEEDED).exclude(generator_file="").order_by("-pk").first()
    if done:
        return done
    job = _pending(jobs) or training_job_create(dataset=volume.dataset, steps=sizes.training_steps, seed=0)
    return follow(job, label="training the quick-64 DCGAN", unit="step")


def demo_bank(*, training_job: TrainingJob, sizes: DemoSizes, follow: Follow) -> None:
    have = BankImage.objects.filter(image_class=BankImage.ImageClass.SYNTHETIC, training_job=training_job).count()
    if have >= sizes.bank_per_class:
        return
    fills = BankFillJob.objects.filter(training_job=training_job)
    job = _pending(fills) or bank_fill_create(training_job=training_job, synthetic_count=sizes.bank_per_class, seed=0)
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


def demo_pipeline(*, sizes: DemoSizes, follow: Follow) -> Study:
    volume = demo_volume(follow=follow)
    training_job = demo_training_job(volume=volume, sizes=sizes, follow=follow)
    demo_bank(training_job=training_job, sizes=sizes, follow=follow)
    return demo_study(sizes=sizes)
