"""Tests for fcnet.recipes: the seed recipes match SEED.md, the runner writes a full run."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from torch import nn

from fcnet import EarlyStopping, Trainer, build_mlp
from fcnet.checkpoint import load_model
from fcnet.data import FashionMNIST
from fcnet.models import MLPSpec
from fcnet.recipes import RECIPES, RUN_FILES, Recipe, get_recipe, main, run_recipe

# ----------------------------------------------------------------------------- registry

UNKNOWN_WIDE = ("unknown recipe 'wide'; known recipes: baseline, baseline_as_described, best, "
                "best_budget, best_lean, best_long, best_split, deep")


def _layers(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_registry_holds_the_seed_recipes():
    assert set(RECIPES) >= {"baseline", "deep"}
    with pytest.raises(TypeError):
        RECIPES["mine"] = RECIPES["baseline"]  # read-only mapping


def test_baseline_matches_seed():
    r = RECIPES["baseline"]
    assert r.sizes == (784, 128, 64, 10)
    assert r.dropout == (0.25, 0.0)
    assert (r.activation, r.output, r.loss, r.optimizer) == ("relu", "log_softmax", "nll", "adam")
    assert r.lr == 0.003 and r.epochs == 25 and r.batch_size == 64
    assert r.input_norm == (0.5, 0.5) and r.val_fraction == 0.2
    assert r.scheduler is None and r.weight_decay == 0 and r.augment is None
    assert r.restore_best and r.monitor == "val_loss" and r.patience is None
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
    assert r.sizes == (784, 392, 196, 98, 49, 10)
    assert (r.activation, r.output, r.loss, r.optimizer) == ("relu", "log_softmax", "nll", "adam")
    assert r.lr == 0.0007 and r.epochs == 35 and r.batch_size == 64
    assert r.input_norm == (0.5, 0.5) and r.val_fraction == 0.2
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
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        Recipe.from_dict({**RECIPES["deep"].to_dict(), "colour": "red"})


def test_model_spec_is_the_built_models_spec():
    r = RECIPES["deep"]
    assert isinstance(r.model_spec, MLPSpec)
    assert r.build_model().spec == r.model_spec


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"output": "logits"}, ValueError, r"loss='nll' needs output='log_softmax'"),
        ({"lr": 0.0}, ValueError, r"lr must be a finite number > 0, got 0.0"),
        ({"epochs": 0}, ValueError, r"epochs must be >= 1, got 0"),
        ({"batch_size": 6.4}, TypeError, r"batch_size must be an int"),
        ({"dropout": (0.25,)}, ValueError, r"one value per hidden layer \(2\)"),
        ({"dropout": 1.5}, ValueError, r"dropout must be in \[0, 1\), got 1.5"),
        ({"optimizer": "lbfgs"}, ValueError, r"optimizer must be one of 'adam'"),
        ({"loss": "mse"}, ValueError, r"loss must be one of"),
        ({"label_smoothing": 0.1}, ValueError, r"label_smoothing needs loss='cross_entropy'"),
        ({"scheduler": "linear"}, ValueError, r"scheduler must be one of None"),
        ({"scheduler_kwargs": {"gamma": 0.5}}, ValueError, r"scheduler_kwargs needs a scheduler"),
        ({"augment": "rotate:10"}, ValueError, r"augment must be a comma-separated list"),
        ({"augment": "shift:two"}, ValueError, r"augment 'shift' takes a int value"),
        ({"val_fraction": 1.0}, ValueError, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"patience": -1}, ValueError, r"patience must be >= 0, got -1"),
        ({"val_fraction": 0.0}, ValueError, r"val_fraction=0 leaves no validation data"),
        ({"val_fraction": 0.0, "restore_best": False, "patience": 3}, ValueError,
         r"set restore_best=False and patience=None"),
        ({"monitor": "loss"}, ValueError, r"monitor must be a history key"),
        ({"precision": "fp16"}, ValueError, r"precision must be one of 'fp32', 'bf16'"),
        ({"threads": 0}, ValueError, r"threads must be >= 1, got 0"),
        ({"mixup": -1.0}, ValueError, r"mixup must be a finite number >= 0, got -1.0"),
        ({"name": ""}, ValueError, r"name must be a non-empty str"),
        ({"distill_weight": 1.5}, ValueError, r"distill_weight must be in \[0, 1\]"),
        ({"distill_temperature": 0}, ValueError, r"distill_temperature must be a finite"),
        ({"no_augment_epochs": 2}, ValueError, r"needs augment or mixup"),
        ({"no_augment_epochs": 25, "augment": "flip"}, ValueError,
         r"no_augment_epochs \(25\) must be below epochs \(25\)"),
        ({"no_augment_epochs": -1, "augment": "flip"}, ValueError, r"no_augment_epochs"),
    ],
)
def test_bad_recipe_fields_raise(changes, error, match):
    with pytest.raises(error, match=match):
        dataclasses.replace(RECIPES["baseline"], **changes)


def test_recipe_is_frozen_and_lists_become_tuples():
    r = dataclasses.replace(RECIPES["baseline"], sizes=[784, 32, 10], dropout=0.1)
    assert r.sizes == (784, 32, 10) and r.dropout == (0.1,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.lr = 1.0


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
    # lr=0 never improves after epoch 1: a short patience would stop; this one must not.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.arange(64) % 3
    recipe = dataclasses.replace(RECIPES["baseline"], sizes=(8, 4, 3), dropout=0.0, epochs=6)
    model = build_mlp([8, 4, 3], output="log_softmax")
    trainer = Trainer(model, lr=0.0, epochs=6, loss="nll", callbacks=recipe.callbacks(),
                      progress=False, seed=0)
    history = trainer.fit((x, y), (x, y))
    assert len(history) == 6
    assert "stop_reason" not in history.meta
    assert history.meta["restored_best_epoch"] == 1


def test_no_callbacks_when_keeping_the_last_weights():
    r = dataclasses.replace(RECIPES["deep"], restore_best=False)
    assert r.callbacks() == []
    (cb,) = dataclasses.replace(r, patience=3).callbacks()
    assert cb.patience == 3 and not cb.restore_best


# ----------------------------------------------------------------------------- runner


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
        ({"limit_train": 60001}, ValueError, r"limit_train must be at most the 60000"),
        ({"limit_train": 5}, ValueError, r"limit_train must be >= 10, got 5"),
        ({"threads": 0}, ValueError, r"threads must be >= 1, got 0"),
        ({"quiet": "yes"}, TypeError, r"quiet must be True or False"),
        ({"out_dir": 5}, TypeError, r"out_dir must be a path"),
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


def test_run_recipe_rejects_bad_teachers_before_work(tmp_path, no_data, capsys):
    from fcnet import save_model

    save_model(build_mlp([784, 8, 3]), tmp_path / "three")
    for teachers, error, match in (
        ("runs/t", TypeError, r"teachers must be a sequence of paths"),
        ([], ValueError, r"teachers is empty"),
        ([3], TypeError, r"each teacher must be a path"),
        ([tmp_path / "nowhere"], FileNotFoundError, r"nowhere"),
        ([tmp_path / "three"], ValueError, r"maps 784 features to 3 classes"),
    ):
        with pytest.raises(error, match=match):
            run_recipe("baseline", out_dir=tmp_path / "run", teachers=teachers)
    assert not (tmp_path / "run").exists()
    save_model(build_mlp([784, 8, 10]), tmp_path / "ten")
    for argv, match in (
        (["--teachers", str(tmp_path / "three")], "maps 784 features to 3 classes"),
        (["--distill-weight", "0.7"], "need --teachers"),
        (["--teachers", str(tmp_path / "ten"), "--distill-weight", "2"],
         r"distill_weight must be in \[0, 1\]"),
        (["--teachers", str(tmp_path / "ten"), "--distill-temperature", "-1"],
         "distill_temperature must be a finite number > 0"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["baseline", "--out", str(tmp_path / "run"), *argv])
        assert exc.value.code == 2 and re.search(match, capsys.readouterr().err), argv
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_a_recipe_distils_from_teacher_runs_of_its_split(tmp_path, monkeypatch):
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    small = {"epochs": 1, "limit_train": 1000, "quiet": True}
    teacher = run_recipe("baseline", out_dir=tmp_path / "teacher", seed=0, **small)
    student_recipe = dataclasses.replace(RECIPES["baseline"], distill_weight=0.7,
                                         distill_temperature=3.0)
    # The same split: taught, and all the training time is counted.
    student = run_recipe(student_recipe, out_dir=tmp_path / "student", seed=0,
                         teachers=[tmp_path / "teacher"], **small)
    assert student["teachers"] == [{"path": str(tmp_path / "teacher"),
                                    "train_seconds": teacher["train_seconds"]}]
    assert student["total_train_seconds"] == pytest.approx(
        student["train_seconds"] + teacher["train_seconds"])
    assert Recipe.from_dict(student["recipe"]).distill_weight == 0.7
    # Another seed splits otherwise: the teacher saw some of its validation images.
    with pytest.raises(ValueError, match=r"not trained on this run's training split"):
        run_recipe(student_recipe, out_dir=tmp_path / "other", seed=1,
                   teachers=[tmp_path / "teacher"], **small)
    assert not (tmp_path / "other").exists()
    # A refit holds nothing out; a bare model folder has no recorded time.
    refit = dataclasses.replace(student_recipe, val_fraction=0.0, restore_best=False)
    result = run_recipe(refit, out_dir=tmp_path / "refit", seed=1,
                        teachers=[tmp_path / "teacher" / "model"], **small)
    assert result["teachers"][0]["train_seconds"] is None
    assert result["total_train_seconds"] is None and 0.3 < result["test_accuracy"] < 1


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
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("baseline: ") and "\ndeep: " in out


@pytest.mark.integration
def test_run_recipe_writes_a_complete_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    threads_before = torch.get_num_threads()
    result = run_recipe("baseline", out_dir=out, seed=1, epochs=1, limit_train=2000,
                        overwrite=True)
    assert torch.get_num_threads() == threads_before
    for name in RUN_FILES:
        assert (out / name).stat().st_size > 0, name
    assert (out / "notes.txt").read_text() == "mine"  # overwrite replaces run files only
    for name in RUN_FILES:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"test_accuracy=0\.\d{4}", lines[-1])
    assert sum(line.startswith("epoch 1/1 ") for line in lines) == 1
    assert float(lines[-1].split("=")[1]) == pytest.approx(result["test_accuracy"], abs=5e-5)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed"] == 1 and metrics["epochs_run"] == 1
    assert metrics["train_samples"] == 1600 and metrics["val_samples"] == 400
    assert metrics["test_samples"] == 10000
    assert Recipe.from_dict(metrics["recipe"]) == dataclasses.replace(
        RECIPES["baseline"], epochs=1
    )
    cm = torch.tensor(metrics["confusion_matrix"])
    assert cm.shape == (10, 10) and int(cm.sum()) == 10000
    assert metrics["test_accuracy"] == pytest.approx(float(cm.trace()) / 10000)
    assert 0.5 < metrics["test_accuracy"] < 1.0  # 1,600 images and one epoch still learn
    assert set(metrics["per_class_accuracy"]) == set(metrics["classification_report"]["classes"])
    assert metrics["torch_version"] == torch.__version__
    assert metrics["wall_seconds"] > 0 and metrics["test_loss"] > 0
    # The kept weights are the selected epoch's, so their validation score is that epoch's.
    history = json.loads((out / "history.json").read_text())["epochs"]
    chosen = history[metrics["selected_epoch"] - 1]
    assert metrics["val_accuracy"] == pytest.approx(chosen["val_accuracy"], abs=1e-6)

    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1]

    # The saved model rebuilds without the recipe and predicts what was measured.
    model = load_model(out / "model")
    assert model.spec == RECIPES["baseline"].model_spec

    test = FashionMNIST(split="test")
    with torch.no_grad():
        out = model(test.images)
    pred = out.argmax(1)
    assert (pred == test.labels).double().mean().item() == pytest.approx(
        metrics["test_accuracy"], abs=1e-4
    )
    # The loss comes from the same single pass (cross-entropy of log-probabilities is
    # their NLL, so this holds for the log_softmax output too).
    assert metrics["test_loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(out, test.labels).item(), rel=1e-4
    )


@pytest.mark.integration
def test_run_recipe_refit_on_every_training_image(tmp_path, monkeypatch):
    # val_fraction=0: settings chosen on a split, then trained on all the images.
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    recipe = dataclasses.replace(RECIPES["baseline"], val_fraction=0.0, restore_best=False)
    result = run_recipe(recipe, out_dir=tmp_path / "refit", seed=0, epochs=1,
                        limit_train=1000, quiet=True)
    assert result["train_samples"] == 1000 and result["val_samples"] == 0
    assert result["val_accuracy"] is None and result["split"]["val"] is None
    assert result["split"]["train"]["subset"] == "val"  # the limit_train subset, whole
    history = json.loads((tmp_path / "refit" / "history.json").read_text())["epochs"]
    assert "val_loss" not in history[0] and 0.3 < result["test_accuracy"] < 1.0


@pytest.mark.integration
def test_run_recipe_passes_no_augment_epochs_to_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    seen = []
    original = Trainer

    def spy(*args, **kwargs):
        seen.append(kwargs["no_augment_epochs"])
        return original(*args, **kwargs)

    monkeypatch.setattr("fcnet.recipes.Trainer", spy)
    recipe = dataclasses.replace(RECIPES["baseline"], augment="flip,shift:1",
                                 no_augment_epochs=1)
    result = run_recipe(recipe, out_dir=tmp_path / "r", seed=0, epochs=2, limit_train=500,
                        quiet=True)
    assert seen == [1] and result["epochs_run"] == 2
    assert result["recipe"]["no_augment_epochs"] == 1
    # An epoch count that leaves nothing to augment fails before any work.
    with pytest.raises(ValueError, match=r"epochs=1 leaves recipe 'baseline' no augmented"):
        run_recipe(recipe, out_dir=tmp_path / "r1", seed=0, epochs=1, limit_train=500)
    assert not (tmp_path / "r1").exists()


@pytest.mark.integration
def test_cli_several_seeds_prints_mean_and_std(tmp_path, monkeypatch, capsys):
    # Figures are checked above; skipping them here keeps the test quick.
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    out = tmp_path / "seeds"
    code = main(["baseline", "--seeds", "0", "1", "--epochs", "1", "--limit-train", "500",
                 "--out", str(out), "--quiet"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"test_accuracy_mean=0\.\d{4} test_accuracy_std=0\.\d{4} seeds=0,1", last)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["test_accuracy"]) == 2
    assert (out / "seed0" / "metrics.json").exists() and (out / "seed1" / "metrics.json").exists()
    # The same folder again is refused rather than overwritten.
    with pytest.raises(SystemExit):
        main(["baseline", "--seeds", "0", "1", "--out", str(out)])


def test_best_recipe_is_a_pure_mlp_with_weight_averaging():
    from fcnet import FastDropout, WeightAveraging
    from fcnet.recipes import RECIPES

    best, split = RECIPES["best"], RECIPES["best_split"]
    model = best.build_model()
    allowed = (nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Dropout)
    layers = [m for name, m in model.named_children() if name != "input"]
    assert all(isinstance(m, allowed) for m in layers)
    assert [type(cb) for cb in best.callbacks()] == [WeightAveraging]
    with pytest.raises(ValueError, match=r"ema_decay and restore_best exclude each other"):
        dataclasses.replace(split, restore_best=True)
    with pytest.raises(ValueError, match=r"ema_decay must be None or in \(0, 1\), got 1.5"):
        dataclasses.replace(best, ema_decay=1.5)
    # "best" refits best_split's settings on all 60,000 images for as many steps, with
    # the faster dropout masks.
    assert best.val_fraction == 0 and split.val_fraction == 0.2
    assert dataclasses.replace(best, name=split.name, val_fraction=split.val_fraction,
                               epochs=split.epochs, threads=split.threads,
                               fast_dropout=split.fast_dropout,
                               description=split.description) == split
    assert best.threads == 2 and split.threads is None
    assert best.fast_dropout and not split.fast_dropout
    drops = [m for m in model if isinstance(m, nn.Dropout)]
    assert [(type(m), m.p) for m in drops] == [(FastDropout, 0.1)] + [(FastDropout, 0.3)] * 3
    assert best.epochs * 60000 == split.epochs * 48000


def test_best_long_is_best_on_a_longer_schedule_with_a_clean_last_quarter():
    best, long = RECIPES["best"], RECIPES["best_long"]
    # The validated run: 120 epochs of 48,000 images, the last 30 without augmentation.
    assert long.epochs * 60000 == 120 * 48000 and long.no_augment_epochs * 60000 == 30 * 48000
    assert dataclasses.replace(long, name=best.name, epochs=best.epochs, augment=None,
                               no_augment_epochs=0, description=best.description) == best
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
    # The validated run (eleventh study's t4): 80 epochs of 48,000 images, the last 20
    # without augmentation; the same share of clean epochs as best_long's.
    assert budget.epochs * 60000 == 80 * 48000
    assert budget.no_augment_epochs * 60000 == 20 * 48000
    assert budget.no_augment_epochs * long.epochs == long.no_augment_epochs * budget.epochs
    assert dataclasses.replace(budget, name=long.name, epochs=long.epochs,
                               no_augment_epochs=long.no_augment_epochs,
                               description=long.description) == long


def test_best_lean_is_best_long_with_two_hidden_layers():
    long, lean = RECIPES["best_long"], RECIPES["best_lean"]
    # The validated run (eleventh study's t5): best_long's t1 with --widths 1024 1024.
    assert lean.sizes == (784, 1024, 1024, 10) and lean.dropout == (0.3, 0.3)
    assert dataclasses.replace(lean, name=long.name, sizes=long.sizes, dropout=long.dropout,
                               description=long.description) == long
    weights = [m.weight.numel() for m in lean.build_model().modules()
               if isinstance(m, nn.Linear)]
    assert sum(weights) == 784 * 1024 + 1024 * 1024 + 1024 * 10


def test_baseline_as_described_has_both_dropout_layers():
    from fcnet.recipes import RECIPES

    described, baseline = RECIPES["baseline_as_described"], RECIPES["baseline"]
    model = described.build_model()
    assert [(name, m.p) for name, m in model.named_children() if isinstance(m, nn.Dropout)] == [
        ("drop1", 0.25), ("drop2", 0.25)
    ]  # fmt: skip
    # Dropout is the one difference from the baseline.
    assert dataclasses.replace(described, name="baseline", dropout=baseline.dropout,
                               description=baseline.description) == baseline
