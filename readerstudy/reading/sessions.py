"""Building reading sessions: which images each reader sees, in which order, from which seed.

The protocol (DESIGN.md, "Protocol facts"): per reader, the number of synthetic images is an
integer drawn uniformly from the study's range; images are drawn without replacement from the
main pool and shuffled; a training set of half real, half synthetic images comes from a training
pool kept apart from the main pool. In fixed-set mode one main set and one training set are drawn
when the study opens and every reader gets exactly those, each in their own order. The seed and
the order are stored, so a session can be rebuilt and audited.

Subjects are people (DESIGN.md): a session's real images are drawn person first, every person
of the pool once before anyone twice (people uniformly without replacement, a round at a time;
an image uniformly within each person), so among its real images per-person counts differ by at
most one and "I have seen this brain" never means "real" while the pool has an unused person.

A pool may hold a million images, so nothing here loads a whole pool: the entries of each pool
and class are ranked 0…n-1 (``PoolEntry``), and its real images' people too (``PoolSubject``,
with each person's entries ranked 0…m-1); a session draws ranks with the seeded generator and
fetches only the rows at those ranks.
"""

import functools
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from django.db import transaction
from django.db.models import Count, Max, Q

from generator.models import BankImage
from readerstudy.core.errors import ApplicationError

from .models import PoolEntry, PoolSubject, Reader, ReadingSession, Study, Trial

# Ranks per query: far below PostgreSQL's 65,535 bind parameters and SQLite's 32,766.
FETCH_CHUNK = 5000


