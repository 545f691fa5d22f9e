"""Budgets in steps and in minutes: when a run must stop, what is left, how far it is."""

import pytest

from generator.ml.dcgan import TrainingConfig
from generator.ml.training.budget import Budget
from generator.ml.training.run_folder import HISTORY_POINTS, LossHistory


def test_a_budget_in_minutes_is_spent_by_training_time_whatever_the_steps():
    budget = Budget.of(TrainingConfig(size=64, minutes=2), steps_per_epoch=10)
    assert (budget.steps, budget.seconds) == (None, 120)
    assert not budget.spent(step=10**6, trained_s=119.9) and budget.spent(step=1, trained_s=120.0)
    assert budget.seconds_left(trained_s=90) == 30 and budget.seconds_left(trained_s=200) == 0
    assert budget.fraction_done(step=5, trained_s=30) == 0.25 and budget.fraction_done(step=5, trained_s=999) == 1
    assert budget.eta_s(step=5, trained_s=30, steps_per_s=0) == 90  # the clock, not the rate


def test_a_budget_in_epochs_or_steps_counts_steps():
    budget = Budget.of(TrainingConfig(size=64, epochs=3), steps_per_epoch=10)
    assert (budget.steps, budget.seconds) == (30, None)
    assert not budget.spent(step=29, trained_s=1e9) and budget.spent(step=30, trained_s=0)
    assert budget.seconds_left(trained_s=5) is None and budget.fraction_done(step=15, trained_s=0) == 0.5
    assert (
        budget.eta_s(step=20, trained_s=0, steps_per_s=2) == 5
        and budget.eta_s(step=30, trained_s=0, steps_per_s=0) == 0
    )
    assert budget.eta_s(step=20, trained_s=0, steps_per_s=0) is None  # no rate yet: no ETA to give
    with pytest.raises(ValueError):
        Budget(steps=3, seconds=4)


def test_a_long_run_in_minutes_keeps_its_loss_curve_short(tmp_path):
    history = LossHistory.for_budget(tmp_path, up_to_step=0, total_steps=None)
    for step in range(1, 5 * HISTORY_POINTS + 1):
        history.add((1.0, float(step % 2)), step=step)
    points = history.points
    assert len(points["step"]) <= 2 * HISTORY_POINTS and points["step"] == sorted(points["step"])
    assert points["step"][-1] <= 5 * HISTORY_POINTS and all(value == 1.0 for value in points["d_loss"])
    assert all(value == pytest.approx(0.5) for value in points["g_loss"][:-1])  # merged pairs: means, not samples


def test_a_run_recorded_before_the_stabilisers_existed_resumes(tmp_path):
    import json

    from generator.ml.training.run_folder import record_config

    config = TrainingConfig(size=64, steps=10)
    old = {
        name: value for name, value in config.to_dict().items() if name not in ("diff_augment", "generator_ema_decay")
    }
    (tmp_path / "config.json").write_text(json.dumps({"config": old, "steps_per_epoch": 5}))
    record_config(tmp_path, config, 5)  # no error: the missing fields had their defaults
    with pytest.raises(ValueError, match="diff_augment"):
        record_config(tmp_path, TrainingConfig(size=64, steps=10, diff_augment="cutout"), 5)
