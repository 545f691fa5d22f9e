"""How long a run trains: a number of steps (an epoch budget is steps too) or of seconds.

A budget in minutes holds on any machine (2-core CPUs train the same net at rates ten times
apart); its clock is the run's own training time, kept in the checkpoint, so a resumed run gets
the time it had left, not a fresh budget. Pure Python: the loop asks it before every step.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.ml.dcgan import TrainingConfig


@dataclass(frozen=True)
class Budget:
    """Exactly one of ``steps`` and ``seconds``."""

    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.seconds is None):
            raise ValueError("a budget is steps or seconds, exactly one")

    @classmethod
    def of(cls, config: TrainingConfig, *, steps_per_epoch: int) -> Budget:
        if config.minutes is not None:
            return cls(seconds=config.minutes * 60.0)
        return cls(steps=config.total_steps(steps_per_epoch))

    def spent(self, *, step: int, trained_s: float) -> bool:
        """Whether no further step may start: asked before each step, so a run in seconds ends
        within one step of its limit."""
        if self.steps is not None:
            return step >= self.steps
        return trained_s >= self.seconds

    def seconds_left(self, *, trained_s: float) -> float | None:
        return None if self.seconds is None else max(0.0, self.seconds - trained_s)

    def fraction_done(self, *, step: int, trained_s: float) -> float:
        done = step / self.steps if self.steps is not None else trained_s / self.seconds
        return min(1.0, done)

    def eta_s(self, *, step: int, trained_s: float, steps_per_s: float) -> float | None:
        """Seconds until the budget is spent; None while no rate is known for a step budget."""
        if self.seconds is not None:
            return self.seconds_left(trained_s=trained_s)
        if step >= self.steps:
            return 0.0
        return (self.steps - step) / steps_per_s if steps_per_s > 0 else None
