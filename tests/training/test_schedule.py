"""How long training runs and how its learning rate moves (invkit.training.schedule), and the
trainer following those rules: auto steps from the budget, validation once per epoch, decay on
a validation plateau, early stopping with the best weights, resume."""

from __future__ import annotations

import pytest
import torch

from invkit.config import TrainConfig
from invkit.errors import ConfigError
from invkit.training import schedule
from invkit.training.schedule import (
    PlateauSchedule,
    check_schedule,
    cosine_lr,
    planned_steps,
    validation_interval,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_explicit_steps_are_kept_whatever_the_budget():
    assert planned_steps(TrainConfig(steps=123), 10) == 123
    assert planned_steps(TrainConfig(steps=123), 10**7) == 123


def test_auto_steps_scale_with_the_budget_between_the_bounds():
    t = TrainConfig(steps=0, batch_size=100)
    # AUTO_EPOCHS epochs of 20 steps
    assert planned_steps(t, 2_000) == schedule.AUTO_EPOCHS * 20
    # tiny budgets: at least the minimum; large ones: at most the cap
    assert planned_steps(t, 10) == schedule.AUTO_MIN_STEPS
    assert planned_steps(t, 10**7) == schedule.AUTO_MAX_STEPS
    # more pairs never plan fewer steps
    plans = [planned_steps(t, n) for n in (10, 1_000, 5_000, 10_000, 10**5, 10**6)]
    assert plans == sorted(plans)


def test_validation_once_per_epoch_on_a_logged_step():
    t = TrainConfig(batch_size=256, log_every=50)
    # 36 steps per epoch: at least MIN_VALIDATION_STEPS, on the log cadence
    assert validation_interval(t, 9_000) == 200 == schedule.MIN_VALIDATION_STEPS
    assert validation_interval(t, 90_000) == 400  # 352 -> 400
    assert validation_interval(TrainConfig(validate_every=7), 90_000) == 7


def test_cosine_goes_from_lr_to_lr_final():
    t = TrainConfig(lr=1e-3, lr_final=1e-5)
    assert cosine_lr(t, 0, 100) == pytest.approx(1e-3)
    assert cosine_lr(t, 50, 100) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert cosine_lr(t, 100, 100) == pytest.approx(1e-5)
    assert cosine_lr(t, 500, 100) == pytest.approx(1e-5)


def test_plateau_decays_after_patience_and_restarts_on_improvement():
    s = PlateauSchedule(TrainConfig(lr=1e-3, lr_decay=0.5, lr_patience=2, lr_final=1e-4))
    assert [s.update(False), s.update(False)] == [False, True]
    assert s.lr == pytest.approx(5e-4)
    s.update(False)
    s.update(True)  # a better loss: the count starts again
    assert [s.update(False), s.update(False)] == [False, True]
    assert s.lr == pytest.approx(2.5e-4)
    for _ in range(20):
        s.update(False)
    assert s.lr == pytest.approx(1e-4)  # never below lr_final
    assert s.decays == 4


def test_plateau_state_round_trips():
    t = TrainConfig(lr=1e-3, lr_patience=1)
    a = PlateauSchedule(t)
    a.update(False)
    b = PlateauSchedule(t)
    b.load_state_dict(a.state_dict())
    assert (b.lr, b.waiting, b.decays) == (a.lr, a.waiting, a.decays)


def test_the_plateau_schedule_without_a_validation_split_is_refused():
    cfg = TrainConfig(lr_schedule="plateau")
    with pytest.raises(ConfigError, match="data.validation"):
        check_schedule(cfg, 0.0)
    check_schedule(cfg, 0.1)  # with a split: fine


def test_early_stopping_and_keep_best_need_no_switching_off_without_a_split():
    """They are on by default; with data.validation=0 they have nothing to watch."""
    check_schedule(TrainConfig(patience=3, keep_best=True), 0.0)


# -- the trainer following the rules -------------------------------------------------------
TINY = {"model.kind": "cinn", "model.n_blocks": 2, "model.subnet_width": 16,
        "data.simulations": 1_000, "data.n_test": 64, "data.validation": 0.2,
        "train.batch_size": 100, "train.log_every": 10, "train.y_noise": 0.0}


def _train(tmp_path, name, **overrides):
    import invkit

    return invkit.train("linear_gaussian", overrides={**TINY, **overrides}, seed=0,
                        device="cpu", out=tmp_path / name, progress=False, evaluate=False,
                        threads=1)


def _history(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["state"]["history"]


def test_auto_steps_and_per_epoch_validation_in_a_run(tmp_path):
    pytest.importorskip("invkit_linear_gaussian")
    r = _train(tmp_path, "auto", **{"train.steps": 0, "train.lr_schedule": "cosine",
                                    "train.patience": 0})
    # 800 training pairs / 100 = 8 steps per epoch, AUTO_EPOCHS of them
    assert r.metrics["steps"] == schedule.AUTO_EPOCHS * 8 > schedule.AUTO_MIN_STEPS
    hist = _history(r.run_dir)
    # one check per epoch (8 steps) is too often: every MIN_VALIDATION_STEPS instead
    checked = [h["step"] for h in hist if "val_loss" in h]
    assert checked[:3] == [200, 400, 600]


def test_plateau_run_decays_stops_early_and_keeps_the_best(tmp_path):
    pytest.importorskip("invkit_linear_gaussian")
    r = _train(tmp_path, "plateau", **{"train.steps": 3000, "train.lr_schedule": "plateau",
                                       "train.lr_patience": 2, "train.patience": 6,
                                       "train.keep_best": True, "train.lr": 3e-3})
    hist = _history(r.run_dir)
    lrs = [h["lr"] for h in hist]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0]  # decayed, never raised
    m = r.metrics
    assert m["steps"] < 3000 and m["stopped_early_step"] == m["steps"]
    assert m["val_best_step"] <= m["steps"]


def test_plateau_run_interrupted_and_resumed_ends_as_an_uninterrupted_one(tmp_path,
                                                                           sigterm_at_step):
    """Stopped by a signal mid-run (after the rate has decayed), then resumed: the same
    weights, rates and validation record as the run that was never stopped."""
    pytest.importorskip("invkit_linear_gaussian")
    from invkit.errors import TrainingInterrupted

    opts = {"train.steps": 300, "train.lr_schedule": "plateau", "train.lr_patience": 1,
            "train.patience": 100, "train.keep_best": True, "train.lr": 3e-3,
            "train.validate_every": 10,
            # the last weights' noisy validation losses make the rate decay early; the weight
            # average's resume is tests/training/test_averaging.py's
            "train.ema": 0.0}
    whole = _train(tmp_path, "whole", **opts)
    with sigterm_at_step(237), pytest.raises(TrainingInterrupted):
        _train(tmp_path, "part", **opts)
    part = tmp_path / "part"
    state = torch.load(part / "model.pt", weights_only=True)["state"]
    assert state["step"] == 237 and state["lr_schedule"]["decays"] >= 1
    from invkit.api import resume

    resume(part, progress=False, evaluate=False, threads=1)
    a = torch.load(whole.run_dir / "model.pt", weights_only=True)["state"]
    b = torch.load(part / "model.pt", weights_only=True)["state"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["lr_schedule"] == b["lr_schedule"]
    assert [h["lr"] for h in a["history"]] == [h["lr"] for h in b["history"]]
    assert a["validation"]["best_step"] == b["validation"]["best_step"]
