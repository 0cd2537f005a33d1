"""``fcnet predict`` on CSV files: the rows of a table as samples."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fcnet import Trainer, build_mlp, save_model
from fcnet.cli import main


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    """A model trained on a DataFrame with named columns, saved; and its trainer."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 3)) * [1.0, 10.0, 100.0], columns=["a", "b", "c"])
    y = (df["a"] > 0).astype(int) + (df["c"] > 0).astype(int)
    trainer = Trainer(build_mlp([3, 16, 3], seed=0), epochs=3, seed=0, progress=False)
    trainer.fit((df, y))
    folder = tmp_path_factory.mktemp("table") / "model"
    save_model(trainer.model, folder)
    return folder, trainer, df


def test_a_table_model_takes_its_columns_by_name(table_model, tmp_path, capsys):
    folder, trainer, df = table_model
    rows = df.iloc[:6]
    csv = tmp_path / "new.csv"
    # Another column order and an id column the model never saw.
    rows[["c", "a", "b"]].assign(id=range(6)).to_csv(csv, index=False)
    assert main(["predict", str(folder), str(csv), "--json", "--top-k", "2"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in results] == [f"{csv}:{i}" for i in range(1, 7)]
    proba = trainer.predict_proba(rows)
    assert [r["label"] for r in results] == proba.argmax(1).tolist()
    assert results[0]["probability"] == pytest.approx(float(proba[0].max()), abs=1e-6)
    assert len(results[0]["top"]) == 2
    assert main(["predict", str(folder), str(csv)]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(f"{csv}:1: ")


def test_a_pixel_model_reads_raw_pixel_rows_with_a_label_column(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 10
    trainer = Trainer(build_mlp([784, 16, 10], seed=0), epochs=1, seed=0, progress=False)
    trainer.fit((images, labels))
    save_model(trainer.model, tmp_path / "m")
    flat = images[:4].reshape(4, -1).numpy()
    header = "label," + ",".join(f"pixel{i + 1}" for i in range(784))
    lines = [header] + [f"{int(lab)}," + ",".join(map(str, row))
                        for lab, row in zip(labels[:4], flat, strict=True)]
    (tmp_path / "pixels.csv").write_text("\n".join(lines) + "\n")
    args = ["predict", str(tmp_path / "m"), str(tmp_path / "pixels.csv")]
    assert main(args) == 2
    assert "has 785 feature columns, the model takes 784; leave out the others with --drop" \
        in _error(capsys)
    assert main([*args, "--drop", "label", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    # Whole numbers are read as integers: raw pixels, as the uint8 images were.
    assert [r["label"] for r in results] == trainer.predict(images[:4]).tolist()


@pytest.mark.parametrize(("text", "extra", "message"), [
    ("a,b\n1,2\n", [], "lacks the model's columns ['c']"),
    ("1,2,3\n4,5,6\n", [], "needs a header row naming them"),
    ("a,b,c\n1,,3\n", [], "row 1, column 'b': the cell is empty"),
    ("a,b,c\n1,2,3\n1,x,3\n", [], "row 2, column 'b': 'x' is not a number"),
    ("a,b,c\n1,2,3\n1,2\n", [], "row 2 has 2 cells, the first row 3"),
    ("a,b,c\n", [], "has a header and no rows"),
    ("a,b,c\n1,2,3\n", ["--drop", "z"], "--drop: "),
    ("a,b,c\n1,nan,3\n", [], "holds NaN or infinite values"),
    ("a;b;c\n1;2;3\n", [], "fcnet reads comma-separated files, and its first line is "
                           "separated by ';'"),
])
def test_bad_tables_are_one_line_errors(table_model, tmp_path, capsys, text, extra, message):
    folder, _, _ = table_model
    (tmp_path / "t.csv").write_text(text)
    assert main(["predict", str(folder), str(tmp_path / "t.csv"), *extra]) == 2
    assert message in _error(capsys)


def test_each_table_is_read_by_its_own_rule(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 4, 4), dtype=torch.uint8, generator=g)
    trainer = Trainer(build_mlp([16, 8, 3], seed=0), epochs=1, seed=0, progress=False)
    trainer.fit((images, torch.arange(6) % 3))
    save_model(trainer.model, tmp_path / "m")
    flat = images.reshape(6, -1)
    np.savetxt(tmp_path / "whole.csv", flat.numpy(), fmt="%d", delimiter=",")
    np.savetxt(tmp_path / "scaled.csv", flat.numpy() / 255, fmt="%.9f", delimiter=",")
    expected = trainer.predict(images).tolist()
    for files in (["whole.csv"], ["scaled.csv"], ["whole.csv", "scaled.csv"]):
        assert main(["predict", str(tmp_path / "m"), *[str(tmp_path / f) for f in files],
                     "--json"]) == 0
        results = json.loads(capsys.readouterr().out)
        assert [r["label"] for r in results] == expected * len(files), files
    # A file of pixels out of range is named in the error.
    (tmp_path / "bad.csv").write_text(",".join(["300"] * 16) + "\n")
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "whole.csv"),
                 str(tmp_path / "bad.csv")]) == 2
    assert f"'{tmp_path / 'bad.csv'}': the model was trained on uint8 pixels" in \
        _error(capsys)


def test_a_table_model_refuses_images(table_model, tmp_path, capsys):
    folder, _, _ = table_model
    assert main(["predict", str(folder), str(tmp_path / "shoe.png")]) == 2
    assert "trained on a table with the columns [a, b, c], not on images" in _error(capsys)


def test_images_and_tables_are_not_mixed(table_model, tmp_path, capsys):
    folder, _, _ = table_model
    (tmp_path / "t.csv").write_text("a,b,c\n1,2,3\n")
    assert main(["predict", str(folder), str(tmp_path / "t.csv"), "shoe.png"]) == 2
    assert "give image files or CSV files, not both" in _error(capsys)


def test_evaluate_reads_a_labelled_table(table_model, tmp_path, capsys):
    folder, trainer, df = table_model
    y = (df["a"] > 0).astype(int) + (df["c"] > 0).astype(int)
    expected = trainer.evaluate((df, y))
    csv = tmp_path / "test.csv"
    df.assign(outcome=y).to_csv(csv, index=False)
    assert main(["evaluate", str(folder), "--data", str(csv), "--label", "outcome",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 200 and report["accuracy"] == expected["accuracy"]
    assert report["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    # Labels may be the class names, given by --classes here.
    named = df.assign(outcome=np.array(["low", "mid", "high"])[y.to_numpy()])
    named.to_csv(csv, index=False)
    assert main(["evaluate", str(folder), "--data", str(csv), "--label", "outcome",
                 "--classes", "low,mid,high"]) == 0
    out = capsys.readouterr().out
    assert f"accuracy: {expected['accuracy']:.4f}" in out and "data: table" in out
    assert " rows)" in out  # per-class support counted in rows


@pytest.mark.parametrize(("args", "text", "message"), [
    ([], "a,b,c,y\n1,2,3,0\n", "name its label column with --label COLUMN"),
    (["--label", "y"], "a,b,c,y\n1,2,3,7\n", "holds 7, not a class index of the model's 3"),
    (["--label", "y"], "a,b,c,y\n1,2,3,cat\n", "the model's class names are not known"),
    (["--label", "y", "--classes", "p,q,r"], "a,b,c,y\n1,2,3,cat\n",
     "holds ['cat'], which are not the model's class names"),
    (["--label", "z"], "a,b,c,y\n1,2,3,0\n", "--label: "),
])
def test_bad_labelled_tables_are_one_line_errors(table_model, tmp_path, capsys, args, text,
                                                 message):
    folder, _, _ = table_model
    (tmp_path / "t.csv").write_text(text)
    assert main(["evaluate", str(folder), "--data", str(tmp_path / "t.csv"), *args]) == 2
    assert message in _error(capsys)


def test_label_and_drop_are_for_tables(table_model, capsys):
    folder, _, _ = table_model
    assert main(["evaluate", str(folder), "--label", "y"]) == 2
    assert "--label names the label column of a CSV file" in _error(capsys)
    assert main(["predict", str(folder), "shoe.png", "--drop", "id"]) == 2
    assert "--drop is for CSV files" in _error(capsys)


def test_top_classes_ranks_each_row():
    from fcnet.images import top_classes

    proba = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    out = top_classes(proba, ["a.csv:1", "a.csv:2"], classes=["x", "y", "z"], top_k=2)
    assert out[0] == {"source": "a.csv:1", "label": 1, "class": "y",
                      "probability": pytest.approx(0.7),
                      "top": [{"label": 1, "class": "y", "probability": pytest.approx(0.7)},
                              {"label": 2, "class": "z", "probability": pytest.approx(0.2)}]}
    assert [r["class"] for r in top_classes(proba, ["1", "2"])] == ["1", "0"]


def test_pandas_default_header_and_trailing_commas(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    trainer = Trainer(build_mlp([4, 8, 2], seed=0), epochs=1, seed=0, progress=False)
    trainer.fit((x, (x[:, 0] > 0).astype(int)))
    save_model(trainer.model, tmp_path / "m")
    expected = trainer.predict(x[:3]).tolist()
    pd.DataFrame(x[:3]).to_csv(tmp_path / "frame.csv", index=False)  # header 0,1,2,3
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "frame.csv"), "--json"]) == 0
    captured = capsys.readouterr()
    assert [r["label"] for r in json.loads(captured.out)] == expected
    assert "warning: " in captured.err and \
        "its first row, 0,1,...,3, is taken for the header" in captured.err
    lines = [",".join(f"{v:.9g}" for v in row) + "," for row in x[:3]]
    (tmp_path / "trailing.csv").write_text("\n".join(lines) + "\n")
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "trailing.csv"),
                 "--json"]) == 0
    assert [r["label"] for r in json.loads(capsys.readouterr().out)] == expected
