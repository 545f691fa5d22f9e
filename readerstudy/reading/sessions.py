"""Building reading sessions: which images each reader sees, in which order, from which seed.

The protocol (DESIGN.md, "Protocol facts"): per reader, the number of synthetic images is an
integer drawn uniformly from the study's range; images are drawn without replacement from the
main pool and shuffled; a training set of half real, half synthetic images comes from a training
pool kept apart from the main pool. In fixed-set mode one main set and one training set are drawn
when the study opens and every reader gets exactly those, each in their own order. The seed and
the order are stored, so a session can be rebuilt and audited.

A pool may hold a million images, so nothing here loads a whole pool: the entries of each pool
and class are ranked 0…n-1 (``PoolEntry``), a session draws ranks with the seeded generator and
fetches only the rows at those ranks.
"""

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from django.db import connections, transaction
from django.db.models import Max, QuerySet, Window
from django.db.models.functions import RowNumber

from generator.models import BankImage
from readerstudy.core.errors import ApplicationError, EvidenceFrozen

from .models import PoolEntry, Reader, ReadingSession, Study, Trial

# Ranks per query: far below PostgreSQL's 65,535 bind parameters and SQLite's 32,766.
FETCH_CHUNK = 5000
# A temporary table, one per connection: new pool entries wait there while the old ones go.
STAGING_TABLE = "readerstudy_pool_staging"


