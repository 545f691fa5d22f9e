"""Following a queued job from a management command (`--wait`): a terminal progress bar until it ends."""

import sys
import time

from django.core.management.base import CommandError
from tqdm import tqdm

from readerstudy.core.jobs import JobState, LeasedJob

TIME_BUDGET_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f} of {total:.0f} s trained [{elapsed}<{remaining}{postfix}]"


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
    """Show the job's progress until it ends; CommandError unless it succeeded, or when ``timeout_s``
    passes first. The bar counts the job's ``step`` of ``total``, or, for a job on a time budget
    (progress with ``budget_s``), its ``trained_s`` of ``budget_s`` in seconds, the step beside it."""
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
            on_time_budget = bool(progress.get("budget_s"))
            position_key, total_key = ("trained_s", "budget_s") if on_time_budget else ("step", "total")
            if progress.get(total_key):
                bar.total = progress[total_key]
                if on_time_budget:
                    bar.bar_format = TIME_BUDGET_BAR
            bar.update(min(int(progress.get(position_key, 0)), bar.total or 10**12) - bar.n)
            shown = (*(("step",) if on_time_budget else ()), *postfix_keys)
            if postfix_keys and all(key in progress for key in shown):
                bar.set_postfix({key: progress[key] for key in shown})
    if job.state != JobState.SUCCEEDED:
        raise CommandError(f"{label.capitalize()} ended {job.state}. {job.error}")
    return job
