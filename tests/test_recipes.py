"""Tests for fcnet.recipes: the seed recipes match SEED.md, the runner writes a full run.

The runner's tests train on a small fake Fashion-MNIST (``fake_data``): 1,000 training
and 200 test images whose class is a bright row, so that a run of a few seconds still
learns. One integration test trains on the real files.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from fcnet import (
    Callback,
    CheckpointError,
    DisableAugmentation,
    EarlyStopping,
    FastDropout,
    Trainer,
    WeightAveraging,
    build_mlp,
)
from fcnet.checkpoint import load_model
from fcnet.data import ArrayDataset, FashionMNIST
from fcnet.models import MLPSpec
from fcnet.recipes import RECIPES, RUN_FILES, Recipe, get_recipe, main, run_recipe
from fcnet.schedules import OneCycle
from fcnet.trainer import TrainerConfig

UNKNOWN_WIDE = ("unknown recipe 'wide'; known recipes: baseline, baseline_as_described, best, "
                "best_budget, best_lean, best_long, best_split, deep")


def _layers(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def _vary(recipe: Recipe, **changes) -> Recipe:
    """``recipe`` with fields changed; ``model__x`` and ``training__x`` reach inside."""
    model = {k.removeprefix("model__"): v for k, v in changes.items() if k.startswith("model__")}
    training = {k.removeprefix("training__"): v for k, v in changes.items()
                if k.startswith("training__")}
    own = {k: v for k, v in changes.items() if "__" not in k}
    if model:
        own["model"] = dataclasses.replace(recipe.model, **model)
    if training:
        own["training"] = dataclasses.replace(recipe.training, **training)
    return dataclasses.replace(recipe, **own)


# ----------------------------------------------------------------------------- registry


def test_registry_holds_the_seed_recipes_read_only():
    assert set(RECIPES) >= {"baseline", "deep"}
    with pytest.raises(TypeError):
        RECIPES["mine"] = RECIPES["baseline"]  # read-only mapping
    assert all(name == r.name for name, r in RECIPES.items())


def test_baseline_matches_seed():
    r = RECIPES["baseline"]
    assert isinstance(r.model, MLPSpec) and isinstance(r.training, TrainerConfig)
    assert r.model.sizes == (784, 128, 64, 10)
    assert r.model.dropout == (0.25, 0.0)
    assert (r.model.activation, r.model.output) == ("relu", "log_softmax")
    assert (r.training.loss, r.training.optimizer) == ("nll", "adam")
    assert r.training.lr == 0.003 and r.epochs == r.training.epochs == 25
    assert r.training.batch_size == 64
    assert r.model.input_norm == (0.5, 0.5) and r.val_fraction == 0.2
    assert r.training.scheduler is None and r.training.weight_decay == 0
    assert r.augment is None and r.clean_epochs == 0 and r.ema_decay is None
    assert r.restore_best and r.monitor == "val_loss" and r.patience is None
    assert r.reference_accuracy == 0.8742
    model = r.build_model()
    # The network the notebook trained: one dropout layer (its 'drop1' key was reused).
    assert [d.p for d in _layers(model, nn.Dropout)] == [0.25]
    assert isinstance(model.drop1, nn.Dropout)
    assert [(m.in_features, m.out_features) for m in _layers(model, nn.Linear)] == [
        (784, 128), (128, 64), (64, 10)
    ]  # fmt: skip
    assert len(_layers(model, nn.ReLU)) == 2
    assert isinstance(list(model.children())[-1], nn.LogSoftmax)


def test_deep_matches_seed():
    r = RECIPES["deep"]
    assert r.model.sizes == (784, 392, 196, 98, 49, 10)
    assert (r.model.activation, r.model.output) == ("relu", "log_softmax")
    assert (r.training.loss, r.training.optimizer) == ("nll", "adam")
    assert r.training.lr == 0.0007 and r.epochs == 35 and r.training.batch_size == 64
    assert r.model.input_norm == (0.5, 0.5) and r.val_fraction == 0.2
    assert r.reference_accuracy == 0.8865
    model = r.build_model()
    names = [name for name, _ in model.named_children()]
    # ReLU after every hidden layer, dropout after the first three only.
    assert names == [
        "input",
        "hidden1", "act1", "drop1",
        "hidden2", "act2", "drop2",
        "hidden3", "act3", "drop3",
        "hidden4", "act4",
        "output", "log_softmax",
    ]  # fmt: skip
    assert [d.p for d in _layers(model, nn.Dropout)] == [0.25, 0.25, 0.25]
    assert len(_layers(model, nn.ReLU)) == 4


def test_recipe_model_maps_raw_pixels_to_minus_one_one():
    model = RECIPES["baseline"].build_model()
    x = torch.tensor([[0, 255] + [0] * 782], dtype=torch.uint8)
    assert model.input(x)[0, :2].tolist() == [-1.0, 1.0]


def test_build_model_is_the_spec_and_its_seed_fixes_the_weights():
    r = RECIPES["deep"]
    rng = torch.get_rng_state()
    a, b = r.build_model(seed=3), r.build_model(seed=3)
    assert torch.equal(torch.get_rng_state(), rng)  # a private generator
    assert a.spec == r.model
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    c = r.build_model(seed=4)
    assert not torch.equal(a.hidden1.weight, c.hidden1.weight)


def test_get_recipe_unknown_name_lists_the_names():
    assert get_recipe("deep") is RECIPES["deep"]
    with pytest.raises(ValueError, match=UNKNOWN_WIDE):
        get_recipe("wide")
    with pytest.raises(TypeError, match="recipe name must be a str"):
        get_recipe(3)


def test_to_dict_round_trips_through_json():
    for recipe in RECIPES.values():
        data = json.loads(json.dumps(recipe.to_dict()))
        assert Recipe.from_dict(data) == recipe
    # A schedule with its own settings comes back as the same schedule.
    scheduler = json.loads(json.dumps(RECIPES["best"].to_dict()))["training"]["scheduler"]
    assert scheduler == {"name": "onecycle", "pct_start": 0.1, "div_factor": 25.0,
                         "final_div_factor": 4.0, "cycle_momentum": False}
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        Recipe.from_dict({**RECIPES["deep"].to_dict(), "colour": "red"})
    with pytest.raises(TypeError, match="recipe data must be a mapping, got list"):
        Recipe.from_dict([])


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"name": ""}, ValueError, r"name must be a non-empty str"),
        ({"model": "784-10"}, TypeError, r"model must be an MLPSpec, got str"),
        ({"training": {"lr": 1.0}}, TypeError, r"training must be a TrainerConfig, got dict"),
        ({"model__output": "logits"}, ValueError, r"loss='nll' needs output='log_softmax'"),
        ({"model__dropout": (0.25,)}, ValueError, r"one value per hidden layer \(2\)"),
        ({"model__dropout": 1.5}, ValueError, r"dropout must be in \[0, 1\), got 1.5"),
        ({"training__lr": -1.0}, ValueError, r"lr must be a finite number >= 0, got -1.0"),
        ({"training__epochs": 0}, ValueError, r"epochs must be >= 1, got 0"),
        ({"training__batch_size": 6.4}, TypeError, r"batch_size must be an int"),
        ({"training__optimizer": "lbfgs"}, ValueError, r"optimizer must be one of 'adam'"),
        ({"training__loss": "mse"}, ValueError, r"loss must be one of"),
        ({"training__label_smoothing": 0.1}, ValueError,
         r"label_smoothing needs loss='cross_entropy'"),
        ({"training__scheduler": "linear"}, ValueError, r"scheduler must be None, one of"),
        ({"training__precision": "fp16"}, ValueError, r"precision must be one of 'auto', 'fp32'"),
        ({"training__optimizer": lambda params: torch.optim.SGD(params, lr=0.1)}, TypeError,
         r"training.optimizer must be a name or a fcnet.schedules.Schedule in a recipe"),
        ({"training__scheduler": lambda opt: None}, TypeError,
         r"training.scheduler must be a name"),
        ({"augment": "rotate:10"}, ValueError, r"augment must be a comma-separated list"),
        ({"augment": "shift:two"}, ValueError, r"augment 'shift' takes a value of type int"),
        ({"augment": 3}, TypeError, r"augment must be a str or None, got 3"),
        ({"clean_epochs": 2}, ValueError, r"clean_epochs=2 needs an augment to turn off"),
        ({"clean_epochs": 25, "augment": "flip"}, ValueError,
         r"clean_epochs \(25\) must be below epochs \(25\)"),
        ({"clean_epochs": -1, "augment": "flip"}, ValueError, r"clean_epochs must be >= 0"),
        ({"val_fraction": 1.0}, ValueError, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"restore_best": "yes"}, TypeError, r"restore_best must be True or False"),
        ({"patience": -1}, ValueError, r"patience must be >= 0, got -1"),
        ({"val_fraction": 0.0}, ValueError, r"val_fraction=0 leaves no validation data"),
        ({"val_fraction": 0.0, "restore_best": False, "patience": 3}, ValueError,
         r"set restore_best=False and patience=None"),
        ({"monitor": "loss"}, ValueError, r"monitor must be a history key"),
        ({"ema_decay": 1.5, "restore_best": False}, ValueError,
         r"ema_decay must be None or in \(0, 1\), got 1.5"),
        ({"ema_decay": 0.9}, ValueError, r"ema_decay and restore_best exclude each other"),
        ({"threads": 0}, ValueError, r"threads must be >= 1, got 0"),
        ({"reference_accuracy": 2}, ValueError, r"reference_accuracy must be None or in \[0, 1\]"),
        ({"description": 3}, TypeError, r"description must be a str"),
    ],
)
def test_bad_recipe_fields_raise(changes, error, match):
    with pytest.raises(error, match=match):
        _vary(RECIPES["baseline"], **changes)


def test_recipe_is_frozen_and_its_parts_too():
    r = RECIPES["baseline"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.augment = "flip"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.training.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.model.sizes = (784, 10)
    small = _vary(r, model__sizes=[784, 32, 10], model__dropout=0.1)
    assert small.model.sizes == (784, 32, 10) and small.model.dropout == (0.1,)


def test_with_epochs_changes_only_the_epochs():
    long = RECIPES["best_long"]
    short = long.with_epochs(30)
    assert short.epochs == short.training.epochs == 30 and long.epochs == 96
    assert short.clean_epochs == long.clean_epochs == 24
    assert dataclasses.replace(short, training=long.training) == long
    with pytest.raises(ValueError, match=r"clean_epochs \(24\) must be below epochs \(24\)"):
        long.with_epochs(24)


def test_augment_description_builds_a_batch_augmentation():
    r = dataclasses.replace(RECIPES["baseline"], augment="flip,shift:2")
    aug = r.make_augment()
    x = torch.randint(0, 255, (8, 28, 28), dtype=torch.uint8)
    assert aug(x, torch.Generator().manual_seed(0)).shape == x.shape
    assert RECIPES["baseline"].make_augment() is None


def test_restore_best_without_early_stop():
    """The notebook's policy: train every epoch, then keep the lowest-val_loss weights."""
    (cb,) = RECIPES["baseline"].callbacks()
    assert isinstance(cb, EarlyStopping)
    assert cb.monitor == "val_loss" and cb.restore_best
    assert cb.patience >= RECIPES["baseline"].epochs
    # lr=0 never improves after epoch 1: a short patience would stop; this one must not.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.arange(64) % 3
    recipe = _vary(RECIPES["baseline"], model__sizes=(8, 4, 3), model__dropout=0.0,
                   training__epochs=6)
    model = build_mlp([8, 4, 3], output="log_softmax", seed=0)
    trainer = Trainer(model, lr=0.0, epochs=6, loss="nll", callbacks=recipe.callbacks(),
                      progress=False, seed=0)
    history = trainer.fit((x, y), (x, y))
    assert len(history) == 6
    assert "stop_reason" not in history.meta
    assert history.meta["restored_best_epoch"] == 1


