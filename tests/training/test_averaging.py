"""train.ema: the moving average of the weights, what uses it, and resuming with it."""

from __future__ import annotations

import pytest
import torch

from invkit.training.averaging import WARMUP, WeightAverage


def _params():
    return {"a": torch.nn.Parameter(torch.zeros(3)), "b": torch.nn.Parameter(torch.ones(2, 2))}


def test_the_average_follows_the_weights_with_a_warm_up_then_the_decay():
    params = _params()
    avg = WeightAverage(params, decay=0.9)
    expected = params["a"].detach().clone()
    for t in range(400):
        with torch.no_grad():
            params["a"].add_(1.0)
        d = min(0.9, (1 + t) / (WARMUP + t))
        expected = d * expected + (1 - d) * params["a"].detach()
        avg.update()
    assert torch.allclose(avg.shadow[0], expected)
    # late in training it lags the weights by about decay / (1 - decay) steps
    assert 8.0 < float(params["a"].detach()[0] - avg.shadow[0][0]) < 10.0


def test_applied_swaps_the_average_in_and_the_weights_back():
    params = _params()
    avg = WeightAverage(params, decay=0.5)
    with torch.no_grad():
        params["a"].fill_(4.0)
    avg.update()
    inside = None
    with avg.applied():
        inside = params["a"].detach().clone()
    assert not torch.equal(inside, params["a"].detach())
    assert torch.equal(inside, avg.shadow[0])
    assert torch.equal(params["a"].detach(), torch.full((3,), 4.0))


def test_state_round_trips_by_name_and_a_mismatch_is_refused():
    params = _params()
    avg = WeightAverage(params, decay=0.99)
    with torch.no_grad():
        params["b"].mul_(3.0)
    avg.update()
    state = avg.state_dict()
    assert set(state["weights"]) == {"a", "b"}
    other = WeightAverage(_params(), decay=0.99)
    other.load_state_dict(state)
    assert other.updates == 1 and torch.equal(other.shadow[1], avg.shadow[1])
    with pytest.raises(ValueError, match="does not fit"):
        WeightAverage({"c": torch.nn.Parameter(torch.zeros(1))}, 0.99).load_state_dict(state)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_params(), decay=1.0)


# -- in a run --------------------------------------------------------------------------------
TINY = {"model.kind": "cinn", "model.n_blocks": 2, "model.subnet_width": 16,
        "data.simulations": 1_000, "data.n_test": 64, "data.validation": 0.2,
        "train.batch_size": 100, "train.log_every": 10, "train.y_noise": 0.0,
        "train.steps": 200, "train.validate_every": 20, "train.patience": 0}


def _train(tmp_path, name, **overrides):
    import invkit

    pytest.importorskip("invkit_linear_gaussian")
    return invkit.train("linear_gaussian", overrides={**TINY, **overrides}, seed=0,
                        device="cpu", out=tmp_path / name, progress=False, evaluate=False,
                        threads=1)


def _state(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["state"]


@pytest.mark.parametrize("keep_best", [False, True])
def test_the_saved_model_is_the_average_the_validation_scored(tmp_path, keep_best):
    from invkit.api import resolve
    from invkit.loading import load_run
    from invkit.training.data import generate
    from invkit.training.objectives import build_objective
    from invkit.training.validation import Validation

    opts = {"train.ema": 0.9, "train.keep_best": keep_best}
    r = _train(tmp_path, f"kb{keep_best}", **opts)
    state = _state(r.run_dir)
    if not keep_best:  # the last average
        for name, value in state["weight_average"]["weights"].items():
            assert torch.equal(state["model"][name], value), name
    # the saved model's validation loss is the one the trainer saw: the last check's, or the
    # best check's with keep_best (so the checks scored the average, not the raw weights)
    posterior, cfg, _ = load_run(r.run_dir)
    _, prob = resolve("linear_gaussian", "default", {**TINY, **opts}, seed=0)
    data = generate(prob, cfg.data, cfg.seed, torch.device("cpu"))
    data.split_validation(cfg.data.validation)
    val = Validation(data.x_val, data.y_val, cfg.train.batch_size, cfg.seed + 5)
    seen = (r.metrics["val_loss_best"] if keep_best
            else [h["val_loss"] for h in state["history"] if "val_loss" in h][-1])
    assert val.loss(build_objective(cfg, posterior.model, prob)) == pytest.approx(seen, rel=1e-5)


def test_without_ema_the_run_is_what_it_was(tmp_path):
    """train.ema = 0 leaves no trace: the presets that pin it keep their figures."""
    r = _train(tmp_path, "off", **{"train.ema": 0.0})
    assert "weight_average" not in _state(r.run_dir)


def test_interrupted_and_resumed_ends_as_an_uninterrupted_run(tmp_path, sigterm_at_step):
    from invkit.api import resume
    from invkit.errors import TrainingInterrupted
    from invkit.loading import load_posterior

    opts = {"train.ema": 0.9, "train.keep_best": True}
    whole = _train(tmp_path, "whole", **opts)
    with sigterm_at_step(137), pytest.raises(TrainingInterrupted):
        _train(tmp_path, "part", **opts)
    part = tmp_path / "part"
    state = _state(part)
    assert state["step"] == 137 and state["weight_average"]["updates"] == 137
    # the unfinished run is sampled with its average, not its raw weights
    with pytest.warns(Warning, match="unfinished"):
        model = load_posterior(part).model
    for name, value in state["weight_average"]["weights"].items():
        assert torch.equal(model.state_dict()[name], value), name
    assert any(not torch.equal(state["model"][n], v)
               for n, v in state["weight_average"]["weights"].items())
    resume(part, progress=False, evaluate=False, threads=1)
    a, b = _state(whole.run_dir), _state(part)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["validation"]["best_step"] == b["validation"]["best_step"]


def test_restart_starts_the_average_at_the_current_weights():
    """What resuming a checkpoint written without train.ema does."""
    params = _params()
    avg = WeightAverage(params, decay=0.9)
    with torch.no_grad():
        params["b"].fill_(7.0)
    avg.update()
    assert not torch.equal(avg.shadow[1], params["b"].detach())
    avg.restart()
    assert avg.updates == 0 and torch.equal(avg.shadow[1], params["b"].detach())
