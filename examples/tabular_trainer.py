"""A feature table with the Trainer: a DataFrame in, standardisation kept in the model.

The breast cancer data set that ships with scikit-learn (569 tumours, 30 numeric
features on very different scales, ``mean area`` in the hundreds next to ratios below
0.1) as a pandas DataFrame, plus one categorical column derived from it, ``size``, the
tertile of ``mean area`` (which it replaces), one-hot encoded with ``pd.get_dummies``.
The labels are the class indices of ``data.target_names`` (``malignant``, ``benign``).

A stratified 25% is held out for the test; of the rest, a stratified 15% is the
validation split for early stopping. :func:`fcnet.data.feature_norm` computes each
column's mean and std on the training rows only, and ``build_mlp(input_norm=...)``
makes them the model's first layer, so the test rows (and any later rows) are given
raw. The Trainer records the column names; the saved model is then read back and used
on the test rows from a CSV file by ``fcnet predict``'s table reader, as a command line
user would.

Measured with seeds 0, 1, 2 (the seed fixes the splits and the network; AMD EPYC Zen 4,
torch 2.14.1, CPU): test accuracy 0.9604 +- 0.0107 (mean +- sample std; seeds 0.9580,
0.9510, 0.9720; 143 test tumours, so one error is 0.007), and ``fcnet predict`` on the
CSV agreed with ``Trainer.predict`` on every row. The same runs without ``input_norm``
(the raw columns): 0.8858 (0.8112, 0.9161, 0.9301). scikit-learn's pipeline of the same
data with a StandardScaler and a grid search: ``examples/tabular_sklearn.py``.

Usage::

    python examples/tabular_trainer.py
    python examples/tabular_trainer.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from fcnet import EarlyStopping, Trainer, build_mlp, load_model, save_model
from fcnet.data import feature_norm


def load_data() -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """The features (``size`` one-hot encoded), the labels and the class names."""
    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns="target")
    X["size"] = pd.qcut(X.pop("mean area"), 3, labels=["small", "medium", "large"])
    X = pd.get_dummies(X, columns=["size"], dtype="float32")
    return X, data.target.rename("diagnosis"), [str(c) for c in data.target_names]


def run(seed: int, show: bool = True) -> float:
    """Train, evaluate and round-trip one model; return its test accuracy."""
    X, y, classes = load_data()
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                      random_state=seed)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.15,
                                                      stratify=y_rest, random_state=seed)
    model = build_mlp([X.shape[1], 32, 2], dropout=0.2, input_norm=feature_norm(X_train),
                      seed=seed)
    trainer = Trainer(model, lr=1e-3, epochs=200, batch_size=32, seed=seed, progress=False,
                      callbacks=[EarlyStopping(patience=15, restore_best=True)])
    history = trainer.fit((X_train, y_train), (X_val, y_val))
    accuracy = trainer.evaluate((X_test, y_test))["accuracy"]
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, Path(tmp) / "model")
        back = load_model(Path(tmp) / "model")
        assert back.spec.feature_names == tuple(X.columns)
        # The command line on the raw test rows, columns shuffled and an id added.
        rows = X_test[list(reversed(X.columns))].assign(id=range(len(X_test)))
        rows.to_csv(Path(tmp) / "test.csv", index=False)
        out = subprocess.run([sys.executable, "-m", "fcnet", "predict", str(Path(tmp) / "model"),
                              str(Path(tmp) / "test.csv")], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    predicted = [int(line.rsplit(":", 1)[1].split()[0]) for line in out]
    agree = sum(p == t for p, t in zip(predicted, trainer.predict(X_test).tolist(),
                                       strict=True))
    if agree != len(X_test):
        raise RuntimeError(f"fcnet predict on the CSV disagreed with Trainer.predict on "
                           f"{len(X_test) - agree} rows")
    if show:
        print(f"seed {seed}: {len(history)} epochs, best val_loss "
              f"{min(history.column('val_loss')):.4f}; test accuracy {accuracy:.4f} "
              f"({len(y_test)} tumours); fcnet predict on the CSV agreed on {agree} of "
              f"{len(out)} rows; classes {classes}")
    return accuracy


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    scores = [run(seed) for seed in args.seeds]
    if len(scores) > 1:
        print(f"test accuracy {statistics.mean(scores):.4f} +- {statistics.stdev(scores):.4f} "
              f"(mean +- sample std over seeds {args.seeds})")


if __name__ == "__main__":
    main()
