"""FCNetClassifier against scikit-learn's MLPClassifier (and skorch when installed).

Same data, same network (one hidden layer of ``--hidden`` ReLU units), same optimiser
(Adam, lr 1e-3, no L2), same batch size and the same number of epochs: every contender
runs all of them (the stopping rules on the training loss are set out of reach). Three
data sets: wine and breast cancer (shipped with scikit-learn; 70/30 stratified split,
standardised on the training part) and flattened Fashion-MNIST (a stratified subset of
``--fmnist-train`` training images, scaled to [0, 1], scored on the 10,000 test images).

The contenders run alternately (the order rotates each repeat, one seed per repeat), in
one process, with torch and the BLAS library limited to ``--threads`` threads, after one
untimed warm-up fit each on 64 samples of every data set (the first optimiser a process
builds makes torch import its compiler stack; that one-time cost is recorded apart as
``warmup_fit_seconds``). Fit seconds are wall-clock seconds of ``fit`` alone; accuracy
is on the test part.

Examples::

    python benchmarks/bench_sklearn.py
    python benchmarks/bench_sklearn.py --quick     # wine only, 1 repeat, 5 epochs
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

import _common as C
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fcnet.sklearn import FCNetClassifier

try:
    import skorch
    from skorch import NeuralNetClassifier
except ImportError:  # skorch is optional
    skorch = None


def tabular(loader: Any, seed: int) -> tuple[np.ndarray, ...]:
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(Xtr)
    return (scaler.transform(Xtr).astype(np.float32), ytr,
            scaler.transform(Xte).astype(np.float32), yte)


def fashion_mnist(n_train: int, seed: int) -> tuple[np.ndarray, ...]:
    from fcnet.data import FashionMNIST

    train, test = FashionMNIST(split="train"), FashionMNIST(split="test")
    X = train.images.reshape(len(train), -1).numpy()
    y = train.labels.numpy()
    keep, _ = train_test_split(np.arange(len(y)), train_size=n_train, stratify=y,
                               random_state=seed)
    Xte = test.images.reshape(len(test), -1).numpy().astype(np.float32) / 255
    return X[keep].astype(np.float32) / 255, y[keep], Xte, test.labels.numpy()


def make_contenders(hidden: int, epochs: int, batch_size: int, lr: float,
                    n_features: int, n_classes: int) -> dict[str, Any]:
    """``name -> (seed -> unfitted estimator)``, all with the same network and settings."""
    contenders: dict[str, Any] = {
        "fcnet": lambda seed: FCNetClassifier(
            hidden_sizes=(hidden,), epochs=epochs, batch_size=batch_size, lr=lr,
            n_iter_no_change=epochs, random_state=seed),
        "sklearn-mlp": lambda seed: MLPClassifier(
            hidden_layer_sizes=(hidden,), max_iter=epochs, batch_size=batch_size,
            learning_rate_init=lr, alpha=0.0, n_iter_no_change=epochs + 1, tol=0.0,
            random_state=seed),
    }
    if skorch is not None:
        def make_skorch(seed: int) -> Any:
            torch.manual_seed(seed)  # skorch draws weights and batches from torch's RNG
            module = torch.nn.Sequential(torch.nn.Linear(n_features, hidden), torch.nn.ReLU(),
                                         torch.nn.Linear(hidden, n_classes))
            return NeuralNetClassifier(
                module, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                lr=lr, max_epochs=epochs, batch_size=batch_size, train_split=None,
                iterator_train__shuffle=True, verbose=0, device="cpu")

        contenders["skorch"] = make_skorch
    return contenders


def run_dataset(name: str, data: tuple[np.ndarray, ...], *, hidden: int, epochs: int,
                batch_size: int, lr: float, repeats: int) -> list[dict[str, Any]]:
    Xtr, ytr, Xte, yte = data
    contenders = make_contenders(hidden, epochs, batch_size, lr, Xtr.shape[1],
                                 len(np.unique(ytr)))
    names = list(contenders)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    warmup: dict[str, float] = {}
    for contender in names:  # one-time costs (torch imports its optimiser code lazily)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with C.Clock() as clock:
                contenders[contender](10_000).fit(Xtr[:64], ytr[:64].astype(np.int64))
        warmup[contender] = clock.wall
    for rep in range(repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for contender in order:
            est = contenders[contender](rep)
            y_fit = ytr.astype(np.int64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                with C.Clock() as clock:
                    est.fit(Xtr, y_fit)
            acc = float(np.mean(est.predict(Xte) == yte))
            runs[contender].append({"seed": rep, "accuracy": acc, "fit_seconds": clock.wall,
                                    "fit_cpu_seconds": clock.cpu})
            print(f"{name:14s} {contender:12s} seed {rep}  accuracy {acc:.4f}  "
                  f"fit {clock.wall:.2f} s", flush=True)
    rows = []
    for contender in names:
        acc = [r["accuracy"] for r in runs[contender]]
        secs = [r["fit_seconds"] for r in runs[contender]]
        rows.append({
            "dataset": name, "contender": contender,
            "n_train": len(ytr), "n_test": len(yte), "n_features": Xtr.shape[1],
            "accuracy_mean": statistics.mean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "fit_seconds_median": statistics.median(secs),
            "fit_seconds": C.summarize(secs),
            "warmup_fit_seconds": warmup[contender],
            "runs": runs[contender],
        })
    return rows


def main() -> None:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="seeds per contender")
    parser.add_argument("--hidden", type=int, default=100, help="hidden units")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tabular-epochs", type=int, default=50)
    parser.add_argument("--fmnist-epochs", type=int, default=10)
    parser.add_argument("--fmnist-train", type=int, default=10000,
                        help="Fashion-MNIST training images used (stratified subset)")
    args = parser.parse_args()
    started = time.time()
    if args.quick:
        args.repeats, args.tabular_epochs = 1, 5
    threads = C.set_threads(args.threads)
    settings = {"hidden_sizes": [args.hidden], "activation": "relu", "optimizer": "adam",
                "lr": 1e-3, "weight_decay": 0.0, "batch_size": args.batch_size,
                "tabular_epochs": args.tabular_epochs, "fmnist_epochs": args.fmnist_epochs,
                "fmnist_train": args.fmnist_train, "repeats": args.repeats,
                "threads": threads}
    common = {"hidden": args.hidden, "batch_size": args.batch_size, "lr": 1e-3,
              "repeats": args.repeats}
    rows: list[dict[str, Any]] = []
    with threadpool_limits(limits=threads):
        rows += run_dataset("wine", tabular(load_wine, args.seed),
                            epochs=args.tabular_epochs, **common)
        if not args.quick:
            rows += run_dataset("breast_cancer", tabular(load_breast_cancer, args.seed),
                                epochs=args.tabular_epochs, **common)
            rows += run_dataset("fashion_mnist", fashion_mnist(args.fmnist_train, args.seed),
                                epochs=args.fmnist_epochs, **common)
    C.print_table(rows, [("dataset", "data", "s"), ("contender", "contender", "s"),
                         ("accuracy_mean", "accuracy", ".4f"), ("accuracy_std", "std", ".4f"),
                         ("fit_seconds_median", "fit s (median)", ".2f")])
    import sklearn

    versions = {"sklearn": sklearn.__version__,
                "skorch": None if skorch is None else skorch.__version__}
    C.write_result("sklearn", {"settings": settings, "versions": versions, "rows": rows},
                   quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
