"""Following a queued job from a management command (`--wait`): a terminal progress bar until it ends."""

import sys
import time

from django.core.management.base import CommandError
from tqdm import tqdm

from readerstudy.core.jobs import JobState, LeasedJob


def job_follow(
    job: LeasedJob,
    *,
    label: str,
    unit: str = "step",
    poll_s: float = 1.0,
    timeout_s: float | None = None,
    timeout_hint: str = "",
    postfix_keys: tuple[str, ...] = (),
) -> LeasedJob:
    """Show the job's progress (its ``step`` of ``total``) until it ends; CommandError unless it
    succeeded, or when ``timeout_s`` passes first."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with tqdm(total=job.progress.get("total"), desc=label, unit=unit, file=sys.stderr) as bar:
        while not job.is_finished:
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(
                    f"{label.capitalize()} did not finish within {timeout_s:.0f} s (state: {job.state}). {timeout_hint}"
                )
            time.sleep(poll_s)
            job.refresh_from_db()
            progress = job.progress
            if progress.get("total"):
                bar.total = progress["total"]
            bar.update(int(progress.get("step", 0)) - bar.n)
            if all(key in progress for key in postfix_keys) and postfix_keys:
                bar.set_postfix({key: progress[key] for key in postfix_keys})
    if job.state != JobState.SUCCEEDED:
        raise CommandError(f"{label.capitalize()} ended {job.state}. {job.error}")
    return job
