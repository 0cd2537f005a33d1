"""The ``fcnet`` command line, run as a user runs it: ``python -m fcnet ...``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnet import build_mlp, load_images, load_model, save_model
from fcnet.cli import main
from fcnet.recipes import RECIPES


def fcnet(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcnet", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess | str, *needles: str) -> None:
    stderr = result if isinstance(result, str) else result.stderr
    if not isinstance(result, str):
        assert result.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "error:" in lines[0] and "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0]


def photo_of(image: torch.Tensor) -> Image.Image:
    """A data-set image as a photo: a dark object on light grey paper, RGB, 10x larger."""
    paper = 230.0
    dark = paper - image.numpy().astype(np.float64) * paper / 255.0
    picture = Image.fromarray(np.rint(dark).astype(np.uint8)).convert("RGB")
    return picture.resize((280, 280), Image.BILINEAR)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    result = fcnet("train", "baseline", "--epochs", "2", "--limit-train", "3000",
                   "--threads", "1", "--output", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("test_accuracy=")
    return out


@pytest.fixture(scope="module")
def test_set():
    from fcnet.data import FashionMNIST

    return FashionMNIST(split="test")


@pytest.fixture
def untrained_model(tmp_path) -> Path:
    save_model(build_mlp([784, 16, 10], seed=0), tmp_path / "untrained")
    return tmp_path / "untrained"


# ---------------------------------------------------------------------- help and options


def test_help_shows_every_command_with_examples(capsys):
    result = fcnet("--help")
    assert result.returncode == 0
    for command in ("train", "recipes", "evaluate", "predict", "export", "info"):
        assert command in result.stdout
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"fcnet {command}" in text.split("examples:")[1]


def test_recipes_lists_one_line_per_recipe(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(RECIPES)


@pytest.mark.parametrize("argv, needle", [
    (["train", "no_such_recipe"], "invalid choice"),
    (["train", "baseline", "--epochs", "0"], "--epochs"),
    (["predict", "model", "x.png", "--top-k", "0"], "--top-k"),
    (["export", "model", "--format", "tflite"], "--format"),
    ([], "COMMAND"),
])
def test_bad_options_are_argparse_errors(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fcnet") and needle in err


# ---------------------------------------------------------------------- failures


def test_missing_model_is_one_line(capsys, tmp_path):
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    assert_one_line_error(capsys.readouterr().err, "nowhere", "fcnet info")


def test_broken_model_is_one_line(capsys, untrained_model):
    (untrained_model / "model.json").write_text("{not json", encoding="utf-8")
    assert main(["predict", str(untrained_model), "x.png"]) == 2
    assert_one_line_error(capsys.readouterr().err, "model.json")


def test_unsupported_model_is_one_line(capsys, tmp_path):
    save_model(build_mlp([10, 4, 3], seed=0), tmp_path / "tabular")
    Image.new("L", (28, 28)).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "tabular"), str(tmp_path / "a.png")]) == 2
    assert_one_line_error(capsys.readouterr().err, "unsupported model", "10 input features")


def test_train_errors_name_the_options(capsys, tmp_path):
    assert main(["train", "baseline", "--limit-train", "5", "--output",
                 str(tmp_path / "r")]) == 2
    assert_one_line_error(capsys.readouterr().err, "fcnet train: error: --limit-train must "
                                                   "be >= 10, got 5")
    assert main(["train", "best_budget", "--epochs", "1", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--epochs 1 leaves recipe 'best_budget' no augmented epoch" in err
    assert "dataclasses" not in err and not (tmp_path / "r").exists()


def test_classes_named_twice_are_one_line(capsys, tmp_path):
    save_model(build_mlp([16, 4, 3], seed=0), tmp_path / "m")
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "a.png"), "--classes",
                 "a,a,b"]) == 2
    assert_one_line_error(capsys.readouterr().err, "--classes must name each class once; "
                                                   "['a'] appear more than once")


def test_broken_and_missing_images_are_one_line(tmp_path, untrained_model):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    assert_one_line_error(fcnet("predict", untrained_model, broken), "broken.png")
    assert main(["predict", str(untrained_model), str(tmp_path / "gone.jpg")]) == 2


def test_warnings_are_one_line(tmp_path, untrained_model):
    Image.new("L", (28, 28)).save(tmp_path / "blank.png")
    result = fcnet("predict", untrained_model, tmp_path / "blank.png")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'blank.png'}: ")
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "warning: " in line]
    assert "not been trained" in result.stderr


# ---------------------------------------------------------------------- a trained run


@pytest.mark.integration
def test_train_writes_the_run_and_info_reads_it(run_dir):
    for name in ("model/model.json", "model/model.safetensors", "history.json",
                 "metrics.json", "curves.png", "confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["limit_train"] == 3000
    result = fcnet("info", run_dir, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["spec"]["sizes"] == [784, 128, 64, 10]
    assert info["parameters"] == load_model(run_dir).num_parameters
    assert info["preprocessing"] == {"input_norm": [0.5, 0.5], "input_dtype": "uint8",
                                     "input_range": [0.0, 1.0], "feature_names": None,
                                     "pixels": True}
    assert info["metrics"]["test_accuracy"] == metrics["test_accuracy"]
    assert info["classes"][0] == "T-shirt/top"
    text = fcnet("info", run_dir / "model" / "model.json").stdout
    assert "parameters: 109,386" in text and "test_accuracy=" in text


@pytest.mark.integration
def test_evaluate_reports_the_runs_test_metrics(run_dir):
    result = fcnet("evaluate", run_dir, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert report["n"] == 10_000
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    assert report["confusion_matrix"] == metrics["confusion_matrix"]
    assert report["per_class_accuracy"] == pytest.approx(metrics["per_class_accuracy"])
    text = fcnet("evaluate", run_dir).stdout
    assert f"accuracy: {metrics['test_accuracy']:.4f}" in text
    assert "confusion matrix" in text and "Ankle boot" in text


@pytest.mark.integration
def test_evaluate_an_image_folder_maps_names(run_dir, test_set, tmp_path):
    # Sub-folder names as a file system allows them; sorted, they are not in label order.
    folders = {9: "ankle_boot", 0: "T-shirt", 1: "trouser", 7: "Sneaker"}
    picked = [i for i in range(200) if int(test_set.labels[i]) in folders]
    for i in picked:
        folder = tmp_path / "photos" / folders[int(test_set.labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(test_set.images[i].numpy()).save(folder / f"{i:04d}.png")
    result = fcnet("evaluate", run_dir, "--data", tmp_path / "photos", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    pred = load_model(run_dir)(test_set.images[picked]).argmax(1)
    expected = (pred == test_set.labels[picked]).double().mean().item()
    assert report["n"] == len(picked)
    assert report["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert report["per_class_accuracy"]["Bag"] is None  # no sub-folder for it


@pytest.mark.integration
def test_predict_dataset_png_and_photo_agree(run_dir, test_set, tmp_path):
    model = load_model(run_dir)
    proba = torch.softmax(model(test_set.images[:5]), 1).detach()
    files = []
    for i in range(5):
        Image.fromarray(test_set.images[i].numpy()).save(tmp_path / f"data{i}.png")
        photo_of(test_set.images[i]).save(tmp_path / f"photo{i}.png")
        photo_of(test_set.images[i]).save(tmp_path / f"photo{i}.jpg", quality=90)
        files += [tmp_path / f"data{i}.png", tmp_path / f"photo{i}.png",
                  tmp_path / f"photo{i}.jpg"]
    result = fcnet("predict", run_dir, *files, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for i in range(5):
        data, photo, jpeg = out[3 * i:3 * i + 3]
        assert data["source"] == str(tmp_path / f"data{i}.png")
        assert data["label"] == int(proba[i].argmax())
        assert data["probability"] == pytest.approx(float(proba[i].max()), abs=1e-6)
        assert photo["label"] == data["label"] == jpeg["label"], (i, data, photo, jpeg)
    assert out[0]["class"] == test_set.class_names[out[0]["label"]]  # names from metrics.json


@pytest.mark.integration
def test_predict_a_folder_in_sorted_order_with_top_k(run_dir, test_set, tmp_path):
    for name, i in (("c.png", 0), ("a.jpg", 1), ("b.bmp", 2)):
        Image.fromarray(test_set.images[i].numpy()).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    result = fcnet("predict", run_dir, tmp_path, "--top-k", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        str(tmp_path / n) for n in ("a.jpg", "b.bmp", "c.png")]
    for line in lines:
        probs = [float(part.rsplit(" ", 1)[1]) for part in line.split(": ", 1)[1].split(", ")]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.001


def test_an_image_of_nothing_is_predicted_with_a_warning(tmp_path, untrained_model, capsys):
    Image.new("L", (40, 30), 255).save(tmp_path / "white.png")  # blank paper
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 250).astype(np.uint8)).save(
        tmp_path / "texture.png")
    assert main(["predict", str(untrained_model), str(tmp_path / "white.png"),
                 str(tmp_path / "texture.png")]) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'white.png'}: nothing stands out from the background" in err
    assert "texture.png" not in err


def test_load_images_matches_the_dataset_form(tmp_path):
    digit = torch.zeros(28, 28, dtype=torch.uint8)
    digit[4:24, 10:18] = 200  # a light bar on black, as in the data set
    Image.fromarray(digit.numpy()).save(tmp_path / "data.png")
    images = load_images([tmp_path / "data.png", photo_of(digit)])
    assert images.dtype == torch.uint8 and images.shape == (2, 28, 28)
    assert torch.equal(images[0], digit)  # already a data-set image: unchanged
    # The photo: trimmed, 28 pixels high, centred, light on black, the grey paper at 0.
    photo = images[1]
    assert photo[:, :8].max() == 0 and photo[:, 20:].max() == 0
    assert photo[0, 9:19].min() > 0 and photo[27, 9:19].min() > 0
    assert int(photo[14, 14]) == 200


def test_load_images_reads_any_mode_alike(tmp_path):
    bar = np.zeros((28, 28), dtype=np.uint8)
    bar[4:24, 10:18] = 200
    dark_on_white = Image.fromarray(255 - bar).resize((140, 140), Image.NEAREST)
    transparent = np.zeros((140, 140, 4), dtype=np.uint8)
    transparent[..., 3] = np.asarray(Image.fromarray(bar).resize((140, 140), Image.NEAREST))
    files = {
        "gray.png": dark_on_white,
        "rgb.png": dark_on_white.convert("RGB"),
        "cmyk.tif": dark_on_white.convert("CMYK"),
        "palette.gif": dark_on_white.convert("RGB").convert("P"),
        "deep.png": Image.fromarray((255 - bar).astype(np.uint16) * 257),  # 16-bit
        "transparent.png": Image.fromarray(transparent, "RGBA"),  # black ink, alpha = shape
        "light_on_black.png": Image.fromarray(bar).resize((140, 140), Image.NEAREST),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
    images = load_images([tmp_path / name for name in files]).float()
    reference = images[0]
    assert reference.max() > 150 and reference[:, :5].max() == 0
    for name, image in zip(files, images, strict=True):
        assert (image - reference).abs().mean() < 4, name
