"""Building reading sessions: which images each reader sees, in which order, from which seed.

The protocol (DESIGN.md, "Protocol facts"): per reader, the number of synthetic images is an
integer drawn uniformly from the study's range; images are drawn without replacement from the
main pool and shuffled; a training set of half real, half synthetic images comes from a training
pool kept apart from the main pool. In fixed-set mode one main set and one training set are drawn
when the study opens and every reader gets exactly those, each in their own order. The seed and
the order are stored, so a session can be rebuilt and audited.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from generator.models import BankImage

from .models import Reader, ReadingSession, Study, Trial


class SessionError(ValueError):
    """A session or study that cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class SessionPlan:
    synthetic_count: int
    main_order: list[int]
    training_order: list[int]


def _draw(rng: np.random.Generator, ids: Sequence[int], count: int, what: str) -> list[int]:
    if count > len(ids):
        raise SessionError(f"The pool holds {len(ids)} active {what} image(s); a session needs {count}.")
    return [int(i) for i in rng.choice(np.asarray(ids, dtype=np.int64), size=count, replace=False)]


def session_plan(
    *,
    seed: int,
    main_real: Sequence[int],
    main_synthetic: Sequence[int],
    training_real: Sequence[int],
    training_synthetic: Sequence[int],
    images_per_session: int,
    synthetic_min: int,
    synthetic_max: int,
    training_images: int,
) -> SessionPlan:
    """A pure function of the seed and the pools: same seed, same session."""
    if not 0 <= synthetic_min <= synthetic_max <= images_per_session:
        raise SessionError("The synthetic range must lie within 0 and the images per session.")
    rng = np.random.default_rng(seed)
    synthetic_count = int(rng.integers(synthetic_min, synthetic_max + 1))
    main = _draw(rng, main_synthetic, synthetic_count, "synthetic") + _draw(
        rng, main_real, images_per_session - synthetic_count, "real"
    )
    training_synthetic_count = training_images // 2
    training = _draw(rng, training_synthetic, training_synthetic_count, "synthetic training") + _draw(
        rng, training_real, training_images - training_synthetic_count, "real training"
    )
    return SessionPlan(
        synthetic_count, [int(i) for i in rng.permutation(main)], [int(i) for i in rng.permutation(training)]
    )


def _active_ids(pool, image_class: str) -> list[int]:
    return list(
        pool.filter(image_class=image_class, status=BankImage.Status.ACTIVE).order_by("pk").values_list("pk", flat=True)
    )


def study_set_pools(*, study: Study, main_pool: Sequence[BankImage], training_pool: Sequence[BankImage]) -> None:
    """Set the study's pools; they must stay apart (training answers are revealed and shared)."""
    overlap = {image.pk for image in main_pool} & {image.pk for image in training_pool}
    if overlap:
        raise SessionError(f"{len(overlap)} image(s) are in both the main and the training pool; keep them apart.")
    study.main_pool.set(main_pool)
    study.training_pool.set(training_pool)


def study_open(*, study: Study, seed: int | None = None) -> Study:
    """Open a study; in fixed-set mode draw its one main set and one training set now."""
    if study.fixed_set and not study.fixed_main_set:
        plan = _plan_for(study, seed=secrets.randbits(48) if seed is None else seed)
        study.fixed_main_set, study.fixed_training_set = sorted(plan.main_order), sorted(plan.training_order)
    study.state = Study.State.OPEN
    study.save()
    return study


def _plan_for(study: Study, *, seed: int) -> SessionPlan:
    if study.fixed_set and study.fixed_main_set:
        synthetic = set(
            BankImage.objects.filter(pk__in=study.fixed_main_set, image_class="synthetic").values_list("pk", flat=True)
        )
        rng = np.random.default_rng(seed)
        return SessionPlan(
            len(synthetic),
            [int(i) for i in rng.permutation(study.fixed_main_set)],
            [int(i) for i in rng.permutation(study.fixed_training_set)],
        )
    return session_plan(
        seed=seed,
        main_real=_active_ids(study.main_pool, "real"),
        main_synthetic=_active_ids(study.main_pool, "synthetic"),
        training_real=_active_ids(study.training_pool, "real"),
        training_synthetic=_active_ids(study.training_pool, "synthetic"),
        images_per_session=study.images_per_session,
        synthetic_min=study.synthetic_min,
        synthetic_max=study.synthetic_max,
        training_images=study.training_images,
    )


def session_build(*, reader: Reader, seed: int | None = None) -> ReadingSession:
    """Create a reader's session and all its trials (training first), each with its own token."""
    seed = secrets.randbits(48) if seed is None else seed
    plan = _plan_for(reader.study, seed=seed)
    with transaction.atomic():
        session = ReadingSession.objects.create(
            reader=reader,
            seed=seed,
            synthetic_count=plan.synthetic_count,
            main_order=plan.main_order,
            training_order=plan.training_order,
        )
        phases = [(Trial.Phase.TRAINING, i) for i in plan.training_order] + [
            (Trial.Phase.MAIN, i) for i in plan.main_order
        ]
        Trial.objects.bulk_create(
            Trial(
                session=session, phase=phase, position=position, bank_image_id=image_id, token=secrets.token_urlsafe(32)
            )
            for position, (phase, image_id) in enumerate(phases)
        )
    return session


def reader_session(*, user, study_id: int) -> ReadingSession:
    """The signed-in reader's session of a study, built on first use while the study is open."""
    reader = Reader.objects.select_related("study").filter(user=user, study_id=study_id).first()
    if reader is None:
        raise SessionError("You are not a reader of this study.")
    session = ReadingSession.objects.filter(reader=reader).first()
    if session is not None:
        return session
    if reader.study.state != Study.State.OPEN:
        raise SessionError("This study is not open for reading.")
    return session_build(reader=reader)