def test_callbacks_follow_the_fields_and_are_fresh_each_time():
    r = dataclasses.replace(RECIPES["deep"], restore_best=False)
    assert r.callbacks() == []
    (cb,) = dataclasses.replace(r, patience=3).callbacks()
    assert isinstance(cb, EarlyStopping) and cb.patience == 3 and not cb.restore_best
    clean = dataclasses.replace(r, augment="flip", clean_epochs=5, ema_decay=0.99)
    first, second = clean.callbacks(), clean.callbacks()
    assert [type(c) for c in first] == [DisableAugmentation, WeightAveraging]
    assert first[0].last_epochs == 5 and first[1].decay == 0.99
    assert all(a is not b for a, b in zip(first, second, strict=True))


def test_best_recipe_is_a_pure_mlp_with_weight_averaging():
    best, split = RECIPES["best"], RECIPES["best_split"]
    model = best.build_model()
    allowed = (nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Dropout)
    layers = [m for name, m in model.named_children() if name != "input"]
    assert all(isinstance(m, allowed) for m in layers)
    assert [type(cb) for cb in best.callbacks()] == [WeightAveraging]
    assert best.ema_decay == 0.999 and not best.restore_best
    assert split.training == TrainerConfig(
        optimizer="adamw", lr=3e-3, weight_decay=0.05, epochs=60, batch_size=512,
        loss="cross_entropy", label_smoothing=0.1,
        scheduler=OneCycle(pct_start=0.1, div_factor=25.0, final_div_factor=4.0,
                           cycle_momentum=False),
        precision="fp32")  # as their figures were measured
    assert split.model.sizes == (784, 1024, 1024, 1024, 10)
    assert split.model.input_dropout == 0.1 and split.model.norm == "batch"
    # "best" refits best_split's settings on all 60,000 images for as many steps, with
    # the faster dropout masks.
    assert best.val_fraction == 0 and split.val_fraction == 0.2
    assert dataclasses.replace(
        best, name=split.name, val_fraction=split.val_fraction, training=split.training,
        threads=split.threads, model=dataclasses.replace(best.model, fast_dropout=False),
        description=split.description) == split
    assert best.threads == 2 and split.threads is None
    assert best.model.fast_dropout and not split.model.fast_dropout
    drops = [m for m in model if isinstance(m, nn.Dropout)]
    assert [(type(m), m.p) for m in drops] == [(FastDropout, 0.1)] + [(FastDropout, 0.3)] * 3
    assert best.epochs * 60000 == split.epochs * 48000