class SessionError(ApplicationError):
    """A session or study that cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class SessionPlan:
    synthetic_count: int
    main_order: list[int]
    training_order: list[int]
    max_images_per_subject: int | None = None  # among the main phase's real images


@runtime_checkable
class RankedPool(Protocol):
    """One class of one pool: entries at ranks 0…size-1, some of whose images may be excluded."""

    size: int

    def active_at(self, ranks: Sequence[int]) -> dict[int, int]:
        """The bank image id at each of these ranks whose image is still active."""


@runtime_checkable
class PeoplePool(Protocol):
    """The real images of one pool by person: people at ranks 0…people-1, each person's entries
    at subject ranks 0…size-1, some of whose images may be excluded."""

    people: int

    def people_at(self, ranks: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(subject key, number of entries) of the person at each of these ranks."""

    def active_of_people(self, picks: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """The bank image id at each (subject key, subject rank) whose image is still active."""


@dataclass(frozen=True)
class IdsPool:
    """A pool given as a plain list of ids, all active, each image on its own (what the pure tests
    draw from, and a list given to ``session_plan``)."""

    ids: Sequence[int]

    @property
    def size(self) -> int:
        return len(self.ids)

    def active_at(self, ranks: Sequence[int]) -> dict[int, int]:
        return {rank: int(self.ids[rank]) for rank in ranks}


@dataclass(frozen=True)
class PeopleIdsPool(IdsPool):
    """A pool of real images given as ids with one person (subject key) per id, all active."""

    subjects: Sequence[int] = ()

    @functools.cached_property
    def _by_person(self) -> list[tuple[int, list[int]]]:
        people: dict[int, list[int]] = {}
        for key, image_id in zip(self.subjects, self.ids, strict=True):
            people.setdefault(int(key), []).append(int(image_id))
        return list(people.items())

    @property
    def people(self) -> int:
        return len(self._by_person)

    def people_at(self, ranks: Sequence[int]) -> dict[int, tuple[int, int]]:
        return {rank: (self._by_person[rank][0], len(self._by_person[rank][1])) for rank in ranks}

    @functools.cached_property
    def _images_of(self) -> dict[int, list[int]]:
        return dict(self._by_person)

    def active_of_people(self, picks: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
        return {(key, rank): self._images_of[key][rank] for key, rank in picks}


@dataclass(frozen=True)
class StudyPool:
    """One class of one pool of a study, as its ``PoolEntry`` rows stand in the database."""

    study_id: int
    pool: str
    image_class: str
    size: int
    people: int = 0  # its people (``PoolSubject`` rows): real images only

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

    def people_at(self, ranks: Sequence[int]) -> dict[int, tuple[int, int]]:
        rows = PoolSubject.objects.filter(
            study_id=self.study_id, pool=self.pool, image_class=self.image_class, rank__in=list(ranks)
        ).values_list("rank", "subject_key", "size")
        return {rank: (key, size) for rank, key, size in rows}

    def active_of_people(self, picks: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
        if not picks:
            return {}
        wanted = Q()
        for key, rank in picks:
            wanted |= Q(subject_key=key, subject_rank=rank)
        rows = PoolEntry.objects.filter(
            wanted,
            study_id=self.study_id,
            pool=self.pool,
            image_class=self.image_class,
            bank_image__status=BankImage.Status.ACTIVE,
        ).values_list("subject_key", "subject_rank", "bank_image_id")
        return {(key, rank): image_id for key, rank, image_id in rows}


class RankShuffle:
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
    order = RankShuffle(pool.size, rng)
    chosen: list[int] = []
    while len(chosen) < count:
        ranks = order.take(max(count - len(chosen), order.taken))
        if not ranks:
            raise SessionError(f"The pool holds {len(chosen)} active {what} image(s); a session needs {count}.")
        active = pool.active_at(ranks)
        chosen += [active[rank] for rank in ranks if rank in active][: count - len(chosen)]
    return chosen


def _draw_spread(rng: np.random.Generator, pool: PeoplePool, count: int, what: str) -> tuple[list[int], int]:
    """``count`` active images of the pool, person first: rounds in which every person who still
    has an active image not yet drawn is drawn once, in random order (the last round only in
    part), and one of their images uniformly. Per-person counts differ by at most one until
    someone runs out of images. Returns the ids and the largest per-person count."""
    within: dict[int, RankShuffle] = {}
    spent: set[int] = set()  # people with no active image left to draw
    chosen: list[int] = []
    per_person: Counter[int] = Counter()
    round_order, drawn_this_round = RankShuffle(pool.people, rng), 0
    while len(chosen) < count:
        ranks = round_order.take(count - len(chosen))
        if not ranks:
            if drawn_this_round == 0:
                raise SessionError(f"The pool holds {len(chosen)} active {what} image(s); a session needs {count}.")
            round_order, drawn_this_round = RankShuffle(pool.people, rng), 0
            continue
        people = pool.people_at(ranks)
        waiting = [people[rank] for rank in ranks if rank in people and people[rank][0] not in spent]
        while waiting:  # a person whose drawn image was excluded draws again, in the same round
            picks = []
            for key, size in waiting:
                taken = within.setdefault(key, RankShuffle(size, rng)).take(1)
                if taken:
                    picks.append((key, taken[0]))
                else:
                    spent.add(key)
            active = pool.active_of_people(picks)
            found = [pick for pick in picks if pick in active]
            chosen += [active[pick] for pick in found]
            per_person.update(key for key, _ in found)
            drawn_this_round += len(found)
            sizes = dict(waiting)
            waiting = [(key, sizes[key]) for key, rank in picks if (key, rank) not in active]
    return chosen, max(per_person.values(), default=0)


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
    main_real_ids, most_per_person = _draw_real(
        main_real_rng, main_real, images_per_session - synthetic_count, BankImage.ImageClass.REAL
    )
    main = _draw(main_synthetic_rng, main_synthetic, synthetic_count, BankImage.ImageClass.SYNTHETIC) + main_real_ids
    training_synthetic_count = training_images // 2
    training = (
        _draw(training_synthetic_rng, training_synthetic, training_synthetic_count, "synthetic training")
        + _draw_real(training_real_rng, training_real, training_images - training_synthetic_count, "real training")[0]
    )
    return SessionPlan(
        synthetic_count,
        [int(i) for i in rng.permutation(main)],
        [int(i) for i in rng.permutation(training)],
        most_per_person,
    )


def _draw_real(rng: np.random.Generator, pool: RankedPool, count: int, what: str) -> tuple[list[int], int | None]:
    """Person first where the pool knows its people; a plain pool (no people) draws images alone."""
    if isinstance(pool, PeoplePool):
        return _draw_spread(rng, pool, count, what)
    return _draw(rng, pool, count, what), None


def _study_pools(study: Study) -> dict[str, StudyPool]:
    # A study's real pools list their people (``PoolSubject``, a few thousand rows at most): counted in one query.
    people = dict(
        PoolSubject.objects.filter(study=study, image_class=BankImage.ImageClass.REAL)
        .values_list("pool")
        .annotate(n=Count("pk"))
        .order_by()
    )
    pools = {}
    for pool in PoolEntry.Pool:
        for image_class in BankImage.ImageClass:
            # Ranks are dense, so the highest one (a single step down the unique index) counts the entries.
            top = PoolEntry.objects.filter(study=study, pool=pool, image_class=image_class).aggregate(top=Max("rank"))
            size = 0 if top["top"] is None else top["top"] + 1
            in_pool = people.get(pool.value, 0) if image_class == BankImage.ImageClass.REAL else 0
            pools[f"{pool}_{image_class}"] = StudyPool(study.pk, pool.value, image_class.value, size, in_pool)
    return pools


def study_pool_counts(*, study: Study) -> dict[str, int]:
    """Entries per pool and class ("main_real", "main_synthetic", "training_real",
    "training_synthetic"), images excluded since included: sessions skip those. Cheap at any size."""
    return {name: pool.size for name, pool in _study_pools(study).items()}


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


def _most_images_of_one_person(image_ids: Sequence[int]) -> int:
    """The most real images of one person among these (an image without a subject: its own person)."""
    people = Counter(
        subject_id or -pk
        for pk, subject_id in BankImage.objects.filter(
            pk__in=list(image_ids), image_class=BankImage.ImageClass.REAL
        ).values_list("pk", "subject_id")
    )
    return max(people.values(), default=0)


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
            _most_images_of_one_person(study.fixed_main_set),
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
            max_images_per_subject=plan.max_images_per_subject,
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
