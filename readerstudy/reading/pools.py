"""A study's pools: set them (kept apart, one matrix size, ranked in the database) or fill them
from the bank, choosing a split that keeps revealed answers apart by themselves.

A pool may hold a million images: entries are numbered inside the database (INSERT … SELECT with
row numbers per class, and per person within a class), never through Python."""

from collections.abc import Iterable

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connections, transaction
from django.db.models import QuerySet, Window
from django.db.models.functions import RowNumber

from generator.models import BankImage
from readerstudy.core.errors import EvidenceFrozen

from .apart import Marks, apart_from, apart_from_main_pools, people_first_draw, pools_check_apart, revealed_elsewhere
from .models import PoolEntry, PoolSubject, Study
from .sessions import RankShuffle, SessionError, study_pool_counts

# A temporary table, one per connection: new pool entries wait there while the old ones go.
STAGING_TABLE = "readerstudy_pool_staging"


def _as_queryset(images: Iterable[BankImage] | QuerySet) -> QuerySet:
    if isinstance(images, QuerySet):
        # Nested as a subquery, so a sliced or ordered queryset can still be filtered.
        return BankImage.objects.filter(pk__in=images.values("pk"))
    return BankImage.objects.filter(pk__in=[image.pk for image in images])


def _stage_entries(cursor, *, pool: str, images: QuerySet) -> None:
    """Number the images of one pool per class by id, and per person within a class, inside the
    database. An image without a subject is a person of its own (key: minus its id)."""
    try:
        ids_sql, ids_params = images.values("pk").query.get_compiler(connection=cursor.db).as_sql()
    except EmptyResultSet:  # an empty pool (a study without training images): nothing to number
        return
    person = "COALESCE(source.subject_id, -source.id)"
    cursor.execute(
        f"INSERT INTO {STAGING_TABLE} (pool, image_class, position, bank_image_id, subject_key, subject_rank) "
        "SELECT %s, source.image_class, "
        "ROW_NUMBER() OVER (PARTITION BY source.image_class ORDER BY source.id) - 1, source.id, "
        f"{person}, ROW_NUMBER() OVER (PARTITION BY source.image_class, {person} ORDER BY source.id) - 1 "
        f"FROM {cursor.db.ops.quote_name(BankImage._meta.db_table)} source WHERE source.id IN ({ids_sql})",
        [pool, *ids_params],
    )


def _write_staged(cursor, *, study: Study) -> None:
    """The staged entries become the study's pools, and its real images' people are ranked."""
    PoolEntry.objects.filter(study=study).delete()
    PoolSubject.objects.filter(study=study).delete()
    quote = cursor.db.ops.quote_name
    cursor.execute(
        f"INSERT INTO {quote(PoolEntry._meta.db_table)} "
        f"(study_id, pool, image_class, {quote('rank')}, bank_image_id, subject_key, subject_rank) "
        f"SELECT %s, pool, image_class, position, bank_image_id, subject_key, subject_rank FROM {STAGING_TABLE}",
        [study.pk],
    )
    cursor.execute(
        f"INSERT INTO {quote(PoolSubject._meta.db_table)} "
        f"(study_id, pool, image_class, {quote('rank')}, subject_key, size) "
        "SELECT %s, pool, image_class, ROW_NUMBER() OVER (PARTITION BY pool, image_class ORDER BY subject_key) - 1, "
        f"subject_key, COUNT(*) FROM {STAGING_TABLE} WHERE image_class = %s GROUP BY pool, image_class, subject_key",
        [study.pk, BankImage.ImageClass.REAL.value],
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
        pools_check_apart(study=study, main=main, training=training)
        # Staged first: the querysets may well be drawn from the study's current pools. (The
        # table goes with a rollback too: both databases undo a CREATE in a transaction.)
        cursor.execute(
            f"CREATE TEMPORARY TABLE {STAGING_TABLE} (pool varchar(16), image_class varchar(16), position integer, "
            "bank_image_id bigint, subject_key bigint, subject_rank integer)"
        )
        _stage_entries(cursor, pool=PoolEntry.Pool.MAIN, images=main)
        _stage_entries(cursor, pool=PoolEntry.Pool.TRAINING, images=training)
        _write_staged(cursor, study=study)
        cursor.execute(f"DROP TABLE {STAGING_TABLE}")


def study_pools_from_bank(
    *,
    study: Study,
    bank_images: QuerySet | None = None,
    training_per_class: int | None = None,
    seed: int | None = None,
    matrix_size: int | None = None,
) -> dict[str, int]:
    """Fill both pools from the bank's active images (by default all of them, of one matrix size):
    a training pool of ``training_per_class`` real and as many synthetic images drawn at random,
    every other image in the main pool. By default each class gives half the study's training
    images, rounded up, and at least one: the smallest training pool one session's training set
    fits in.

    Revealed images stay apart (``apart``): the training pool's real images come from people of
    their own (drawn person by person, among the people no other study's main pool shows), and
    none of those people's images goes to the main pool; the main pool leaves out every person
    and every pixels whose answer other studies' training pools or the quiz reveal.

    Nothing goes through Python per image but the training pool's people: the active images of a
    class are numbered in the database (row number by id), the draw picks numbers, only the drawn
    ids come back. Under a minute at a million images (bench_sessions). Returns the counts of
    ``study_pool_counts``."""
    if training_per_class is None:
        training_per_class = max(-(-study.training_images // 2), 1)
    source = BankImage.objects.all() if bank_images is None else bank_images
    active = BankImage.objects.filter(
        pk__in=source.values("pk"), status=BankImage.Status.ACTIVE, quiz_entry__isnull=True
    )
    active = active.filter(matrix_size=matrix_size or _one_matrix_size(active))
    rng = np.random.default_rng(seed)
    revealable = apart_from_main_pools(active, study=study)
    training_ids = people_first_draw(
        rng,
        revealable.filter(image_class=BankImage.ImageClass.REAL),
        training_per_class,
        what="real images whose people no other study's main pool shows, for a training pool",
        error=SessionError,
    )
    synthetic = revealable.filter(image_class=BankImage.ImageClass.SYNTHETIC)
    available = synthetic.count()
    if available < training_per_class:
        raise SessionError(
            f"The bank holds {available} active synthetic image(s) for a training pool; it needs {training_per_class}."
        )
    numbers = [rank + 1 for rank in RankShuffle(available, rng).take(training_per_class)]
    numbered = synthetic.annotate(number=Window(RowNumber(), order_by="pk"))
    training_ids += numbered.filter(number__in=numbers).values_list("pk", flat=True)
    training = BankImage.objects.filter(pk__in=training_ids)
    revealed = Marks.of(training) | revealed_elsewhere(study=study)
    study_set_pools(study=study, main_pool=apart_from(active, revealed), training_pool=training)
    return study_pool_counts(study=study)


def _one_matrix_size(images: QuerySet) -> int | None:
    sizes = sorted(set(images.values_list("matrix_size", flat=True).distinct()))
    if len(sizes) > 1:
        raise SessionError(
            f"The bank holds images of {len(sizes)} matrix sizes ({', '.join(f'{n}²' for n in sizes)}); a study's "
            "images must share one (a size would tell the classes apart): choose the matrix size."
        )
    return sizes[0] if sizes else None