def test_best_long_is_best_on_a_longer_schedule_with_a_clean_last_quarter():
    best, long = RECIPES["best"], RECIPES["best_long"]
    # The validated run: 120 epochs of 48,000 images, the last 30 without augmentation.
    assert long.epochs * 60000 == 120 * 48000 and long.clean_epochs * 60000 == 30 * 48000
    assert long.augment == "flip,shift:1"
    assert dataclasses.replace(long, name=best.name, training=best.training, augment=None,
                               clean_epochs=0, description=best.description) == best
    assert [type(cb) for cb in long.callbacks()] == [DisableAugmentation, WeightAveraging]
    augment = long.make_augment()
    x = torch.zeros(4, 28, 28, dtype=torch.uint8)
    x[:, 10:18, 12:14] = 200
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    # Flips and shifts of at most one pixel move the bar, never add or drop ink from it.
    assert torch.equal(out.flatten(1).sum(1, dtype=torch.int64),
                       x.flatten(1).sum(1, dtype=torch.int64))
    assert all(m.__class__.__name__ in ("Linear", "BatchNorm1d", "GELU", "FastDropout")
               for name, m in long.build_model().named_children() if name != "input")


def test_best_budget_is_best_long_on_the_validated_shorter_schedule():
    long, budget = RECIPES["best_long"], RECIPES["best_budget"]
    # The validated run: 80 epochs of 48,000 images, the last 20 without augmentation;
    # the same share of clean epochs as best_long's.
    assert budget.epochs * 60000 == 80 * 48000
    assert budget.clean_epochs * 60000 == 20 * 48000
    assert budget.clean_epochs * long.epochs == long.clean_epochs * budget.epochs
    assert dataclasses.replace(budget.with_epochs(long.epochs), name=long.name,
                               clean_epochs=long.clean_epochs,
                               description=long.description) == long


