"""Per-feature input normalisation: build_mlp(input_norm=(means, stds)) and feature_norm."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fcnet import Trainer, build_mlp, load_model, save_model
from fcnet import _mlp_step as mlp_step
from fcnet.data import ArrayDataset, feature_norm
from fcnet.export import ExportableModel
from fcnet.models import MLPSpec


@pytest.fixture
def table():
    """Features on very different scales (ages, incomes, a flag, a constant)."""
    rng = np.random.default_rng(0)
    n = 300
    x = np.stack([rng.uniform(20, 80, n), rng.normal(5e4, 2e4, n), rng.integers(0, 2, n),
                  np.full(n, 7.0)], axis=1)
    y = ((x[:, 0] > 50).astype(int) + (x[:, 1] > 5e4).astype(int))
    return x, y


def test_feature_norm_is_the_columns_mean_and_std(table):
    x, _ = table
    mean, std = feature_norm(x)
    seen = x.astype(np.float32).astype(np.float64)  # float64 inputs reach models as float32
    np.testing.assert_allclose(mean, seen.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std[:3], seen.std(0)[:3], rtol=1e-12)
    assert std[3] == 1.0  # a constant feature is only centred, as StandardScaler does
    assert all(type(v) is float for v in mean + std)
    frame = pd.DataFrame(x, columns=["age", "income", "owner", "const"])
    assert feature_norm(frame) == (mean, std)
    assert feature_norm(ArrayDataset(x, np.zeros(len(x), int))) == (mean, std)


def test_feature_norm_of_pixels_is_in_the_units_the_model_normalises():
    images = torch.zeros(4, 2, 2, dtype=torch.uint8)
    images[:, 0, 0] = torch.tensor([0, 255, 0, 255], dtype=torch.uint8)
    mean, std = feature_norm(images)
    assert mean == (0.5, 0.0, 0.0, 0.0) and std == (0.5, 1.0, 1.0, 1.0)
    # Float images are taken as they are.
    assert feature_norm(images.float())[0][0] == 127.5


def test_per_feature_norm_standardises_the_inputs(table):
    x, _ = table
    mean, std = feature_norm(x)
    normed = build_mlp([4, 16, 3], input_norm=(mean, std), seed=0).eval()
    plain = build_mlp([4, 16, 3], seed=0).eval()
    xt = torch.tensor(x, dtype=torch.float32)
    by_hand = (xt - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std,
                                                                          dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(normed(xt), plain(by_hand), atol=1e-5)
        assert torch.allclose(normed.input(xt).mean(0)[:3], torch.zeros(3), atol=1e-4)
    assert normed.input.mean.shape == (4,) and normed.input.std.shape == (4,)
    assert "mean=per-feature (4)" in repr(normed)
    # One number for every feature still works, with 0-d buffers, next to a sequence.
    mixed = build_mlp([4, 3], input_norm=(0.0, std), seed=0)
    assert mixed.input.mean.shape == () and mixed.input.std.shape == (4,)


def test_a_per_feature_model_trains_saves_and_loads(table, tmp_path):
    x, y = table
    model = build_mlp([4, 32, 3], dropout=0.1, input_norm=feature_norm(x), seed=0)
    trainer = Trainer(model, lr=3e-3, epochs=15, batch_size=32, seed=0, progress=False)
    trainer.fit((x, y))
    assert trainer.history.meta["step"] == "fused"
    assert trainer.evaluate((x, y))["accuracy"] > 0.9
    unnormed = Trainer(build_mlp([4, 32, 3], dropout=0.1, seed=0), lr=3e-3, epochs=15,
                       batch_size=32, seed=0, progress=False)
    unnormed.fit((x, y))
    assert trainer.evaluate((x, y))["accuracy"] > unnormed.evaluate((x, y))["accuracy"]
    save_model(model, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())["spec"]
    assert len(spec["input_norm"][0]) == 4 and len(spec["input_norm"][1]) == 4
    back = load_model(tmp_path / "m")
    assert back.spec == model.spec
    xt = torch.tensor(x, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(back.eval()(xt), model.eval()(xt))
        assert torch.equal(ExportableModel(back)(xt), back(xt))
    assert MLPSpec.from_dict(json.loads(json.dumps(model.spec.to_dict()))) == model.spec


def test_the_fused_step_normalises_per_feature_as_the_model_does(table):
    x, y = table
    model = build_mlp([4, 16, 3], dropout=0.2, input_norm=feature_norm(x), seed=0)
    trainer = Trainer(model, epochs=1, batch_size=32, seed=0, progress=False)
    trainer.fit((x, y))
    plan = mlp_step.plan(model, trainer.optimizer, loss="cross_entropy", label_smoothing=0.0,
                         device=torch.device("cpu"))
    step = mlp_step.MLPStep(plan, trainer.optimizer, precision="fp32", label_smoothing=0.0,
                            batch_size=32, seed=0)
    xb, yb = torch.tensor(x[:32], dtype=torch.float32), torch.tensor(y[:32])
    _, outputs, saved = step.forward_loss(xb, yb, None, None, 0, 0)
    with torch.no_grad():
        assert torch.allclose(saved[3][0], model.input(xb), atol=1e-6)
    step.release()


@pytest.mark.parametrize(("norm", "error", "message"), [
    (([1.0, 2.0, 3.0], 1.0), ValueError,
     r"input_norm's mean has 3 values, but the model has 4 input features"),
    ((0.0, [1.0, 1.0, 0.0, 1.0]), ValueError,
     r"std must be finite and > 0, got 0.0 for feature 2: a constant feature has std 0; "
     r"use 1 for it, e.g. np.where\(std > 0, std, 1\), or compute both with "
     r"fcnet.data.feature_norm"),
    ((0.0, [0.0, np.nan, 1.0, -1.0]), ValueError, r"got 0.0 for feature 0 \(and 2 more\)"),
    (([0.0, np.inf, 0.0, 0.0], 1.0), ValueError, r"mean must be finite, got inf for feature 1"),
    (("abc", 1.0), TypeError, r"input_norm's mean must be a number or one number per input"),
    ((0.0, {"std": 1}), TypeError, r"input_norm's std must be a number or one number per"),
    (np.array([0.0, 1.0]), TypeError, r"input_norm must be None or a pair \(mean, std\)"),
])
def test_bad_per_feature_norms_name_the_feature(norm, error, message):
    with pytest.raises(error, match=message):
        build_mlp([4, 3], input_norm=norm)


def test_feature_norm_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match="NaN or infinite"):
        feature_norm(np.array([[1.0, np.nan]]))
    with pytest.raises(TypeError, match="numeric dtype"):
        feature_norm(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="empty"):
        feature_norm(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"\(N, features\) inputs, got shape \(5,\); a single "
                       r"feature is x.reshape\(-1, 1\)"):
        feature_norm(np.zeros(5))


def test_fcnet_info_shows_per_feature_norms(table, tmp_path, capsys):
    from fcnet.cli import main

    x, _ = table
    save_model(build_mlp([4, 3], input_norm=feature_norm(x), seed=0), tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("preprocessing"))
    mean, std = feature_norm(x)
    assert line.endswith(f"then (x - per-feature {min(mean):g}..{max(mean):g}) / per-feature "
                         f"{min(std):g}..{max(std):g}")


def test_zero_dimensional_statistics_are_one_value_for_all_features():
    x = torch.rand(50, 4, generator=torch.Generator().manual_seed(0))
    model = build_mlp([4, 3], input_norm=(x.mean(), x.std()), seed=0)
    assert model.spec.input_norm == (float(x.mean()), float(x.std()))
    assert model.input.mean.shape == ()
    assert build_mlp([4, 3], input_norm=(np.float32(0.5), np.array(0.25))).spec.input_norm \
        == (0.5, 0.25)