class SessionError(ApplicationError):
    """A session or study that cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class SessionPlan:
    synthetic_count: int
    main_order: list[int]
    training_order: list[int]


@runtime_checkable
class RankedPool(Protocol):
    """One class of one pool: entries at ranks 0…size-1, some of whose images may be excluded."""

    size: int

    def active_at(self, ranks: Sequence[int]) -> dict[int, int]:
        """The bank image id at each of these ranks whose image is still active."""


@dataclass(frozen=True)
class IdsPool:
    """A pool given as a plain list of ids, all active (what the pure tests draw from)."""

    ids: Sequence[int]

    @property
    def size(self) -> int:
        return len(self.ids)

    def active_at(self, ranks: Sequence[int]) -> dict[int, int]:
        return {rank: int(self.ids[rank]) for rank in ranks}


@dataclass(frozen=True)
class StudyPool:
    """One class of one pool of a study, as its ``PoolEntry`` rows stand in the database."""

    study_id: int
    pool: str
    image_class: str
    size: int

    def active_at(self, ranks: Sequence[int]) -> dict[int, int]:
        entries = PoolEntry.objects.filter(
            study_id=self.study_id,
            pool=self.pool,
            image_class=self.image_class,
            bank_image__status=BankImage.Status.ACTIVE,
        )
        found: dict[int, int] = {}
        for start in range(0, len(ranks), FETCH_CHUNK):
            found.update(
                entries.filter(rank__in=ranks[start : start + FETCH_CHUNK]).values_list("rank", "bank_image_id")
            )
        return found


class _RankShuffle:
    """The ranks 0…size-1 in a random order, handed out a few at a time: a Fisher–Yates shuffle
    that stores only the positions it has swapped, so taking k of n costs O(k), not O(n).
    (numpy's ``choice(n, k, replace=False)`` is O(k) only while k < n/50, and cannot go on from
    where it stopped when an excluded image must be replaced.)"""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size, self.rng, self.taken = size, rng, 0
        self._moved: dict[int, int] = {}

    def take(self, count: int) -> list[int]:
        count = min(count, self.size - self.taken)
        if count <= 0:
            return []
        positions = range(self.taken, self.taken + count)
        targets = self.rng.integers(np.arange(positions.start, positions.stop), self.size).tolist()
        ranks = []
        for position, target in zip(positions, targets, strict=True):
            ranks.append(self._moved.get(target, target))
            self._moved[target] = self._moved.pop(position, position)
        self.taken += count
        return ranks


def _draw(rng: np.random.Generator, pool: RankedPool, count: int, what: str) -> list[int]:
    """``count`` active images of the pool at random, without replacement.

    Ranks come from one random order of the whole pool; an excluded image is skipped for the next
    rank in that order, so the draw stays uniform over the active images and is fixed by the seed
    and the database. Each round takes as many ranks as all rounds before it, so a pool that is
    mostly excluded costs a few rounds, not one per image."""
    order = _RankShuffle(pool.size, rng)
    chosen: list[int] = []
    while len(chosen) < count:
        ranks = order.take(max(count - len(chosen), order.taken))
        if not ranks:
            raise SessionError(f"The pool holds {len(chosen)} active {what} image(s); a session needs {count}.")
        active = pool.active_at(ranks)
        chosen += [active[rank] for rank in ranks if rank in active][: count - len(chosen)]
    return chosen


def session_plan(
    *,
    seed: int,
    main_real: Sequence[int] | RankedPool,
    main_synthetic: Sequence[int] | RankedPool,
    training_real: Sequence[int] | RankedPool,
    training_synthetic: Sequence[int] | RankedPool,
    images_per_session: int,
    synthetic_min: int,
    synthetic_max: int,
    training_images: int,
) -> SessionPlan:
    """A pure function of the seed and the pools (lists of ids, or a study's pools as they stand
    in the database): same seed, same session. Each pool draws with its own child of the seed, so
    an image excluded from one pool changes nothing in what the others give."""
    if not 0 <= synthetic_min <= synthetic_max <= images_per_session:
        raise SessionError("The synthetic range must lie within 0 and the images per session.")
    main_synthetic, main_real, training_synthetic, training_real = (
        pool if isinstance(pool, RankedPool) else IdsPool(pool)
        for pool in (main_synthetic, main_real, training_synthetic, training_real)
    )
    rng = np.random.default_rng(seed)
    synthetic_count = int(rng.integers(synthetic_min, synthetic_max + 1))
    main_synthetic_rng, main_real_rng, training_synthetic_rng, training_real_rng = rng.spawn(4)
    main = _draw(main_synthetic_rng, main_synthetic, synthetic_count, BankImage.ImageClass.SYNTHETIC) + _draw(
        main_real_rng, main_real, images_per_session - synthetic_count, BankImage.ImageClass.REAL
    )
    training_synthetic_count = training_images // 2
    training = _draw(
        training_synthetic_rng, training_synthetic, training_synthetic_count, "synthetic training"
    ) + _draw(training_real_rng, training_real, training_images - training_synthetic_count, "real training")
    return SessionPlan(
        synthetic_count, [int(i) for i in rng.permutation(main)], [int(i) for i in rng.permutation(training)]
    )


def _study_pools(study: Study) -> dict[str, StudyPool]:
    pools = {}
    for pool in PoolEntry.Pool:
        for image_class in BankImage.ImageClass:
            # Ranks are dense, so the highest one (a single step down the unique index) counts the entries.
            top = PoolEntry.objects.filter(study=study, pool=pool, image_class=image_class).aggregate(top=Max("rank"))
            size = 0 if top["top"] is None else top["top"] + 1
            pools[f"{pool}_{image_class}"] = StudyPool(study.pk, pool.value, image_class.value, size)
    return pools


def study_pool_counts(*, study: Study) -> dict[str, int]:
    """Entries per pool and class ("main_real", "main_synthetic", "training_real",
    "training_synthetic"), images excluded since included: sessions skip those. Cheap at any size."""
    return {name: pool.size for name, pool in _study_pools(study).items()}


def _as_queryset(images: Iterable[BankImage] | QuerySet) -> QuerySet:
    if isinstance(images, QuerySet):
        # Nested as a subquery, so a sliced or ordered queryset can still be filtered.
        return BankImage.objects.filter(pk__in=images.values("pk"))
    return BankImage.objects.filter(pk__in=[image.pk for image in images])


def _stage_entries(cursor, *, pool: str, images: QuerySet) -> None:
    """Number the images of one pool per class by id, inside the database."""
    ids_sql, ids_params = images.values("pk").query.get_compiler(connection=cursor.db).as_sql()
    cursor.execute(
        f"INSERT INTO {STAGING_TABLE} (pool, image_class, position, bank_image_id) "
        "SELECT %s, source.image_class, "
        "ROW_NUMBER() OVER (PARTITION BY source.image_class ORDER BY source.id) - 1, source.id "
        f"FROM {cursor.db.ops.quote_name(BankImage._meta.db_table)} source WHERE source.id IN ({ids_sql})",
        [pool, *ids_params],
    )


def study_set_pools(
    *,
    study: Study,
    main_pool: Iterable[BankImage] | QuerySet,
    training_pool: Iterable[BankImage] | QuerySet,
) -> None:
    """Set the study's pools; they must stay apart (training answers are revealed and shared).

    Lists suit a few images; give QuerySets for large pools: they are copied inside the database
    (INSERT … SELECT), never through Python. Frozen once a reader has started."""
    main, training = _as_queryset(main_pool), _as_queryset(training_pool)
    with transaction.atomic(using=main.db), connections[main.db].cursor() as cursor:
        if study.has_started:
            raise EvidenceFrozen(f"Readers have started {study}; its pools can no longer change.")
        quiz = (main | training).filter(quiz_entry__isnull=False).count()
        if quiz:
            raise SessionError(f"{quiz} image(s) are in the public quiz pool; its answers are public, leave them out.")
        overlap = main.filter(pk__in=training.values("pk")).count()
        if overlap:
            raise SessionError(f"{overlap} image(s) are in both the main and the training pool; keep them apart.")
        # Staged first: the querysets may well be drawn from the study's current pools. (The
        # table goes with a rollback too: both databases undo a CREATE in a transaction.)
        cursor.execute(
            f"CREATE TEMPORARY TABLE {STAGING_TABLE} "
            "(pool varchar(16), image_class varchar(16), position integer, bank_image_id bigint)"
        )
        _stage_entries(cursor, pool=PoolEntry.Pool.MAIN, images=main)
        _stage_entries(cursor, pool=PoolEntry.Pool.TRAINING, images=training)
        PoolEntry.objects.filter(study=study).delete()
        quote = cursor.db.ops.quote_name
        cursor.execute(
            f"INSERT INTO {quote(PoolEntry._meta.db_table)} "
            f"(study_id, pool, image_class, {quote('rank')}, bank_image_id) "
            f"SELECT %s, pool, image_class, position, bank_image_id FROM {STAGING_TABLE}",
            [study.pk],
        )
        cursor.execute(f"DROP TABLE {STAGING_TABLE}")


def study_pools_from_bank(
    *,
    study: Study,
    bank_images: QuerySet | None = None,
    training_per_class: int | None = None,
    seed: int | None = None,
) -> dict[str, int]:
    """Fill both pools from the bank's active images (by default all of them): a training pool of
    ``training_per_class`` real and as many synthetic images drawn at random, every other image in
    the main pool. By default each class gives half the study's training images, rounded up, and
    at least one: the smallest training pool one session's training set fits in.

    Nothing goes through Python per image: the active images of a class are numbered in the
    database (row number by id), the draw picks numbers, only the drawn ids come back. Under a
    minute at a million images (bench_sessions), half of it PostgreSQL's foreign-key checks.
    Returns the counts of ``study_pool_counts``."""
    if training_per_class is None:
        training_per_class = max(-(-study.training_images // 2), 1)
    source = BankImage.objects.all() if bank_images is None else bank_images
    active = BankImage.objects.filter(
        pk__in=source.values("pk"), status=BankImage.Status.ACTIVE, quiz_entry__isnull=True
    )
    rng = np.random.default_rng(seed)
    training_ids: list[int] = []
    for image_class in BankImage.ImageClass:
        of_class = active.filter(image_class=image_class)
        available = of_class.count()
        if available < training_per_class:
            raise SessionError(
                f"The bank holds {available} active {image_class} image(s); "
                f"the training pool needs {training_per_class}."
            )
        numbers = [rank + 1 for rank in _RankShuffle(available, rng).take(training_per_class)]
        training_ids += (
            of_class.annotate(number=Window(RowNumber(), order_by="pk"))
            .filter(number__in=numbers)
            .values_list("pk", flat=True)
        )
    study_set_pools(
        study=study,
        main_pool=active.exclude(pk__in=training_ids),
        training_pool=BankImage.objects.filter(pk__in=training_ids),
    )
    return study_pool_counts(study=study)


def study_open(*, study: Study, seed: int | None = None) -> Study:
    """Open a study; in fixed-set mode draw its one main set and one training set now."""
    if study.fixed_set and not study.fixed_main_set:
        plan = study_session_plan(study=study, seed=secrets.randbits(48) if seed is None else seed)
        study.fixed_main_set, study.fixed_training_set = sorted(plan.main_order), sorted(plan.training_order)
    study.state = Study.State.OPEN
    study.save()
    return study


def study_close(*, study: Study) -> Study:
    """Close a study: readers can no longer start or go on; its evidence stays as it is."""
    study.state = Study.State.CLOSED
    study.save(update_fields=["state"])
    return study


def study_session_plan(*, study: Study, seed: int) -> SessionPlan:
    """The session a reader of the study would get from this seed (nothing is written)."""
    if study.fixed_set and study.fixed_main_set:
        synthetic = set(
            BankImage.objects.filter(
                pk__in=study.fixed_main_set, image_class=BankImage.ImageClass.SYNTHETIC
            ).values_list("pk", flat=True)
        )
        rng = np.random.default_rng(seed)
        return SessionPlan(
            len(synthetic),
            [int(i) for i in rng.permutation(study.fixed_main_set)],
            [int(i) for i in rng.permutation(study.fixed_training_set)],
        )
    return session_plan(
        seed=seed,
        **_study_pools(study),
        images_per_session=study.images_per_session,
        synthetic_min=study.synthetic_min,
        synthetic_max=study.synthetic_max,
        training_images=study.training_images,
    )


def session_build(*, reader: Reader, seed: int | None = None) -> ReadingSession:
    """Create a reader's session and all its trials (training first), each with its own token."""
    seed = secrets.randbits(48) if seed is None else seed
    plan = study_session_plan(study=reader.study, seed=seed)
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
    # One query for the reader, the study and the session (a request per trial asks for it).
    reader = Reader.objects.select_related("study", "session").filter(user=user, study_id=study_id).first()
    if reader is None:
        raise SessionError("You are not a reader of this study.")
    if hasattr(reader, "session"):
        return reader.session
    if reader.study.state != Study.State.OPEN:
        raise SessionError("This study is not open for reading.")
    return session_build(reader=reader)