def test_best_lean_is_best_long_with_two_hidden_layers():
    long, lean = RECIPES["best_long"], RECIPES["best_lean"]
    assert lean.model.sizes == (784, 1024, 1024, 10) and lean.model.dropout == (0.3, 0.3)
    assert _vary(lean, name=long.name, model__sizes=long.model.sizes,
                 model__dropout=long.model.dropout, description=long.description) == long
    weights = [m.weight.numel() for m in lean.build_model().modules()
               if isinstance(m, nn.Linear)]
    assert sum(weights) == 784 * 1024 + 1024 * 1024 + 1024 * 10


def test_baseline_as_described_has_both_dropout_layers():
    described, baseline = RECIPES["baseline_as_described"], RECIPES["baseline"]
    model = described.build_model()
    assert [(name, m.p) for name, m in model.named_children() if isinstance(m, nn.Dropout)] == [
        ("drop1", 0.25), ("drop2", 0.25)
    ]  # fmt: skip
    # Dropout is the one difference from the baseline.
    assert _vary(described, name="baseline", model__dropout=baseline.model.dropout,
                 description=baseline.description) == baseline


# ----------------------------------------------------------------------------- runner


class _FakeFashionMNIST(ArrayDataset):
    """Fashion-MNIST's interface on 1,000 train / 200 test images a network learns fast."""

    split_sizes = FashionMNIST.split_sizes

    def __init__(self, split="train", root=None, download=True):
        n = {"train": 1000, "test": 200}[split]
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        y = torch.arange(n) % 10
        x = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
        x[torch.arange(n), y * 2 + 4, :] = 250  # the class is the row that is bright
        super().__init__(x, y, list(FashionMNIST.class_names))
        self.split = split
        self.folder = Path(root) if root is not None else Path("fake")


