"""Trainer: learning, reproducibility, input forms, predictions and input validation."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from torch import nn

from fcnet import (
    Callback,
    EarlyStopping,
    GradientClipping,
    NonFiniteLossError,
    Trainer,
    build_mlp,
)
from fcnet.data import ArrayDataset


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_goes_down_when_overfitting_one_batch(tiny_images):
    x, y = tiny_images
    xb, yb = x[:32], y[:32]
    model = build_mlp([784, 64, 10], input_norm=(0.5, 0.5))
    trainer = Trainer(model, lr=3e-3, epochs=60, batch_size=32, seed=0, progress=False)
    before = trainer.evaluate((xb, yb))["loss"]
    history = trainer.fit((xb, yb))
    after = trainer.evaluate((xb, yb))
    assert after["loss"] < 0.1 * before
    assert after["accuracy"] == 1.0
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_learns_a_separable_problem_from_numpy(blobs):
    x, y = blobs
    model = build_mlp([8, 32, 3])
    trainer = Trainer(model, lr=1e-2, epochs=5, batch_size=32, seed=0, progress=False)
    history = trainer.fit((x.numpy(), y.numpy()), (x[:60].numpy(), y[:60].numpy()))
    assert [e["epoch"] for e in history] == [1, 2, 3, 4, 5]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert isinstance(history[-1][key], float), key
    assert history.column("val_accuracy")[-1] > 0.95


def test_same_seed_gives_identical_weights(tiny_images):
    x, y = tiny_images
    start = build_mlp([784, 32, 10], dropout=0.3)
    runs = []
    for _ in range(2):
        model = copy.deepcopy(start)
        Trainer(model, lr=1e-3, epochs=2, batch_size=16, seed=123, progress=False).fit((x, y))
        runs.append(_weights(model))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
    other = copy.deepcopy(start)
    Trainer(other, lr=1e-3, epochs=2, batch_size=16, seed=124, progress=False).fit((x, y))
    assert not torch.equal(_weights(other)["hidden1.weight"], runs[0]["hidden1.weight"])


def test_accepts_fcnet_torch_dataset_and_pairs(tiny_images):
    x, y = tiny_images

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return x[i], int(y[i])

    results = []
    for data in (ArrayDataset(x, y), Plain(), (x, y), [x.numpy(), y.numpy()]):
        model = build_mlp([784, 16, 10])
        torch.manual_seed(0)
        model = build_mlp([784, 16, 10])
        trainer = Trainer(model, epochs=1, batch_size=64, seed=0, progress=False)
        trainer.fit(data)
        results.append(trainer.evaluate((x, y))["loss"])
    assert max(results) - min(results) < 1e-6


def test_predict_proba_rows_sum_to_one_and_predict_is_argmax(tiny_images):
    x, y = tiny_images
    trainer = Trainer(build_mlp([784, 16, 10], output="log_softmax"), loss="nll", epochs=1,
                      progress=False, seed=0)
    trainer.fit((x, y))
    proba = trainer.predict_proba(x[:7])
    assert proba.shape == (7, 10) and proba.dtype == torch.float32
    torch.testing.assert_close(proba.sum(1), torch.ones(7))
    assert torch.equal(trainer.predict(x[:7]), proba.argmax(1))
    assert trainer.predict(x[:7].numpy()).dtype == torch.int64
    # Raw uint8 and the same images scaled to [0, 1] give the same answer.
    torch.testing.assert_close(trainer.predict_proba(x[:7].float() / 255), proba)


def test_generic_model_gets_scaled_float_input(blobs):
    x, y = blobs
    model = nn.Sequential(nn.Linear(8, 3))
    trainer = Trainer(model, lr=1e-2, epochs=3, progress=False, seed=0)
    trainer.fit((x, y))
    assert trainer.evaluate((x, y))["accuracy"] > 0.9
    raw = torch.randint(0, 255, (4, 8), dtype=torch.uint8)
    torch.testing.assert_close(trainer.predict_proba(raw),
                               trainer.predict_proba(raw.float() / 255))


@pytest.mark.parametrize("scheduler", [None, "onecycle", "cosine", "step"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimizers_and_schedules_train(blobs, optimizer, scheduler):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 16, 3]), optimizer=optimizer, lr=0.02, epochs=3,
                      scheduler=scheduler, weight_decay=1e-4, progress=False, seed=0,
                      label_smoothing=0.1, callbacks=[GradientClipping(1.0)])
    history = trainer.fit((x, y))
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_onecycle_steps_per_batch_and_factories_are_used(blobs):
    x, y = blobs
    lrs = []

    class RecordLR(Callback):
        def on_batch_end(self, trainer, batch, logs):
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

    Trainer(build_mlp([8, 3]), lr=0.1, epochs=2, batch_size=100, scheduler="onecycle",
            callbacks=[RecordLR()], progress=False).fit((x, y))
    assert len(set(lrs)) == len(lrs) == 6  # a new rate after every batch
    assert max(lrs) == pytest.approx(0.1, rel=0.05)

    made = {}

    def factory(params):
        made["opt"] = torch.optim.RMSprop(params, lr=0.01)
        return made["opt"]

    t = Trainer(build_mlp([8, 3]), optimizer=factory, epochs=2, progress=False,
                scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1,
                                            gamma=0.5))
    history = t.fit((x, y))
    assert t.optimizer is made["opt"]
    assert history.column("lr") == pytest.approx([0.01, 0.005])


def test_lr_zero_leaves_weights_unchanged(blobs):
    x, y = blobs
    model = build_mlp([8, 16, 3])
    before = _weights(model)
    Trainer(model, lr=0, epochs=2, progress=False).fit((x, y))
    for k, v in _weights(model).items():
        assert torch.equal(v, before[k]), k


def test_bf16_autocast_trains(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 32, 3]), lr=1e-2, epochs=3, precision="bf16", progress=False)
    trainer.fit((x, y))
    assert trainer.evaluate((x, y))["accuracy"] > 0.9


class NeverImproves(Callback):
    """Feeds EarlyStopping a constant val_loss, like a model that never improves."""

    def on_epoch_end(self, trainer, epoch, logs):
        logs["val_loss"] = 1.0


def test_early_stopping_stops_after_patience_and_records_why(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), lr=0.0, epochs=50, progress=False,
                      callbacks=[NeverImproves(), EarlyStopping(patience=3)])
    history = trainer.fit((x, y), (x, y))
    assert len(history) == 1 + 3  # the best epoch, then `patience` epochs without improvement
    assert history.meta["stopped_epoch"] == 4
    assert history.meta["best_epoch"] == 1
    assert "did not improve for 3 epochs" in history.meta["stop_reason"]
    assert history[-1]["stopped_early"] is True
    assert history[-1]["stop_reason"] == history.meta["stop_reason"]
    # A later fit that runs to its end carries no note of the earlier stop.
    trainer.callbacks = [NeverImproves()]
    history = trainer.fit((x[:64], y[:64]), (x, y))
    assert len(history) == 4 + 50
    assert not {"stop_reason", "stopped_epoch", "best_epoch"} & set(history.meta)


def test_early_stopping_restores_best_weights(blobs):
    x, y = blobs
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            snapshots[epoch] = _weights(trainer.model)
            logs["val_loss"] = {1: 3.0, 2: 1.0, 3: 2.0, 4: 2.5}.get(epoch, 9.0)

    trainer = Trainer(build_mlp([8, 3]), lr=0.05, epochs=10, progress=False,
                      callbacks=[Snapshot(), EarlyStopping(patience=2, restore_best=True)])
    history = trainer.fit((x, y), (x, y))
    assert len(history) == 4 and history.meta["restored_best_epoch"] == 2
    for k, v in _weights(trainer.model).items():
        assert torch.equal(v, snapshots[2][k]), k


def test_early_stopping_without_validation_data_is_refused(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), epochs=2, progress=False, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match=r"monitors 'val_loss' but fit\(\) got no validation"):
        trainer.fit((x, y))


def test_non_finite_loss_names_epoch_and_batch(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), lr=1e30, optimizer="sgd", epochs=5,
                      batch_size=10, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"at epoch \d+, batch \d+"):
        trainer.fit((x * 1e10, y))


def test_stop_flag_from_callback(blobs):
    x, y = blobs

    class StopAtTwo(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.should_stop = epoch >= 2

    history = Trainer(build_mlp([8, 3]), epochs=9, progress=False,
                      callbacks=[StopAtTwo()]).fit((x, y))
    assert len(history) == 2


def test_hooks_called_in_order(blobs):
    x, y = blobs
    calls = []

    class Record(Callback):
        def on_train_begin(self, t):
            calls.append("train_begin")

        def on_epoch_begin(self, t, e):
            calls.append(f"epoch_begin{e}")

        def on_batch_begin(self, t, b):
            calls.append(f"batch_begin{b}")

        def on_batch_end(self, t, b, logs):
            calls.append(f"batch_end{b}")

        def on_epoch_end(self, t, e, logs):
            calls.append(f"epoch_end{e}")

        def on_train_end(self, t):
            calls.append("train_end")

    Trainer(build_mlp([8, 3]), epochs=2, batch_size=150, progress=False,
            callbacks=[Record()]).fit((x, y))
    assert calls == ["train_begin",
                     "epoch_begin1", "batch_begin0", "batch_end0", "batch_begin1", "batch_end1",
                     "epoch_end1",
                     "epoch_begin2", "batch_begin0", "batch_end0", "batch_begin1", "batch_end1",
                     "epoch_end2", "train_end"]


# ---------------------------------------------------------------- bad input catalogue
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, r"batch_size must be >= 1, got 0"),
        ({"batch_size": 2.5}, TypeError, r"batch_size must be an int"),
        ({"epochs": 0}, ValueError, r"epochs must be >= 1, got 0"),
        ({"lr": -1e-3}, ValueError, r"lr must be a finite number >= 0, got -0.001"),
        ({"lr": float("nan")}, ValueError, r"lr must be a finite number"),
        ({"optimizer": "adamax"}, ValueError, r"optimizer must be one of 'adam'.*'adamax'"),
        ({"loss": "hinge"}, ValueError, r"loss must be one of.*'hinge'"),
        ({"scheduler": "linear"}, ValueError, r"scheduler must be None, one of.*'linear'"),
        ({"device": "tpu"}, ValueError, r"device must be"),
        ({"precision": "fp16"}, ValueError, r"precision must be one of 'auto', 'fp32', 'bf16'"),
        ({"label_smoothing": 1.0}, ValueError, r"label_smoothing must be in \[0, 1\)"),
        ({"loss": "nll", "label_smoothing": 0.1}, ValueError, r"needs loss='cross_entropy'"),
        ({"seed": "0"}, TypeError, r"seed must be an int or None"),
        ({"callbacks": [object()]}, TypeError, r"Callback instances, got object"),
        ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*63\)"),
        ({"augment": 3}, TypeError, r"augment must be a callable"),
        ({"progress": "yes"}, TypeError, r"progress must be True or False"),
    ],
)
def test_bad_trainer_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Trainer(build_mlp([8, 3]), **kwargs)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got str"):
        Trainer("mlp")


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda x, y: (x[:10], y[:9]), ValueError,
         r"train: inputs and labels must have the same length, got 10 inputs and 9 labels"),
        (lambda x, y: (x[:, :5], y), ValueError,
         r"train inputs have 5 features per sample .* model expects 8"),
        (lambda x, y: (x, y + 3), ValueError,
         r"train labels must be in \[0, 2\] for a model with 3 outputs, got labels in \[3, 5\]"),
        (lambda x, y: (x, y - 1), ValueError, r"train labels must be >= 0, got -1"),
        (lambda x, y: (x.index_fill(0, torch.tensor([3]), float("nan")), y), ValueError,
         r"train inputs contain 8 NaN or infinite values"),
        (lambda x, y: (x.index_fill(0, torch.tensor([0]), float("inf")), y), ValueError,
         r"NaN or infinite"),
        (lambda x, y: (x[:0], y[:0]), ValueError, r"empty"),
        (lambda x, y: (x, y.float() + 0.5), ValueError,
         r"train labels must hold integer class indices, got 0.5"),
        (lambda x, y: "data.csv", TypeError, r"train"),
    ],
)
def test_bad_training_data_fails_before_any_step(blobs, make, error, match):
    x, y = blobs
    model = build_mlp([8, 3])
    before = _weights(model)
    trainer = Trainer(model, epochs=1, progress=False)
    with pytest.raises(error, match=match):
        trainer.fit(make(x, y))
    for k, v in _weights(model).items():
        assert torch.equal(v, before[k])


def test_bad_validation_data_fails_before_any_step(blobs):
    x, y = blobs
    model = build_mlp([8, 3])
    before = _weights(model)
    with pytest.raises(ValueError, match=r"val labels must be in \[0, 2\]"):
        Trainer(model, epochs=1, progress=False).fit((x, y), (x, y + 5))
    assert torch.equal(_weights(model)["output.weight"], before["output.weight"])


def test_bad_prediction_input(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"x inputs have 5 features per sample"):
        trainer.predict(x[:, :5])
    with pytest.raises(ValueError, match=r"x inputs contain 1 NaN"):
        trainer.predict_proba(np.where(np.eye(8)[:2] == 1, np.nan, 0.0)[:1])
    with pytest.raises(ValueError, match=r"x is empty"):
        trainer.predict(x[:0])
    with pytest.raises(TypeError, match=r"x must be"):
        trainer.predict("pixels.png")
    with pytest.raises(TypeError, match=r"not an \(inputs, labels\) pair"):
        trainer.predict((x, y))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_weight_decay_spares_biases_and_norm_parameters(optimizer):
    model = build_mlp([6, 5, 3], norm="batch")
    trainer = Trainer(model, optimizer=optimizer, weight_decay=0.1, progress=False)
    trainer.fit((torch.randn(8, 6), torch.arange(8) % 3))
    opt = trainer.optimizer
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    spared = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decay == {id(model.hidden1.weight), id(model.output.weight)}
    assert spared == {id(p) for p in model.parameters() if p.ndim == 1}
    # Without weight decay there is one group; without biases or norms, no empty group.
    data = (torch.randn(8, 6), torch.arange(8) % 3)
    plain = Trainer(model, optimizer=optimizer, epochs=1, progress=False)
    plain.fit(data)
    assert len(plain.optimizer.param_groups) == 1
    bare = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3, bias=False))
    decayed = Trainer(bare, optimizer=optimizer, weight_decay=0.1, epochs=1, progress=False)
    decayed.fit(data)
    assert len(decayed.optimizer.param_groups) == 1


def test_fit_flushes_denormals_only_while_training():
    from fcnet._device import _flushing

    seen = []

    class Probe(Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append(_flushing())

    x, y = torch.randn(32, 4), torch.arange(32) % 2
    before = _flushing()
    Trainer(build_mlp([4, 2]), epochs=1, batch_size=16, callbacks=[Probe()],
            progress=False).fit((x, y))
    if torch.set_flush_denormal(before):  # a CPU that can flush does during training
        assert seen == [True] * 2
    assert _flushing() == before


def test_flush_denormal_keeps_a_setting_the_user_made():
    from fcnet._device import _flushing, flush_denormal

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        with flush_denormal():
            assert _flushing()
        assert _flushing()  # it was on before, so it stays on
        with flush_denormal(enabled=False):
            assert _flushing()
    finally:
        torch.set_flush_denormal(False)
    with flush_denormal():
        assert _flushing()
    assert not _flushing()


def test_flush_denormal_reaches_the_intra_op_worker_threads():
    # Worker threads copy the float mode of the thread that starts them and OpenMP keeps
    # them, so a pool started before the block kept computing denormals in half the op.
    from fcnet._device import _omp_pause, denormal_mode, flush_denormal

    if _omp_pause() is None or not torch.set_flush_denormal(False):
        pytest.skip("needs OpenMP's omp_pause_resource_all and a CPU that flushes denormals")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tiny = torch.full((1 << 20,), 1e-39)  # 32 grains of 32,768: both threads work
        assert bool((tiny * 0.5 != 0).all())  # the pool now exists, started without flushing
        with flush_denormal():
            assert bool((tiny * 0.5 == 0).all())
            with denormal_mode(flush=False):  # and off again, on every thread
                assert bool((tiny * 0.5 != 0).all())
            assert bool((tiny * 0.5 == 0).all())
        assert bool((tiny * 0.5 != 0).all())  # restored, on the workers too
    finally:
        torch.set_num_threads(threads)
