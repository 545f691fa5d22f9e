"""What the job lease costs a job: a step loop run bare, and under job_run with its heartbeat."""

import time

import numpy as np

from benchmarks.django_env import benchmark_database

STEPS = 3000


def _one_step(matrix: np.ndarray) -> float:
    # Stands in for a training step: a few milliseconds of numerical work.
    return float((matrix @ matrix).sum())


def main() -> dict:
    with benchmark_database():
        from django.conf import settings

        from readerstudy.core.jobs import job_run
        from readerstudy.core.models import ProbeJob

        settings.JOB_LEASE_HEARTBEAT_S = 0.1  # 30x the default rate: an upper bound on the cost
        matrix = np.random.default_rng(0).random((300, 300))
        _one_step(matrix)

        started = time.perf_counter()
        for _ in range(STEPS):
            _one_step(matrix)
        bare_s = time.perf_counter() - started

        def work(job, handle) -> None:
            for step in range(1, STEPS + 1):
                handle.checkpoint()
                _one_step(matrix)
                handle.report(step=step, total=STEPS)

        job = ProbeJob.objects.create(steps=STEPS)
        started = time.perf_counter()
        job_run(model=ProbeJob, job_id=job.pk, work=work)
        leased_s = time.perf_counter() - started
        job.refresh_from_db()

    figures = {
        "bare_steps_per_s": STEPS / bare_s,
        "leased_steps_per_s": STEPS / leased_s,
        "leased_over_bare": bare_s / leased_s,
    }
    print(f"bare step loop:            {figures['bare_steps_per_s']:8.1f} steps/s (baseline)")
    print(f"under job_run (beat 0.1s): {figures['leased_steps_per_s']:8.1f} steps/s")
    print(f"ratio leased / bare:       {figures['leased_over_bare']:8.3f} (target >= 0.95)")
    print(f"job ended {job.state}, progress {job.progress}")
    return figures


if __name__ == "__main__":
    main()