@pytest.fixture
def fake_data(monkeypatch):
    """Runs load the fake data set; figures are skipped (one test draws them)."""
    monkeypatch.setattr("fcnet.recipes.FashionMNIST", _FakeFashionMNIST)
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)


@pytest.fixture
def no_data(monkeypatch):
    """Fail if a runner loads data: argument checks must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the arguments were checked")

    monkeypatch.setattr("fcnet.recipes.FashionMNIST.__init__", refuse)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"recipe": "wide"}, ValueError, UNKNOWN_WIDE),
        ({"recipe": 3}, TypeError, r"recipe must be a Recipe or a recipe name"),
        ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ({"seed": 1.0}, TypeError, r"seed must be an int"),
        ({"epochs": 0}, ValueError, r"epochs must be >= 1, got 0"),
        ({"recipe": "best_long", "epochs": 24}, ValueError,
         r"epochs=24 leaves recipe 'best_long' no augmented epoch"),
        ({"limit_train": 60001}, ValueError, r"limit_train must be at most the 60000"),
        ({"limit_train": 5}, ValueError, r"limit_train must be >= 10, got 5"),
        ({"threads": 0}, ValueError, r"threads must be >= 1, got 0"),
        ({"quiet": "yes"}, TypeError, r"quiet must be True or False"),
        ({"overwrite": 1}, TypeError, r"overwrite must be True or False"),
        ({"out_dir": 5}, TypeError, r"out_dir must be a path"),
        ({"data_root": 5}, TypeError, r"data_root must be a path or None"),
        ({"device": "tpu9"}, ValueError, r"device must be 'auto', 'cpu'"),
    ],
)
def test_run_recipe_rejects_bad_arguments_before_work(tmp_path, no_data, kwargs, error, match):
    args = {"recipe": "baseline", "out_dir": tmp_path / "run", **kwargs}
    with pytest.raises(error, match=match):
        run_recipe(args.pop("recipe"), **args)
    assert not (tmp_path / "run").exists()


def test_run_recipe_refuses_a_file_or_a_used_folder(tmp_path, no_data):
    a_file = tmp_path / "metrics.json"
    a_file.write_text("{}")
    with pytest.raises(NotADirectoryError, match=r"exists and is not a folder"):
        run_recipe("baseline", out_dir=a_file)
    with pytest.raises(NotADirectoryError, match=r"is a file"):
        run_recipe("baseline", out_dir=a_file / "run")
    used = tmp_path / "used"
    used.mkdir()
    (used / "metrics.json").write_text('{"test_accuracy": 0.9}')
    with pytest.raises(FileExistsError, match=r"is not empty; .* overwrite=True"):
        run_recipe("baseline", out_dir=used)
    assert (used / "metrics.json").read_text() == '{"test_accuracy": 0.9}'
    with pytest.raises(FileNotFoundError, match=r"data_root .* is not an existing folder"):
        run_recipe("baseline", out_dir=tmp_path / "new", data_root=tmp_path / "nowhere")


def test_run_recipe_without_the_data_fails_before_writing(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"data_root .* does not hold the Fashion-MNIST"):
        run_recipe("baseline", out_dir=tmp_path / "run", data_root=empty)
    assert not (tmp_path / "run").exists()
    assert list(empty.iterdir()) == []  # nothing is downloaded into a folder given


def test_cli_rejects_bad_arguments(tmp_path, no_data, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["wide", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    assert UNKNOWN_WIDE in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])
    assert "a recipe name is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["deep", "--seeds", "1", "1", "--out", str(tmp_path / "r")])
    assert "--seeds must be distinct" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["baseline", "--epochs", "0", "--out", str(tmp_path / "r")])
    assert "epochs must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("baseline: ") and "\ndeep: " in out


def test_cli_without_the_data_is_a_one_line_error(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "fcnet.recipes", "baseline", "--data-root", str(empty),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("fcnet-recipe: error: data_root ") and str(empty) in line
    assert done.stdout == ""
    assert not (tmp_path / "run").exists()


def test_overwrite_replaces_a_run_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setattr("fcnet.recipes.FashionMNIST", _FakeFashionMNIST)
    out = tmp_path / "run"
    run_recipe("baseline", out_dir=out, seed=1, epochs=1, quiet=True)
    (out / "model" / "model.onnx").write_bytes(b"an export of this model")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    # A failure while the new run's files are written leaves every file of the old run.
    monkeypatch.setattr("fcnet.recipes.plot_prediction", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_recipe("baseline", out_dir=out, seed=2, epochs=1, overwrite=True, quiet=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # What would stop the writing is found before training.
    trained = []
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: trained.append(1))
    (out / "model" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not a saved model \(notes"):
        run_recipe("baseline", out_dir=out, seed=2, epochs=1, overwrite=True, quiet=True)
    (out / "model" / "notes.txt").unlink()
    (out / "curves.png").unlink()
    (out / "curves.png").mkdir()
    with pytest.raises(IsADirectoryError, match=r"holds a folder 'curves.png' where the run "
                                                r"writes a file"):
        run_recipe("baseline", out_dir=out, seed=2, epochs=1, overwrite=True, quiet=True)
    assert trained == []
    # A model folder with its default export is replaced with both.
    (out / "curves.png").rmdir()
    monkeypatch.undo()
    monkeypatch.setattr("fcnet.recipes.FashionMNIST", _FakeFashionMNIST)
    (out / "model.onnx").write_bytes(b"an export of the old model, beside it")
    run_recipe("baseline", out_dir=out, seed=2, epochs=1, overwrite=True, quiet=True)
    assert sorted(p.name for p in (out / "model").iterdir()) == ["model.json",
                                                                  "model.safetensors"]
    assert not (out / "model.onnx").exists()
    assert json.loads((out / "metrics.json").read_text())["seed"] == 2


def test_a_run_with_checkpoints_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    monkeypatch.setattr("fcnet.recipes.FashionMNIST", _FakeFashionMNIST)
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    whole = run_recipe("baseline", out_dir=tmp_path / "whole", seed=1, epochs=3,
                       quiet=True, checkpoints=True)

    class Crash(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 2:
                raise RuntimeError("power cut")

    plain = Recipe.callbacks
    monkeypatch.setattr(Recipe, "callbacks", lambda self: [*plain(self), Crash()])
    out = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="power cut"):
        run_recipe("baseline", out_dir=out, seed=1, epochs=3, quiet=True, checkpoints=True)
    assert (out / "checkpoints" / "epoch0001-batch000000").is_dir()
    assert not (out / "metrics.json").exists()
    monkeypatch.setattr(Recipe, "callbacks", plain)
    with pytest.raises(FileExistsError, match="is not empty"):
        run_recipe("baseline", out_dir=out, seed=1, epochs=3, quiet=True)
    with pytest.raises(FileNotFoundError, match=r"resume: no checkpoint in"):
        run_recipe("baseline", out_dir=tmp_path / "new", seed=1, epochs=3, quiet=True,
                   resume=True)
    resumed = run_recipe("baseline", out_dir=out, seed=1, epochs=3, quiet=True, resume=True)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    a = load_model(tmp_path / "whole" / "model").state_dict()
    b = load_model(out / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Another seed is another run: refused, naming the difference.
    with pytest.raises(CheckpointError, match="seed"):
        run_recipe("baseline", out_dir=out, seed=2, epochs=3, quiet=True, resume=True)


def test_run_recipe_writes_a_complete_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("fcnet.recipes.FashionMNIST", _FakeFashionMNIST)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    threads_before = torch.get_num_threads()
    result = run_recipe("baseline", out_dir=out, seed=1, epochs=2, overwrite=True)
    assert torch.get_num_threads() == threads_before
    for name in RUN_FILES:
        assert (out / name).stat().st_size > 0, name
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (out / "notes.txt").read_text() == "mine"  # overwrite replaces run files only

    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"test_accuracy=[01]\.\d{4}", lines[-1])
    assert sum(line.startswith("epoch 2/2 ") for line in lines) == 1
    assert float(lines[-1].split("=")[1]) == pytest.approx(result["test_accuracy"], abs=5e-5)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == {k: v for k, v in result.items() if k != "out_dir"}
    assert result["out_dir"] == str(out)
    assert metrics["seed"] == 1 and metrics["epochs_run"] == 2
    assert metrics["train_samples"] == 800 and metrics["val_samples"] == 200
    assert metrics["test_samples"] == 200 and metrics["limit_train"] is None
    assert Recipe.from_dict(metrics["recipe"]) == RECIPES["baseline"].with_epochs(2)
    cm = torch.tensor(metrics["confusion_matrix"])
    assert cm.shape == (10, 10) and int(cm.sum()) == 200
    assert metrics["test_accuracy"] == pytest.approx(float(cm.trace()) / 200)
    assert metrics["test_accuracy"] > 0.5  # the bright row is easy to learn
    assert set(metrics["per_class_accuracy"]) == set(metrics["classification_report"]["classes"])
    assert metrics["torch_version"] == torch.__version__ and metrics["cpu"]
    assert metrics["threads"] == 1 and metrics["device"] == "cpu"
    assert metrics["wall_seconds"] >= metrics["train_seconds"] > 0
    assert metrics["test_loss"] > 0
    # The kept weights are the selected epoch's, so their validation score is that epoch's.
    history = json.loads((out / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]
    chosen = history[metrics["selected_epoch"] - 1]
    assert metrics["val_accuracy"] == pytest.approx(chosen["val_accuracy"], abs=1e-6)
    assert metrics["val_loss"] == pytest.approx(chosen["val_loss"], rel=1e-5)

    # The saved model rebuilds without the recipe and predicts what was measured.
    model = load_model(out / "model")
    assert dataclasses.replace(model.spec, input_dtype=None, input_range=None) == \
        RECIPES["baseline"].model
    assert model.spec.input_dtype == "uint8"
    test = _FakeFashionMNIST("test")
    with torch.no_grad():
        scores = model.eval()(test.images)
    assert (scores.argmax(1) == test.labels).double().mean().item() == pytest.approx(
        metrics["test_accuracy"], abs=1e-9)
    # The loss comes from the same single pass (cross-entropy of log-probabilities is
    # their NLL, so this holds for the log_softmax output too).
    assert metrics["test_loss"] == pytest.approx(
        nn.functional.cross_entropy(scores, test.labels).item(), rel=1e-4)


def test_run_recipe_is_repeatable_and_leaves_the_global_rng_alone(tmp_path, fake_data):
    rng = torch.get_rng_state()
    a = run_recipe("baseline", out_dir=tmp_path / "a", seed=5, epochs=2, quiet=True)
    assert torch.equal(torch.get_rng_state(), rng)
    b = run_recipe("baseline", out_dir=tmp_path / "b", seed=5, epochs=2, quiet=True)
    assert a["test_accuracy"] == b["test_accuracy"] and a["test_loss"] == b["test_loss"]
    assert a["confusion_matrix"] == b["confusion_matrix"]
    wa = load_model(tmp_path / "a" / "model").state_dict()
    wb = load_model(tmp_path / "b" / "model").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # Another seed splits, initialises and shuffles otherwise.
    c = run_recipe("baseline", out_dir=tmp_path / "c", seed=6, epochs=1, quiet=True)
    assert c["split"]["val"]["seed"] == 6 and a["split"]["val"]["seed"] == 5
    wc = load_model(tmp_path / "c" / "model").state_dict()
    assert not torch.equal(wa["hidden1.weight"], wc["hidden1.weight"])


def test_run_recipe_refit_on_every_training_image(tmp_path, fake_data):
    # val_fraction=0: settings chosen on a split, then trained on all the images.
    recipe = dataclasses.replace(RECIPES["baseline"], val_fraction=0.0, restore_best=False)
    result = run_recipe(recipe, out_dir=tmp_path / "refit", seed=0, epochs=1,
                        limit_train=500, quiet=True)
    assert result["train_samples"] == 500 and result["val_samples"] == 0
    assert result["val_accuracy"] is None and result["split"]["val"] is None
    assert result["split"]["train"]["subset"] == "val"  # the limit_train subset, whole
    assert result["selected_epoch"] == 1
    history = json.loads((tmp_path / "refit" / "history.json").read_text())["epochs"]
    assert "val_loss" not in history[0] and 0.2 < result["test_accuracy"] <= 1.0


def test_run_recipe_turns_clean_epochs_into_a_callback(tmp_path, fake_data, monkeypatch):
    seen = []

    class Spy(Trainer):
        def fit(self, *args, **kwargs):
            seen.append({"callbacks": list(self.callbacks), "augment": self.augment})
            history = super().fit(*args, **kwargs)
            seen[-1]["augmenting_last"] = self.augmenting
            return history

    monkeypatch.setattr("fcnet.recipes.Trainer", Spy)
    recipe = dataclasses.replace(RECIPES["baseline"], augment="flip,shift:1", clean_epochs=1)
    result = run_recipe(recipe, out_dir=tmp_path / "r", seed=0, epochs=2, quiet=True)
    (fit,) = seen
    clean = [cb for cb in fit["callbacks"] if isinstance(cb, DisableAugmentation)]
    assert len(clean) == 1 and clean[0].last_epochs == 1
    assert fit["augment"] is not None and fit["augmenting_last"] is False
    assert result["epochs_run"] == 2 and result["recipe"]["clean_epochs"] == 1
    # An epoch count that leaves nothing to augment fails before any work.
    with pytest.raises(ValueError, match=r"epochs=1 leaves recipe 'baseline' no augmented"):
        run_recipe(recipe, out_dir=tmp_path / "r1", seed=0, epochs=1)
    assert not (tmp_path / "r1").exists() and len(seen) == 1


def test_cli_several_seeds_prints_mean_and_std(tmp_path, fake_data, capsys):
    out = tmp_path / "seeds"
    code = main(["baseline", "--seeds", "0", "1", "--epochs", "1", "--out", str(out),
                 "--quiet"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(r"test_accuracy_mean=([01]\.\d{4}) test_accuracy_std=(\d\.\d{4}) "
                         r"seeds=0,1", last)
    assert match
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["test_accuracy"]) == 2
    accs = [json.loads((out / f"seed{s}" / "metrics.json").read_text())["test_accuracy"]
            for s in (0, 1)]
    assert summary["test_accuracy"] == accs
    assert float(match[1]) == pytest.approx(sum(accs) / 2, abs=5e-5)
    assert float(match[2]) == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5, abs=5e-5)
    # The same folder again is refused rather than overwritten.
    with pytest.raises(SystemExit):
        main(["baseline", "--seeds", "0", "1", "--out", str(out)])


@pytest.mark.integration
def test_baseline_learns_from_the_real_data(tmp_path, monkeypatch):
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    result = run_recipe("baseline", out_dir=tmp_path / "run", seed=1, epochs=1,
                        limit_train=2000, quiet=True)
    assert result["train_samples"] == 1600 and result["val_samples"] == 400
    assert result["test_samples"] == 10000
    assert 0.5 < result["test_accuracy"] < 1.0  # 1,600 images and one epoch still learn
