"""Building a reader's session from a bank of a million images (issues #6, #19): ranked pool
entries and a seeded draw of ranks, real images person first (every person once before anyone
twice), against today's builder before #19 (ranks drawn per image, people ignored) and against
loading every active id of the pools into Python."""

import statistics
import time

import numpy as np

from benchmarks.django_env import benchmark_database

BANK_SIZE = 1_000_000
PEOPLE = 1_000  # 500 real images each: slices of a few scans per person
READERS = 20
BASELINE_SESSIONS = 3  # the old way takes seconds per session
# Its own database (created, then dropped), so the benchmark never touches a test run's.
DATABASE_NAME = "bench_sessions"


def _fill_bank(cursor, size: int) -> None:
    # Fake keys and checksums: building a session never opens the files. Every 97th image is
    # excluded, so the draw has exclusions to skip. Real images belong to PEOPLE people.
    cursor.execute(
        """
        INSERT INTO generator_subject (label, kind, note, created_at)
        SELECT 'bench-' || p, 'person', '', now() FROM generate_series(1, %s) AS p
        """,
        [PEOPLE],
    )
    cursor.execute("SELECT min(id) FROM generator_subject")
    first_subject = cursor.fetchone()[0]
    cursor.execute(
        """
        INSERT INTO generator_bankimage (
            image_class, generator_name, external_checksum, note, storage_key, file, matrix_size,
            pixel_checksum, status, exclusion_reason, created_at, subject_id)
        SELECT CASE WHEN i %% 2 = 0 THEN 'real' ELSE 'synthetic' END, 'bench', '', '', md5(i::text),
            'bank/' || md5(i::text) || '.png', 256, md5(i::text),
            CASE WHEN i %% 97 = 0 THEN 'excluded' ELSE 'active' END, '', now(),
            CASE WHEN i %% 2 = 0 THEN %s + (i / 2) %% %s END
        FROM generate_series(1, %s) AS i
        """,
        [first_subject, PEOPLE, size],
    )
    cursor.execute("ANALYZE generator_bankimage")


def _old_plan(study, seed: int):
    """The builder before issue #6: every active id of each pool and class into Python."""
    from generator.models import BankImage
    from readerstudy.reading.sessions import session_plan

    def active_ids(pool: str, image_class: str) -> list[int]:
        return list(
            BankImage.objects.filter(
                pool_entries__study=study,
                pool_entries__pool=pool,
                image_class=image_class,
                status=BankImage.Status.ACTIVE,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    return session_plan(
        seed=seed,
        main_real=active_ids("main", "real"),
        main_synthetic=active_ids("main", "synthetic"),
        training_real=active_ids("training", "real"),
        training_synthetic=active_ids("training", "synthetic"),
        images_per_session=study.images_per_session,
        synthetic_min=study.synthetic_min,
        synthetic_max=study.synthetic_max,
        training_images=study.training_images,
    )


class _ImagesOnly:
    """A real pool seen as images only (no people): how today's builder drew before #19."""

    def __init__(self, pool) -> None:
        self.size, self.active_at = pool.size, pool.active_at


def _plan_ignoring_people(study, seed: int):
    from readerstudy.reading.sessions import _study_pools, session_plan

    pools = _study_pools(study)
    pools = {name: _ImagesOnly(pool) if name.endswith("_real") else pool for name, pool in pools.items()}
    return session_plan(
        seed=seed,
        **pools,
        images_per_session=study.images_per_session,
        synthetic_min=study.synthetic_min,
        synthetic_max=study.synthetic_max,
        training_images=study.training_images,
    )


def _ms(seconds: list[float]) -> tuple[float, float]:
    return 1000 * statistics.median(seconds), 1000 * float(np.percentile(seconds, 95))


def main() -> dict:
    with benchmark_database(DATABASE_NAME):
        return _run()


def _run() -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from readerstudy.reading.models import Reader, Study
    from readerstudy.reading.pools import study_pools_from_bank
    from readerstudy.reading.sessions import session_build, study_session_plan

    if connection.vendor != "postgresql":
        raise RuntimeError("bench_sessions needs PostgreSQL (DATABASE_URL=postgres://…)")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        _fill_bank(cursor, BANK_SIZE)
    fill_s = time.perf_counter() - started
    print(f"bank of {BANK_SIZE:,} images written in {fill_s:.1f} s")

    study = Study.objects.create(name="bench", state=Study.State.OPEN)  # the paper's protocol: 50 + 10
    started = time.perf_counter()
    counts = study_pools_from_bank(study=study, seed=0)
    pools_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE readerstudy_poolentry")
    print(f"study_pools_from_bank: {pools_s:.1f} s for {counts}")

    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"bench{i}", password="!") for i in range(READERS)
    )
    readers = [Reader.objects.create(user=user, study=study) for user in users]
    study_session_plan(study=study, seed=0)  # warm the connection and the index pages

    plan_s, build_s, before_s, most_per_person = [], [], [], []
    for seed, reader in enumerate(readers):
        started = time.perf_counter()
        most_per_person.append(study_session_plan(study=study, seed=1000 + seed).max_images_per_subject)
        plan_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        _plan_ignoring_people(study, 1000 + seed)
        before_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        session_build(reader=reader, seed=seed)
        build_s.append(time.perf_counter() - started)

    old_s = []
    for seed in range(BASELINE_SESSIONS):
        started = time.perf_counter()
        _old_plan(study, seed)
        old_s.append(time.perf_counter() - started)

    (plan_median, plan_p95), (build_median, build_p95) = _ms(plan_s), _ms(build_s)
    before_median, _ = _ms(before_s)
    old_median, _ = _ms(old_s)
    figures = {
        "bank_size": BANK_SIZE,
        "fill_bank_s": fill_s,
        "pools_from_bank_s": pools_s,
        "plan_median_ms": plan_median,
        "plan_p95_ms": plan_p95,
        "build_median_ms": build_median,
        "build_p95_ms": build_p95,
        "old_plan_median_ms": old_median,
        "speedup": old_median / plan_median,
        "plan_ignoring_people_median_ms": before_median,
        "people_first_vs_ignoring_people": plan_median / before_median,
        "most_images_per_person": max(most_per_person),
    }
    print(f"old plan (all active ids into Python): {old_median:8.1f} ms median of {BASELINE_SESSIONS} (baseline)")
    print(f"plan ignoring people (before #19):     {before_median:8.1f} ms median (baseline of #19)")
    print(f"plan (people first, ranks, rows):      {plan_median:8.1f} ms median, {plan_p95:.1f} ms p95")
    print(
        f"ratio people first / ignoring people:  {figures['people_first_vs_ignoring_people']:8.2f}×; "
        f"most real images of one person in a session: {figures['most_images_per_person']} ({PEOPLE:,} people)"
    )
    print(
        f"session_build (plan + 60 trials):      {build_median:8.1f} ms median, {build_p95:.1f} ms p95 (target < 100)"
    )
    print(f"ratio old / new plan:                  {figures['speedup']:8.0f}×")
    return figures


if __name__ == "__main__":
    main()
