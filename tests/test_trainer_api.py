"""The Trainer's public hooks and state: subclasses, continued fits, the caller's RNG,
the input rule, and the clear errors a new user meets."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnet import (
    Callback,
    DisableAugmentation,
    EarlyStopping,
    GradientClipping,
    HistoryLogger,
    Trainer,
    TrainerConfig,
    build_mlp,
    load_model,
    save_model,
)
from fcnet.schedules import OneCycle


def _images(n=64, seed=2):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randint(0, 60, (n, 8, 8), generator=g, dtype=torch.uint8)
    x[torch.arange(n), y * 2, :] = 250  # the label is a bright row
    return x, y


# ---------------------------------------------------------------- a trick is a subclass
def test_a_custom_loss_is_a_short_subclass(blobs):
    class PenalisedTrainer(Trainer):
        def compute_loss(self, outputs, targets):
            return super().compute_loss(outputs, targets) + 1e-2 * outputs.pow(2).mean()

    x, y = blobs
    plain = Trainer(build_mlp([8, 3], seed=0), epochs=1, seed=0, progress=False)
    custom = PenalisedTrainer(build_mlp([8, 3], seed=0), epochs=1, seed=0, progress=False)
    a, b = plain.fit((x, y)), custom.fit((x, y))
    assert b[0]["train_loss"] > a[0]["train_loss"]  # the penalty is in the reported loss
    out = custom.model(x)
    assert custom.evaluate((x, y))["loss"] == pytest.approx(
        (F.cross_entropy(out, y) + 1e-2 * out.pow(2).mean()).item(), rel=1e-5)


def test_a_custom_step_is_a_short_subclass(blobs):
    class MixupTrainer(Trainer):  # mixup (Zhang et al., 2018) as a subclass
        def train_step(self, inputs, targets):
            lam = float(torch.distributions.Beta(0.4, 0.4).sample())
            perm = torch.randperm(len(targets))
            outputs = self.forward(lam * inputs + (1 - lam) * inputs[perm])
            loss = lam * self.compute_loss(outputs, targets) + (1 - lam) * self.compute_loss(
                outputs, targets[perm])
            self.backward(loss)
            self.optimizer_step()
            return loss.detach(), None  # no train_accuracy on mixed inputs

    x, y = blobs
    runs = [MixupTrainer(build_mlp([8, 16, 3], seed=0), lr=1e-2, epochs=4, seed=5,
                         progress=False).fit((x, y)) for _ in range(2)]
    assert runs[0].column("train_loss") == runs[1].column("train_loss")  # seeded draws
    assert runs[0][-1]["train_loss"] < runs[0][0]["train_loss"]
    assert runs[0][-1]["train_accuracy"] == 0.0  # no outputs were returned


def test_on_after_backward_sees_the_gradients_and_gradient_clipping_bounds_them(blobs):
    norms = []

    class Norm(Callback):
        def on_after_backward(self, trainer):
            grads = [p.grad for p in trainer.model.parameters()]
            norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    x, y = blobs
    Trainer(build_mlp([8, 16, 3], seed=0), lr=1.0, epochs=1, batch_size=50, progress=False,
            callbacks=[GradientClipping(0.05), Norm()]).fit((x * 100, y))
    assert len(norms) == 6 and max(norms) <= 0.05 + 1e-6
    with pytest.raises(ValueError, match=r"max_norm must be a finite number > 0, got 0"):
        GradientClipping(0)


def test_disable_augmentation_turns_augment_off_for_the_last_epochs():
    x, y = _images(40)
    calls = []

    def flip(batch, generator):
        calls.append(len(batch))
        return batch.flip(-1)

    per_epoch = []

    class Count(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            per_epoch.append(len(calls))

    trainer = Trainer(build_mlp([64, 16, 4], seed=0), epochs=4, batch_size=10, seed=0,
                      augment=flip, callbacks=[DisableAugmentation(2), Count()], progress=False)
    trainer.fit((x, y))
    assert per_epoch == [4, 8, 8, 8]  # four batches an epoch, augmented in epochs 1-2
    trainer.fit((x, y))  # a second fit augments its own first epochs again
    assert per_epoch[4:] == [12, 16, 16, 16]
    no_augment = Trainer(build_mlp([64, 4]), epochs=4, progress=False,
                         callbacks=[DisableAugmentation(2)])
    too_many = Trainer(build_mlp([64, 4]), epochs=2, augment=flip, progress=False,
                       callbacks=[DisableAugmentation(2)])
    for bad, match in ((no_augment, "needs a Trainer with augment"),
                       (too_many, r"below the Trainer's epochs")):
        with pytest.raises(ValueError, match=match):
            bad.fit((x, y))


def test_augment_on_flat_inputs_says_how_to_pass_images():
    x, y = _images(20)
    trainer = Trainer(build_mlp([64, 4]), augment=lambda b, g: b, progress=False)
    with pytest.raises(ValueError, match=r"augment works on images.*X.reshape\(-1, 28, 28\)"):
        trainer.fit((x.reshape(20, 64), y))


def test_an_augment_setting_the_data_cannot_take_is_refused_before_training():
    from fcnet.data import RandomErasing

    x, y = _images(20)
    model = build_mlp([64, 4], seed=0)
    trainer = Trainer(model, augment=RandomErasing(value=300), progress=False)
    with pytest.raises(ValueError, match=r"augment cannot take the train inputs "
                                         r"\(torch.uint8, .*value must be an integer in "
                                         r"\[0, 255\]"):
        trainer.fit((x, y))
    assert trainer.optimizer is None and model.spec.input_dtype is None


# ---------------------------------------------------------------- configuration
def test_from_config_equals_keyword_arguments(blobs):
    config = TrainerConfig(optimizer="adamw", lr=1e-2, weight_decay=0.01, epochs=2,
                           batch_size=32, label_smoothing=0.1, scheduler=OneCycle(pct_start=0.2),
                           seed=3)
    assert TrainerConfig.from_dict(config.to_dict()) == config
    x, y = blobs
    a = Trainer.from_config(build_mlp([8, 3], seed=0), config, progress=False).fit((x, y))
    b = Trainer(build_mlp([8, 3], seed=0), optimizer="adamw", lr=1e-2, weight_decay=0.01,
                epochs=2, batch_size=32, label_smoothing=0.1, scheduler=OneCycle(pct_start=0.2),
                seed=3, progress=False).fit((x, y))
    assert a.column("train_loss") == b.column("train_loss")


def test_numpy_integers_are_accepted_everywhere(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), seed=np.int64(3), epochs=np.int64(1),
                      batch_size=np.int32(32), progress=False)
    trainer.fit((x, y))
    assert trainer.seed_used == 3 and isinstance(trainer.config.seed, int)


# ---------------------------------------------------------------- continuing and seeds
def test_a_second_fit_continues_and_reset_starts_over(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 16, 3], seed=0), lr=1e-2, epochs=2, seed=0, progress=False)
    trainer.fit((x, y))
    optimizer = trainer.optimizer
    steps = int(next(iter(optimizer.state.values()))["step"])
    trainer.fit((x, y))
    assert [e["epoch"] for e in trainer.history] == [1, 2, 3, 4] and trainer.epoch == 4
    assert trainer.optimizer is optimizer  # Adam's moments and step count go on
    assert int(next(iter(optimizer.state.values()))["step"]) == 2 * steps
    # Two fits of 2 epochs equal one fit of 4 (same seed, same start).
    once = Trainer(build_mlp([8, 16, 3], seed=0), lr=1e-2, epochs=4, seed=0, progress=False)
    once.fit((x, y))
    for k, v in once.model.state_dict().items():
        assert torch.equal(v, trainer.model.state_dict()[k]), k
    trainer.fit((x, y), reset=True)
    assert [e["epoch"] for e in trainer.history] == [1, 2]
    assert trainer.optimizer is not optimizer


def test_a_fit_refused_by_a_callback_leaves_the_trainer_and_model_as_they_were(blobs):
    x, y = blobs
    model = build_mlp([8, 16, 3], seed=0)
    trainer = Trainer(model, epochs=2, seed=0, progress=False,
                      callbacks=[EarlyStopping("val_loss")])
    # A first fit refused: the model records no training input, no seed is taken.
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_loss' but fit\(\) "
                                         r"got no validation data"):
        trainer.fit((x, y))
    assert model.spec.input_dtype is None and trainer.seed_used is None
    assert trainer.optimizer is None and len(trainer.history) == 0
    with pytest.warns(UserWarning, match="the model has not been trained"):
        trainer.predict(x[:2])
    # After a real fit, a refused reset fit keeps its history, optimizer and position.
    held = trainer.fit((x, y), (x[:30], y[:30]))
    optimizer, history = trainer.optimizer, trainer.history.to_dict()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_loss'"):
        trainer.fit((x, y), reset=True)
    assert trainer.optimizer is optimizer and trainer.history.to_dict() == history
    assert trainer.history is held  # the History object the caller holds, as it was
    assert trainer.epoch == 2 and trainer.final_epoch == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    # and the next fit continues from there.
    trainer.fit((x, y), (x[:30], y[:30]))
    assert [e["epoch"] for e in trainer.history] == [1, 2, 3, 4]


def test_fit_leaves_the_callers_random_state_alone(blobs):
    x, y = blobs
    model = build_mlp([8, 16, 3], dropout=0.3)
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    trainer = Trainer(model, epochs=2, seed=0, progress=False)
    trainer.fit((x, y))
    trainer.predict(x[:4])
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])
    # A random search around repeated seeded fits draws new values every trial.
    lrs = []
    for _ in range(3):
        lrs.append(10 ** np.random.uniform(-4, -1))
        Trainer(build_mlp([8, 3]), lr=lrs[-1], epochs=1, seed=0, progress=False).fit((x, y))
    assert len(set(lrs)) == 3


def test_build_mlp_seed_fixes_the_weights_without_touching_the_global_generator():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a, b = build_mlp([8, 16, 3], seed=1), build_mlp([8, 16, 3], seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(build_mlp([8, 16, 3], seed=2).hidden1.weight, a.hidden1.weight)
    with pytest.raises(ValueError, match=r"seed must be >= 0"):
        build_mlp([8, 3], seed=-1)


# ---------------------------------------------------------------- the input rule
def test_the_same_pixels_predict_the_same_in_every_integer_dtype():
    x, y = _images(64)
    trainer = Trainer(build_mlp([64, 16, 4], seed=0), lr=1e-2, epochs=5, seed=0,
                      progress=False)
    trainer.fit((x, y))
    assert trainer.model.spec.input_dtype == "uint8"
    reference = trainer.predict_proba(x)
    for dtype in (torch.int64, torch.int32, torch.int16):
        torch.testing.assert_close(trainer.predict_proba(x.to(dtype)), reference)
    torch.testing.assert_close(trainer.predict_proba(x.numpy().astype(np.int64)), reference)
    torch.testing.assert_close(trainer.predict_proba(x.float() / 255), reference)
    with pytest.raises(ValueError, match=r"trained on uint8 pixels.*values in \[0, 300\]"):
        trainer.predict(torch.tensor([[0] * 64, [300] * 64]))
    # Float pixels in [0, 255] are far outside the [0, 1] the model saw: a warning.
    with pytest.warns(UserWarning, match=r"far outside the range the model was trained on"):
        trainer.predict(x.float())
    with pytest.warns(UserWarning, match=r"far outside the range the model was trained on"):
        trainer.evaluate((x.float(), y))  # a wrong loss and accuracy: said, as in predict


def test_integer_feature_columns_are_numbers_not_pixels():
    g = torch.Generator().manual_seed(0)
    ages = torch.randint(18, 90, (200, 1), generator=g)
    counts = torch.randint(0, 1000, (200, 1), generator=g)
    x = torch.cat([ages, counts], 1)  # int64 features: never divided by 255
    y = (ages[:, 0] > 50).long()
    trainer = Trainer(build_mlp([2, 8, 2], input_norm=(50.0, 30.0), seed=0), epochs=2,
                      progress=False, seed=0)
    trainer.fit((x, y))
    assert trainer.model.spec.input_dtype == "int64" and not trainer.model.spec.pixels
    torch.testing.assert_close(trainer.predict_proba(x), trainer.predict_proba(x.float()))


def test_a_model_trained_on_integer_pixels_reads_uint8_as_the_same_numbers(tmp_path):
    x, y = _images(64)
    wide = x.to(torch.int64)  # pixel values as a CSV reader gives them
    trainer = Trainer(build_mlp([64, 16, 4], input_norm=(60.0, 80.0), seed=0), lr=1e-2,
                      epochs=3, seed=0, progress=False)
    trainer.fit((wide, y))
    spec = trainer.model.spec
    assert spec.input_dtype == "int64" and spec.integer_features and not spec.pixels
    reference = trainer.predict_proba(wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor is uint8 "far inside" the training range
        for same in (x, wide.to(torch.int32), wide.float(), x.numpy()):
            torch.testing.assert_close(trainer.predict_proba(same), reference)
    # A saved and loaded model reads them alike.
    loaded = load_model(save_model(trainer.model, tmp_path / "m"))
    torch.testing.assert_close(torch.softmax(loaded(x), 1), reference)
    # A later fit on uint8 batches trains as on the int64 ones: fcnet's own step and
    # autograd's read them as numbers, as the model does.
    results = []
    for fused in (True, False):
        again = Trainer(load_model(tmp_path / "m"), lr=1e-2, epochs=2, seed=1,
                        progress=False)
        again.fused_step = fused
        again.fit((x, y))
        results.append(again.model.state_dict())
    for key, value in results[0].items():
        torch.testing.assert_close(value, results[1][key], atol=1e-6, rtol=1e-5)
    on_wide = Trainer(load_model(tmp_path / "m"), lr=1e-2, epochs=2, seed=1, progress=False)
    on_wide.fit((wide, y))
    for key, value in on_wide.model.state_dict().items():
        torch.testing.assert_close(value, results[0][key], atol=1e-6, rtol=1e-5)


def test_one_feature_given_flat_gets_the_reshape_hint():
    x = torch.linspace(-1, 1, 40)
    with pytest.raises(ValueError, match=r"have 40 features per sample .* expects 1; if "
                                         r"these are 40 samples of one feature, give them "
                                         r"as a column: X.reshape\(-1, 1\)"):
        Trainer(build_mlp([1, 4, 2]), progress=False).fit((x, (x > 0).long()))


def test_predict_before_fit_warns_once():
    trainer = Trainer(build_mlp([4, 3]), progress=False)
    with pytest.warns(UserWarning, match=r"has not been trained"):
        trainer.predict(torch.zeros(2, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.predict(torch.zeros(2, 4))


# ---------------------------------------------------------------- clear errors
def test_nll_on_a_logits_model_is_refused_before_training(blobs):
    x, y = blobs
    with pytest.raises(ValueError, match=r"loss='nll' needs log-probabilities"):
        Trainer(build_mlp([8, 3]), loss="nll", progress=False).fit((x, y))
    with pytest.raises(ValueError, match=r"loss='nll' needs log-probabilities"):
        Trainer(nn.Linear(8, 3), loss="nll", progress=False).fit((x, y))
    Trainer(nn.Sequential(nn.Linear(8, 3), nn.LogSoftmax(1)), loss="nll", epochs=1,
            progress=False).fit((x, y))


def test_one_output_asks_for_one_output_per_class(blobs):
    x, y = blobs
    with pytest.raises(ValueError, match=r"one output per class \(2 for a binary problem"):
        Trainer(build_mlp([8, 4, 1]), progress=False).fit((x, y % 2))


def test_a_model_returning_a_tuple_says_what_it_must_return(blobs):
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 3)

        def forward(self, x):
            out = self.linear(x)
            return out, out

    x, y = blobs
    with pytest.raises(TypeError, match=r"must return a tensor of \(N, classes\) scores, got a "
                                        r"tuple"):
        Trainer(Pair(), progress=False).fit((x, y))


def test_scikit_learn_style_fit_gets_a_hint(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), progress=False)
    for inputs, labels in ((x.numpy(), y.numpy()), (x.tolist(), y.tolist()),
                           (x.numpy(), y.tolist()), (x, y)):
        with pytest.raises(TypeError, match=r"did you mean fit\(\(X, y\)\)"):
            trainer.fit(inputs, labels)
    # Lists of two or three are (X, y[, w]) pairs, as tuples are.
    w = torch.ones(len(y))
    history = trainer.fit([x, y, w], [x[:30], y[:30], w[:30]])
    assert "val_loss" in history[-1]
    with pytest.raises(TypeError, match=r"val is the validation data, got the number 0.2; "
                                        r".*train_val_split\(\(X, y\), 0.2\)"):
        trainer.fit((x, y), 0.2)  # Keras' validation_split


def test_batch_norm_survives_a_one_sample_last_batch(blobs):
    x, y = blobs  # 300 samples
    trainer = Trainer(build_mlp([8, 16, 3], norm="batch"), epochs=2, batch_size=299,
                      progress=False)
    history = trainer.fit((x, y))
    assert trainer.batches_per_epoch == 1 and len(history) == 2
    assert "dropped_tail" in history.meta


def test_batch_norm_refuses_one_sample_batches_before_training(blobs):
    x, y = blobs
    for batch_size, n in ((1, 300), (64, 1)):
        model = build_mlp([8, 16, 3], norm="batch", seed=0)
        trainer = Trainer(model, batch_size=batch_size, progress=False)
        with pytest.raises(ValueError, match=rf"BatchNorm \(norm='batch'\), which needs at "
                                             rf"least 2 samples per batch, but "
                                             rf"batch_size={batch_size} and train has {n} "
                                             rf"samples; use a batch_size >= 2"):
            trainer.fit((x[:n], y[:n]))
        assert model.spec.input_dtype is None


@pytest.mark.parametrize("activation", ["relu", "tanh"])  # fcnet's own step, and autograd's
def test_fit_trains_under_a_callers_no_grad(blobs, activation):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 16, 3], activation=activation, seed=0), epochs=2,
                      seed=0, progress=False)
    with torch.no_grad():
        history = trainer.fit((x, y))
        assert not torch.is_grad_enabled()
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_float64_default_dtype_changes_nothing(activation):
    from fcnet.data import Compose, RandomErasing, RandomFlip, RandomShift

    x, y = _images()
    augment = Compose([RandomFlip(), RandomShift(1), RandomErasing(p=0.5)])

    def run():
        model = build_mlp([64, 16, 4], activation=activation, norm="layer", seed=0)
        trainer = Trainer(model, epochs=2, batch_size=16, seed=0, augment=augment,
                          progress=False)
        trainer.fit((x, y), (x[:16], y[:16]))
        return model, trainer.predict_proba(x)

    model32, proba32 = run()
    torch.set_default_dtype(torch.float64)
    try:
        model64, proba64 = run()
        assert torch.get_default_dtype() == torch.float64  # left as the caller set it
    finally:
        torch.set_default_dtype(torch.float32)
    assert {v.dtype for v in model64.state_dict().values()} == {torch.float32}
    for k, v in model32.state_dict().items():
        assert torch.equal(v, model64.state_dict()[k]), k
    assert torch.equal(proba32, proba64)


def test_a_replaced_head_is_refused_with_the_mismatch(blobs):
    x, y = blobs
    model = build_mlp([8, 16, 3])
    model.output = nn.Linear(16, 5)
    with pytest.raises(ValueError, match=r"model.spec no longer describes.*output.weight"):
        Trainer(model, progress=False).fit((x, y))


def test_history_logger_checks_its_path_before_training(blobs, tmp_path):
    x, y = blobs
    for path, match in ((tmp_path / "missing" / "h.csv", "does not exist"),
                        (tmp_path, "")):
        if path == tmp_path:
            path = tmp_path / "folder.csv"
            path.mkdir()
            match = "is a folder"
        trainer = Trainer(build_mlp([8, 3]), progress=False, callbacks=[HistoryLogger(path)])
        with pytest.raises(ValueError, match=match):
            trainer.fit((x, y))
        assert trainer.epoch == 0


# ---------------------------------------------------------------- class and sample weights
def _imbalanced(n_major=270, n_minor=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randn(n_major, 2, generator=g) + torch.tensor([0.0, 0.0]),
                   torch.randn(n_minor, 2, generator=g) + torch.tensor([1.5, 1.5])])
    y = torch.cat([torch.zeros(n_major), torch.ones(n_minor)]).long()
    return x, y


def _minority_recall(trainer, x, y):
    pred = trainer.predict(x)
    return float((pred[y == 1] == 1).float().mean())


def test_balanced_class_weight_raises_minority_recall():
    x, y = _imbalanced()
    recalls = {}
    for cw in (None, "balanced"):
        trainer = Trainer(build_mlp([2, 16, 2], seed=0), lr=1e-2, epochs=20, batch_size=32,
                          class_weight=cw, seed=0, progress=False)
        trainer.fit((x, y))
        recalls[cw] = _minority_recall(trainer, x, y)
    assert recalls["balanced"] > recalls[None] + 0.2
    assert torch.allclose(trainer.class_weights, torch.tensor([300 / 540, 300 / 60]))


def test_sample_weights_train_and_weigh_the_reported_loss():
    x, y = _imbalanced()
    w = torch.where(y == 1, 9.0, 1.0)
    trainer = Trainer(build_mlp([2, 16, 2], seed=0), lr=1e-2, epochs=20, batch_size=32, seed=0,
                      progress=False)
    trainer.fit((x, y, w))
    assert _minority_recall(trainer, x, y) > 0.6
    with torch.no_grad():
        per = F.cross_entropy(trainer.model.eval()(x), y, reduction="none")
    weighted = float((per * w).sum() / w.sum())
    assert trainer.evaluate((x, y, w))["loss"] == pytest.approx(weighted, rel=1e-5)
    assert trainer.evaluate((x, y))["loss"] == pytest.approx(float(per.mean()), rel=1e-5)
    # Weights of 1 train exactly as no weights.
    a = Trainer(build_mlp([2, 8, 2], seed=1), epochs=2, seed=0, progress=False).fit((x, y))
    b = Trainer(build_mlp([2, 8, 2], seed=1), epochs=2, seed=0, progress=False).fit(
        (x, y, torch.ones(len(y))))
    assert a.column("train_loss") == pytest.approx(b.column("train_loss"), rel=1e-6)


@pytest.mark.parametrize(("w", "match"), [
    (torch.ones(5), r"300 samples but 5 sample weights"),
    (-torch.ones(300), r"finite and >= 0"),
    (torch.zeros(300), r"with one > 0"),
    (torch.ones(300, 2), r"1-D, one per sample"),
])
def test_bad_sample_weights_are_refused(w, match):
    x, y = _imbalanced()
    with pytest.raises(ValueError, match=match):
        Trainer(build_mlp([2, 2]), progress=False).fit((x, y, w))


def test_class_weight_values_are_checked():
    with pytest.raises(TypeError, match=r"class_weight must be None, 'balanced' or a sequence"):
        Trainer(build_mlp([2, 2]), class_weight={0: 1.0})
    with pytest.raises(ValueError, match=r"class_weight has 3 weights, but the model has 2"):
        Trainer(build_mlp([2, 2]), class_weight=[1, 2, 3], progress=False).fit(_imbalanced())


def test_predict_scores_are_the_models_raw_outputs(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 16, 3], dropout=0.5, seed=0), epochs=1, seed=0,
                      progress=False)
    trainer.fit((x, y))
    trainer.eval_batch_size = 7  # several batches
    scores = trainer.predict_scores(x)
    with torch.no_grad():
        torch.testing.assert_close(scores, trainer.model.eval()(x))
    torch.testing.assert_close(torch.softmax(scores, 1), trainer.predict_proba(x))
    assert scores.device.type == "cpu" and scores.dtype == torch.float32


def test_a_plain_module_given_inputs_it_cannot_take_gets_a_value_error():
    trainer = Trainer(nn.Sequential(nn.Linear(8, 3)), progress=False)
    with pytest.raises(ValueError, match=r"x inputs of shape \(4, 5\) do not fit the model"):
        trainer.predict(torch.zeros(4, 5))
    assert trainer.predict(torch.zeros(4, 8)).shape == (4,)


def test_the_logged_learning_rate_is_the_one_the_epochs_last_step_took(blobs):
    x, y = blobs
    used = []

    class Record(Callback):
        def on_batch_begin(self, trainer, batch):
            used.append(trainer.optimizer.param_groups[0]["lr"])

    for scheduler in ("onecycle", None):
        used.clear()
        trainer = Trainer(build_mlp([8, 16, 3], seed=0), epochs=3, batch_size=150, seed=0,
                          scheduler=scheduler, callbacks=[Record()], progress=False)
        history = trainer.fit((x, y))  # 300 samples: two steps an epoch
        assert [e["lr"] for e in history] == used[1::2], scheduler
