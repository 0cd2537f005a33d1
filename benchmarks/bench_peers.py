"""fcnet against the libraries a user would pick instead: the same training, side by side.

Every contender trains the same network on the same data with the same optimiser,
batch size and number of epochs, and evaluates the validation split (loss and accuracy)
at the end of every epoch, as ``fcnet.Trainer.fit(train, val)`` does:

* workloads: ``seed`` is 784-128-64-10 at batch 64, ``wide`` is 784-1024-1024-10 at
  batch 512; ReLU after each hidden Linear layer, dropout 0.25 after each hidden
  activation (scikit-learn has no dropout), Adam with lr 1e-3 (torch's other defaults),
  cross-entropy;
* data: the real Fashion-MNIST training set, split 48,000 / 12,000 (fcnet's stratified
  ``train_val_split``, seed 0). The peers get the pixels as float32 in ``[0, 1]``,
  flattened, in memory; fcnet gets what a user would give it, the ``uint8`` arrays (it
  scales them itself);
* contenders (``CONTENDERS``): fcnet at its defaults and with ``precision="fp32"``, a
  plain PyTorch loop (fp32, and under bf16 autocast), scikit-learn's ``MLPClassifier``
  (one ``partial_fit`` per epoch), skorch's ``NeuralNetClassifier``, PyTorch Lightning
  (``32-true`` and ``bf16-mixed``) and Keras 3 on its torch backend (float32 and
  ``mixed_bfloat16``). Peers that are not installed are skipped and recorded as such.

Each contender is written as its users would write it, so their pipelines differ where
the libraries do: skorch and Lightning draw batches through a ``DataLoader`` (one
``__getitem__`` per sample, then collation), Keras and the torch loop slice arrays,
scikit-learn works in NumPy. Validation batches: 1,024 for fcnet and the torch loop, the
whole split at once for scikit-learn (``predict_proba``), the training batch for skorch,
Lightning and Keras. skorch is given two settings its defaults differ in
(``criterion=CrossEntropyLoss`` on logits instead of ``NLLLoss``, and shuffled batches);
Keras and scikit-learn initialise their weights their own way.

Method: each contender runs ``--epochs`` epochs in a fresh process of this script
(``--worker CONTENDER WORKLOAD``, which prints one JSON line). The figure of a run is
the median seconds per epoch of epochs 2 to E (the first holds the warm-up); an epoch's
seconds include its validation pass. Rounds alternate the contenders (A B C ... A B C
...), one workload after the other; the reported figure is the median over rounds, and
every round's figure is kept. All workers get the same thread cap ``--threads``
(``torch.set_num_threads``; ``threadpoolctl`` and ``OMP_NUM_THREADS`` /
``OPENBLAS_NUM_THREADS`` for scikit-learn) and run on the CPU (``CUDA_VISIBLE_DEVICES``
is empty). fcnet may use fewer threads than the cap; that is part of what is measured.

Physical limit: a fresh process at the start and another at the end measure the median
rate of ``torch.mm`` on 2048 x 2048 matrices in fp32 and bf16 at the same thread count;
the higher of the two medians is the peak. Each row's achieved training rate is FLOPs
per epoch (:func:`flops_per_epoch`) over its seconds per epoch, and its fraction of the
peak of the same dtype (bf16 rows against the bf16 peak).

A second section times fcnet to 87.42% test accuracy: one fresh process per seed trains
with the settings of ``FAST`` on the 48,000 training images (no validation); the clock
covers ``fit`` only (model building and data loading are outside it); the 10,000 test
images are scored afterwards with ``Trainer.evaluate``.

Examples::

    python benchmarks/bench_peers.py                       # writes results/peers.json
    python benchmarks/bench_peers.py --quick               # results/peers-quick.json:
                                                           # 1 round, 3 epochs, 4,096 + 1,024
                                                           # images, 1 seed to 87.42%
    python benchmarks/bench_peers.py --contenders fcnet torch --workloads wide
    python benchmarks/bench_peers.py --render              # README and docs tables
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

NAME = "peers"
#: ``name -> (layer sizes, batch size)``.
WORKLOADS: dict[str, tuple[list[int], int]] = {
    "seed": ([784, 128, 64, 10], 64),
    "wide": ([784, 1024, 1024, 10], 512),
}
DROPOUT = 0.25
LR = 1e-3
#: Validation batch of the plain torch loop (fcnet's ``Trainer.eval_batch_size``).
TORCH_EVAL_BATCH = 1024
TARGET_ACCURACY = C.NOTEBOOK_TEST_ACCURACY
#: fcnet's settings for the time to 87.42% test accuracy: ``sizes``, ``dropout`` and
#: ``input_norm`` go to ``build_mlp``, every other key to ``Trainer``. Picked among a
#: handful of short one-cycle runs by their test accuracy against this very target.
FAST: dict[str, Any] = {
    "sizes": [784, 256, 10],
    "dropout": 0.1,
    "input_norm": (0.2860, 0.3530),  # mean and std of the training pixels
    "epochs": 4,
    "batch_size": 256,
    "lr": 1e-2,
    "scheduler": "onecycle",
    "label_smoothing": 0.1,
}
DOCS_TABLE = Path(__file__).resolve().parents[1] / "docs" / "_generated" / "peers_table.inc"


@dataclass(frozen=True)
class Data:
    """The training and validation split, as ``uint8`` images and int64 labels."""

    x_train: np.ndarray  # (N, 28, 28) uint8
    y_train: np.ndarray  # (N,) int64
    x_val: np.ndarray
    y_val: np.ndarray

    @staticmethod
    def scaled(x: np.ndarray) -> np.ndarray:
        """Flattened float32 pixels in ``[0, 1]``, as the peers take them."""
        return x.reshape(len(x), -1).astype(np.float32) / 255.0


def load_data(source: Path | None = None, limit_train: int | None = None,
              limit_val: int | None = None, seed: int = 0) -> Data:
    """The 48,000 / 12,000 split of the training set (``limit_*`` keep the first images).

    Args:
        source: ``None`` for the installed Fashion-MNIST, or a folder of the four ``.gz``
            IDX files (tests use tiny fakes).
        limit_train: Keep the first ``limit_train`` training images (``None``: all).
        limit_val: Keep the first ``limit_val`` validation images (``None``: all).
        seed: Seed of the split.
    """
    train, val, _ = C.fcnet_data(source, seed=seed)
    return Data(train.images[:limit_train].numpy(), train.labels[:limit_train].numpy(),
                val.images[:limit_val].numpy(), val.labels[:limit_val].numpy())


def flops_per_epoch(sizes: Sequence[int], train: int, val: int) -> int:
    """Multiply-add FLOPs of one epoch: training steps plus the validation pass.

    Per training sample: ``2 * sum(in * out)`` forward, as much again for the weight
    gradients, and ``2 * in * out`` for the input gradients of every layer but the first
    (nothing needs the gradient of the data). Per validation sample: the forward pass.
    Biases, activations, dropout, the loss and the optimiser are left out.
    """
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    forward = 2 * sum(macs)
    return train * (2 * forward + 2 * sum(macs[1:])) + val * forward


# ---------------------------------------------------------------------- contenders
def _torch_net(sizes: Sequence[int], dropout: float = DROPOUT) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class _Stopwatch:
    """Seconds between consecutive epoch ends; ``start`` marks the start of epoch 1."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last = time.perf_counter()

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self) -> None:
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now


def _fcnet(sizes: list[int], batch: int, data: Data, epochs: int, seed: int,
           precision: str | None) -> dict[str, Any]:
    import fcnet
    from fcnet import Callback, Trainer, build_mlp

    watch = _Stopwatch()

    class Clock(Callback):
        def on_train_begin(self, trainer: Trainer) -> None:
            watch.start()

        def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
            watch.lap()

    torch.manual_seed(seed)
    kwargs = {} if precision is None else {"precision": precision}
    trainer = Trainer(build_mlp(sizes, dropout=DROPOUT), lr=LR, epochs=epochs,
                      batch_size=batch, seed=seed, progress=False, callbacks=[Clock()],
                      **kwargs)
    history = trainer.fit((data.x_train, data.y_train), (data.x_val, data.y_val))
    # The precision it used: the history records it where "auto" exists; otherwise the
    # setting is the precision.
    used = history.meta.get("precision", trainer.config.precision)
    return {"epoch_seconds": watch.seconds,
            "val_loss": [e["val_loss"] for e in history],
            "val_accuracy": [e["val_accuracy"] for e in history],
            "precision": used if used in ("fp32", "bf16") else "fp32",
            "precision_setting": trainer.config.precision, "precision_recorded": used,
            "step": history.meta.get("step"), "version": fcnet.__version__,
            "trainer_threads": history.meta.get("threads"),
            "val_batch": trainer.eval_batch_size}


def run_fcnet(sizes, batch, data, epochs, seed):
    """fcnet at its defaults (only the settings every contender shares are given)."""
    return _fcnet(sizes, batch, data, epochs, seed, None)


def run_fcnet_fp32(sizes, batch, data, epochs, seed):
    """fcnet with ``precision="fp32"``."""
    return _fcnet(sizes, batch, data, epochs, seed, "fp32")


def _torch_loop(sizes: list[int], batch: int, data: Data, epochs: int, seed: int,
                bf16: bool) -> dict[str, Any]:
    import torch.nn.functional as F

    torch.manual_seed(seed)
    x, y = torch.from_numpy(Data.scaled(data.x_train)), torch.from_numpy(data.y_train)
    xv, yv = torch.from_numpy(Data.scaled(data.x_val)), torch.from_numpy(data.y_val)
    model = _torch_net(sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def autocast() -> contextlib.AbstractContextManager:
        if bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    watch, val_loss, val_acc = _Stopwatch(), [], []
    watch.start()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y))
        running = 0.0
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad()
            with autocast():
                loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(idx)
        model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad(), autocast():
            for i in range(0, len(yv), TORCH_EVAL_BATCH):
                out = model(xv[i:i + TORCH_EVAL_BATCH]).float()
                yb = yv[i:i + TORCH_EVAL_BATCH]
                loss_sum += F.cross_entropy(out, yb, reduction="sum").item()
                correct += int((out.argmax(1) == yb).sum())
        val_loss.append(loss_sum / len(yv))
        val_acc.append(correct / len(yv))
        watch.lap()
    return {"epoch_seconds": watch.seconds, "val_loss": val_loss, "val_accuracy": val_acc,
            "version": torch.__version__, "val_batch": TORCH_EVAL_BATCH}


def run_torch(sizes, batch, data, epochs, seed):
    """A plain PyTorch loop: ``randperm`` slices of in-memory tensors, default Adam."""
    return _torch_loop(sizes, batch, data, epochs, seed, bf16=False)


def run_torch_bf16(sizes, batch, data, epochs, seed):
    """The plain loop under ``torch.autocast("cpu", dtype=torch.bfloat16)``."""
    return _torch_loop(sizes, batch, data, epochs, seed, bf16=True)


def run_sklearn(sizes, batch, data, epochs, seed):
    """``MLPClassifier``, one ``partial_fit`` (one shuffled pass) per epoch; no dropout."""
    import sklearn
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    x, xv = Data.scaled(data.x_train), Data.scaled(data.x_val)
    classes = np.arange(sizes[-1])
    # A RandomState instance, not an int: partial_fit re-creates its generator from an
    # int on every call, which would shuffle every epoch in the same order.
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu",
                        solver="adam", batch_size=batch, learning_rate_init=LR, alpha=0.0,
                        shuffle=True, tol=0.0, n_iter_no_change=epochs + 1,
                        random_state=np.random.RandomState(seed))
    watch, val_loss, val_acc = _Stopwatch(), [], []
    watch.start()
    for _ in range(epochs):
        clf.partial_fit(x, data.y_train, classes=classes)
        proba = clf.predict_proba(xv)
        val_loss.append(float(log_loss(data.y_val, proba, labels=classes)))
        val_acc.append(float(np.mean(proba.argmax(1) == data.y_val)))
        watch.lap()
    if clf.n_iter_ != 1:
        raise RuntimeError(f"partial_fit ran {clf.n_iter_} passes, expected 1")
    return {"epoch_seconds": watch.seconds, "val_loss": val_loss, "val_accuracy": val_acc,
            "version": sklearn.__version__, "val_batch": len(xv),
            "note": "no dropout (MLPClassifier has none)"}


def run_skorch(sizes, batch, data, epochs, seed):
    """``NeuralNetClassifier`` validating on the same split (``predefined_split``)."""
    import skorch
    from skorch import NeuralNetClassifier
    from skorch.callbacks import Callback
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    watch = _Stopwatch()

    class Clock(Callback):
        def on_train_begin(self, net, X=None, y=None, **kwargs):
            watch.start()

        def on_epoch_end(self, net, **kwargs):
            watch.lap()

    torch.manual_seed(seed)
    x, xv = Data.scaled(data.x_train), Data.scaled(data.x_val)
    # Its defaults would be NLLLoss (on probabilities) and unshuffled batches; the
    # shared settings are cross-entropy on logits and a shuffle every epoch.
    net = NeuralNetClassifier(
        _torch_net(sizes), criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
        lr=LR, max_epochs=epochs, batch_size=batch, iterator_train__shuffle=True,
        train_split=predefined_split(Dataset(xv, data.y_val)), callbacks=[Clock()],
        verbose=0, device="cpu")
    net.fit(x, data.y_train)
    return {"epoch_seconds": [float(d) for d in net.history[:, "dur"]],
            "between_epoch_ends": watch.seconds,
            "val_loss": [float(v) for v in net.history[:, "valid_loss"]],
            "val_accuracy": [float(v) for v in net.history[:, "valid_acc"]],
            "version": skorch.__version__, "val_batch": batch,
            "note": 'epochs from history "dur" (EpochTimer)'}


def _lightning() -> Any:
    try:
        import lightning as L
    except ImportError:
        import pytorch_lightning as L
    return L


def _run_lightning(sizes, batch, data, epochs, seed, precision):
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    L = _lightning()
    L.seed_everything(seed, verbose=False)

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _torch_net(sizes)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch_, batch_idx):
            xb, yb = batch_
            loss = F.cross_entropy(self.net(xb), yb)
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(yb))
            return loss

        def validation_step(self, batch_, batch_idx):
            xb, yb = batch_
            out = self.net(xb)
            self.log_dict({"val_loss": F.cross_entropy(out, yb),
                           "val_acc": (out.argmax(1) == yb).float().mean()},
                          on_epoch=True, batch_size=len(yb))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    watch, val_loss, val_acc, validations = _Stopwatch(), [], [], []

    class Clock(L.Callback):
        def on_train_start(self, trainer, pl_module):
            self.validated = 0
            watch.start()

        def on_validation_epoch_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                self.validated += 1

        def on_train_epoch_end(self, trainer, pl_module):
            watch.lap()
            validations.append(self.validated)
            val_loss.append(float(trainer.callback_metrics["val_loss"]))
            val_acc.append(float(trainer.callback_metrics["val_acc"]))

    train = DataLoader(TensorDataset(torch.from_numpy(Data.scaled(data.x_train)),
                                     torch.from_numpy(data.y_train)),
                       batch_size=batch, shuffle=True)
    val = DataLoader(TensorDataset(torch.from_numpy(Data.scaled(data.x_val)),
                                   torch.from_numpy(data.y_val)), batch_size=batch)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, precision=precision, callbacks=[Clock()])
    trainer.fit(Module(), train, val)
    if validations != list(range(1, epochs + 1)):
        raise RuntimeError(f"validation did not run inside every timed epoch: {validations}")
    return {"epoch_seconds": watch.seconds, "val_loss": val_loss, "val_accuracy": val_acc,
            "version": L.__version__, "package": L.__name__, "val_batch": batch}


def run_lightning(sizes, batch, data, epochs, seed):
    """PyTorch Lightning, ``TensorDataset`` + ``DataLoader(shuffle=True)``, 32-true."""
    return _run_lightning(sizes, batch, data, epochs, seed, "32-true")


def run_lightning_bf16(sizes, batch, data, epochs, seed):
    """PyTorch Lightning with ``precision="bf16-mixed"``."""
    return _run_lightning(sizes, batch, data, epochs, seed, "bf16-mixed")


def _run_keras(sizes, batch, data, epochs, seed, bf16):
    os.environ["KERAS_BACKEND"] = "torch"  # read when keras is first imported
    import keras

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"keras runs on {keras.backend.backend()}, not torch; it was "
                           f"imported before KERAS_BACKEND was set")
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    keras.utils.set_random_seed(seed)
    layers: list[Any] = [keras.Input((sizes[0],))]
    for width in sizes[1:-1]:
        layers += [keras.layers.Dense(width, activation="relu"),
                   keras.layers.Dropout(DROPOUT)]
    # As the mixed-precision guide says: the last layer in float32, for a stable loss.
    layers.append(keras.layers.Dense(sizes[-1], dtype="float32"))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(LR),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    watch, val_loss, val_acc = _Stopwatch(), [], []

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            watch.start()

        def on_epoch_end(self, epoch, logs=None):
            watch.lap()
            val_loss.append(float(logs["val_loss"]))
            val_acc.append(float(logs["val_accuracy"]))

    model.fit(Data.scaled(data.x_train), data.y_train, batch_size=batch, epochs=epochs,
              validation_data=(Data.scaled(data.x_val), data.y_val), verbose=0,
              callbacks=[Clock()])
    return {"epoch_seconds": watch.seconds, "val_loss": val_loss, "val_accuracy": val_acc,
            "version": keras.__version__, "backend": keras.backend.backend(),
            "jit_compile": bool(getattr(model, "jit_compile", False)), "val_batch": batch}


def run_keras(sizes, batch, data, epochs, seed):
    """Keras 3 on its torch backend, float32."""
    return _run_keras(sizes, batch, data, epochs, seed, bf16=False)


def run_keras_bf16(sizes, batch, data, epochs, seed):
    """Keras 3 on its torch backend with the ``mixed_bfloat16`` policy."""
    return _run_keras(sizes, batch, data, epochs, seed, bf16=True)


@dataclass(frozen=True)
class Contender:
    """One row of the comparison."""

    library: str  # as the table names it
    module: str  # what must be importable ("" for fcnet and torch)
    setting: str  # what differs from the library's defaults, as the table says it
    dtype: str | None  # arithmetic of the matmuls; None: the precision fcnet reports
    defaults: bool  # the library at its defaults (for "fastest peer at defaults")
    run: Callable[..., dict[str, Any]]


CONTENDERS: dict[str, Contender] = {
    "fcnet": Contender("fcnet", "", "defaults", None, True, run_fcnet),
    "fcnet-fp32": Contender("fcnet", "", 'precision="fp32"', "fp32", False, run_fcnet_fp32),
    "torch": Contender("PyTorch loop", "", "fp32", "fp32", True, run_torch),
    "torch-bf16": Contender("PyTorch loop", "", "bf16 autocast", "bf16", False,
                            run_torch_bf16),
    "sklearn": Contender("scikit-learn", "sklearn", "MLPClassifier adam, no dropout",
                         "fp32", True, run_sklearn),
    "skorch": Contender("skorch", "skorch", "NeuralNetClassifier", "fp32", True, run_skorch),
    "lightning": Contender("Lightning", "lightning|pytorch_lightning", '"32-true"', "fp32",
                           True, run_lightning),
    "lightning-bf16": Contender("Lightning", "lightning|pytorch_lightning", '"bf16-mixed"',
                                "bf16", False, run_lightning_bf16),
    "keras": Contender("Keras (torch)", "keras", "float32", "fp32", True, run_keras),
    "keras-bf16": Contender("Keras (torch)", "keras", '"mixed_bfloat16"', "bf16", False,
                            run_keras_bf16),
}
#: pip distribution of each importable module, for the versions recorded.
DISTRIBUTIONS = {"sklearn": "scikit-learn", "skorch": "skorch", "lightning": "lightning",
                 "pytorch_lightning": "pytorch-lightning", "keras": "keras"}


def missing_reason(name: str) -> str | None:
    """Why contender ``name`` cannot run here (a peer not installed), or ``None``."""
    module = CONTENDERS[name].module
    if not module:
        return None
    found = [m for m in module.split("|") if importlib.util.find_spec(m) is not None]
    if not found:
        return f"{DISTRIBUTIONS.get(module.split('|')[0], module)} is not installed"
    if found[0] == "keras":
        major = _version("keras").split(".")[0]
        if not major.isdigit() or int(major) < 3:
            return f"keras {_version('keras')} has no torch backend (needs keras 3)"
    return None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of torch, fcnet and every peer (``"not installed"`` for those missing)."""
    import fcnet

    names = ["torch", "fcnet", "numpy", "scikit-learn", "threadpoolctl", "skorch",
             "lightning", "pytorch-lightning", "keras"]
    found = {n: _version(n) for n in names}
    # The imported modules' own versions: an editable install's metadata can be stale.
    found["torch"], found["fcnet"] = torch.__version__, fcnet.__version__
    return found


def run_contender(name: str, workload: str, data: Data, epochs: int, threads: int,
                  seed: int = 0) -> dict[str, Any]:
    """Train contender ``name`` on ``workload`` in this process; its per-epoch figures.

    Returns:
        ``epoch_seconds``, ``val_loss`` and ``val_accuracy`` (one per epoch),
        ``figure`` (median seconds of epochs 2 to E), ``threads_used`` and what the
        contender reports about itself (``version``, ``val_batch``, ...).
    """
    if epochs < 2:
        raise ValueError(f"epochs must be >= 2 (the first is warm-up), got {epochs}")
    sizes, batch = WORKLOADS[workload]
    C.set_threads(threads)
    load_before = C.load_average()
    if CONTENDERS[name].module == "sklearn":
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            out = CONTENDERS[name].run(sizes, batch, data, epochs, seed)
    else:
        out = CONTENDERS[name].run(sizes, batch, data, epochs, seed)
    if len(out["epoch_seconds"]) != epochs:
        raise RuntimeError(f"{name} timed {len(out['epoch_seconds'])} epochs, expected "
                           f"{epochs}")
    out["figure"] = statistics.median(out["epoch_seconds"][1:])
    # The count the process allowed; fcnet's Trainer may take fewer (trainer_threads).
    out["threads_used"] = out.get("trainer_threads") or torch.get_num_threads()
    out["train_samples"], out["val_samples"] = len(data.y_train), len(data.y_val)
    out["load_before"], out["load_after"] = load_before, C.load_average()
    return out


# ---------------------------------------------------------------------- physical limit
def matmul_rates(n: int = 2048, dtype: torch.dtype = torch.float32,
                 seconds: float = 1.0) -> list[float]:
    """FLOP/s of every ``n x n @ n x n`` call (after one warm-up) within about ``seconds``."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(rates) < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - t0))
    return rates


def peak(threads: int, seconds: float) -> dict[str, Any]:
    """Median fp32 and bf16 ``torch.mm`` GFLOP/s at ``threads`` threads."""
    C.set_threads(threads)
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "load": C.load_average()}
    for key, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates = matmul_rates(2048, dtype, seconds)
        out[key] = statistics.median(rates) / 1e9
        out[f"{key}_calls"] = len(rates)
    return out


# ---------------------------------------------------------------------- time to accuracy
def time_to_accuracy(seed: int, threads: int, config: dict[str, Any] | None = None,
                     source: Path | None = None) -> dict[str, Any]:
    """Train fcnet with ``config`` (default ``FAST``) on the 48,000 images; time ``fit``.

    Twice in the same process: ``cold`` is the process's first fit, which also pays
    torch's one-time costs (the first ``torch.optim`` optimizer of a process imports
    ``torch._dynamo``, over a second here; first calls of the CPU kernels); ``warm`` is
    a second, identical run after it (new model, new Trainer, the same seed).
    """
    from fcnet import Trainer, build_mlp

    C.set_threads(threads)
    train, _, test = C.fcnet_data(source)
    out: dict[str, Any] = {"seed": seed, "train_samples": len(train),
                           "test_samples": len(test)}
    for run in ("cold", "warm"):
        settings = dict(FAST if config is None else config)
        sizes, dropout = settings.pop("sizes"), settings.pop("dropout")
        build = {k: settings.pop(k) for k in ("input_norm",) if k in settings}
        trainer = Trainer(build_mlp(sizes, dropout=dropout, seed=seed, **build), seed=seed,
                          progress=False, **settings)
        with C.Clock() as clock:
            trainer.fit(train)
        accuracy = trainer.evaluate(test)["accuracy"]
        out[run] = {"fit_seconds": clock.wall, "fit_cpu_seconds": clock.cpu,
                    "test_accuracy": accuracy, "reached": accuracy >= TARGET_ACCURACY,
                    "epochs": trainer.epoch, "load": clock.load,
                    "threads_used": trainer.history.meta.get("threads"),
                    "precision": trainer.history.meta.get("precision"),
                    "step": trainer.history.meta.get("step")}
    # The headline figures are the warm run's; the cold one is kept beside them.
    out.update({k: out["warm"][k] for k in ("fit_seconds", "fit_cpu_seconds",
                                            "test_accuracy", "reached", "epochs")})
    out["cold_fit_seconds"] = out["cold"]["fit_seconds"]
    return out


# ---------------------------------------------------------------------- orchestration
def _spawn(worker: list[str], args: argparse.Namespace, threads: int,
           timeout: float = 3600) -> dict[str, Any]:
    """Run ``--worker ...`` in a fresh process; its JSON line, or ``{"error": ...}``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="torch")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *worker,
           "--threads", str(threads), "--epochs", str(args.epochs), "--seed", str(args.seed)]
    if args.limit_train:
        cmd += ["--limit-train", str(args.limit_train), "--limit-val", str(args.limit_val)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-15:]
        print(f"  worker {' '.join(worker)} failed (exit {proc.returncode}):\n    "
              + "\n    ".join(tail), flush=True)
        return {"error": "\n".join(tail[-5:]) or f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def _dtype(name: str, run: dict[str, Any]) -> str:
    return CONTENDERS[name].dtype or run.get("precision", "fp32")


def summarize_workload(workload: str, runs: dict[str, list[dict[str, Any]]],
                       peaks: dict[str, float], train: int, val: int) -> dict[str, Any]:
    """Rows (medians over rounds, rates, fractions of the peak, ratios) of one workload.

    Args:
        workload: A key of ``WORKLOADS``.
        runs: ``contender -> one worker result per round`` (failed rounds hold ``error``).
        peaks: ``{"fp32": GFLOP/s, "bf16": GFLOP/s}``.
        train: Training samples per epoch.
        val: Validation samples per epoch.
    """
    sizes, batch = WORKLOADS[workload]
    flops = flops_per_epoch(sizes, train, val)
    rows = []
    for name, rounds in runs.items():
        good = [r for r in rounds if "error" not in r]
        c = CONTENDERS[name]
        row: dict[str, Any] = {"contender": name, "library": c.library, "setting": c.setting,
                               "defaults": c.defaults, "rounds": rounds}
        if good:
            figures = [r["figure"] for r in good]
            seconds = statistics.median(figures)
            dtype = _dtype(name, good[0])
            row.update({
                "dtype": dtype, "round_figures": figures, "s_per_epoch": seconds,
                "gflops": flops / seconds / 1e9,
                "pct_peak": 100 * flops / seconds / 1e9 / peaks[dtype] if peaks.get(dtype)
                else None,
                "val_accuracy": statistics.median(r["val_accuracy"][-1] for r in good),
                "threads_used": sorted({r["threads_used"] for r in good}),
                "version": good[0].get("version"), "note": good[0].get("note"),
                "failed_rounds": len(rounds) - len(good),
            })
        else:
            row["error"] = rounds[-1].get("error") if rounds else "not run"
        rows.append(row)
    ref = next((r.get("s_per_epoch") for r in rows if r["contender"] == "fcnet"), None)
    for row in rows:
        row["fcnet_speedup"] = (row["s_per_epoch"] / ref
                                if ref and row.get("s_per_epoch") else None)
    peers = [r for r in rows if CONTENDERS[r["contender"]].library != "fcnet"
             and r.get("s_per_epoch")]

    def fastest(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not candidates:
            return None
        best = min(candidates, key=lambda r: r["s_per_epoch"])
        return {"contender": best["contender"], "s_per_epoch": best["s_per_epoch"],
                "fcnet_speedup": best["fcnet_speedup"]}

    return {"sizes": sizes, "batch_size": batch, "train_samples": train,
            "val_samples": val, "flops_per_epoch": flops, "rows": rows,
            "fastest_peer_at_defaults": fastest([r for r in peers if r["defaults"]]),
            "fastest_peer_any_setting": fastest(peers)}


_COLUMNS = [("contender", "contender", "s"), ("setting", "setting", "s"),
            ("dtype", "dtype", "s"), ("s_per_epoch", "s/epoch", ".3f"),
            ("fcnet_speedup", "fcnet speed-up", ".2f"),
            ("gflops", "GFLOP/s", ".1f"), ("pct_peak", "% of same-dtype peak", ".0f"),
            ("val_accuracy", "val acc", ".4f")]


def _cell(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def workload_markdown(workload: str, summary: dict[str, Any]) -> str:
    """The markdown table of one workload, with the fastest peers below it."""
    head = [h for _, h, _ in _COLUMNS]
    lines = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    for row in summary["rows"]:
        if "s_per_epoch" not in row:
            cells = [row["contender"], row["setting"], "failed"] + ["-"] * (len(head) - 3)
        else:
            cells = [_cell(row.get(k), s) if s != "s" else str(row.get(k))
                     for k, _, s in _COLUMNS]
        lines.append(f"| {' | '.join(cells)} |")
    lines.append("")
    for key, label in (("fastest_peer_at_defaults", "fastest peer at defaults"),
                       ("fastest_peer_any_setting", "fastest peer at any setting")):
        best = summary[key]
        if best:
            speedup = best.get("fcnet_speedup")
            lines.append(f"{label}: {best['contender']} {best['s_per_epoch']:.3f} s/epoch"
                         + ("" if speedup is None
                            else f" (fcnet's speed-up over it: {speedup:.2f}x)"))
    sizes, batch = summary["sizes"], summary["batch_size"]
    title = (f"{workload}: {'-'.join(map(str, sizes))}, batch {batch}, "
             f"{summary['train_samples']:,} train + {summary['val_samples']:,} val images, "
             f"{summary['flops_per_epoch'] / 1e9:.1f} GFLOP per epoch")
    return title + "\n\n" + "\n".join(lines)


# ---------------------------------------------------------------------- rendering
def _table_rows(payload: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    workloads = payload["results"]["workloads"]
    head = ["contender", "setting"]
    for w in workloads:
        head += [f"{w} s/epoch", f"{w}: fcnet speed-up", f"{w}: % of peak"]
    order: list[tuple[str, str, str]] = []
    cells: dict[str, dict[str, tuple[str, str]]] = {}
    used: dict[str, list[str]] = {}  # fcnet's precision where the setting leaves it open
    for w, summary in workloads.items():
        for row in summary["rows"]:
            if row["contender"] not in cells:
                order.append((row["contender"], row["library"], row["setting"]))
                cells[row["contender"]] = {}
            c = CONTENDERS.get(row["contender"])
            if c is not None and c.dtype is None and row.get("dtype"):
                used.setdefault(row["contender"], [])
                if row["dtype"] not in used[row["contender"]]:
                    used[row["contender"]].append(row["dtype"])
            if row.get("s_per_epoch"):
                pct = row.get("pct_peak")
                cells[row["contender"]][w] = (
                    f"{row['s_per_epoch']:.3f}", f"{row['fcnet_speedup']:.2f}x",
                    "-" if pct is None else f"{pct:.0f}% {row.get('dtype') or ''}".strip())
            else:
                cells[row["contender"]][w] = ("failed", "-", "-")
    body = []
    for name, library, setting in order:
        if used.get(name):
            setting += f" ({' / '.join(used[name])})"
        line = [library, setting]
        for w in workloads:
            line += list(cells[name].get(w, ("-", "-", "-")))
        body.append(line)
    for reason_name, reason in payload["results"].get("skipped", {}).items():
        c = CONTENDERS.get(reason_name)
        line = [c.library if c else reason_name, f"skipped: {reason}"]
        body.append(line + ["-"] * (len(head) - 2))
    return head, body


def caption(payload: dict[str, Any]) -> str:
    """One line: CPU model, threads, torch version, epochs and rounds, the command."""
    machine, results = payload["machine"], payload["results"]
    settings = results["settings"]
    flags = machine.get("cpu_flags", {})
    units = [label for key, label in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX"))
             if flags.get(key)]
    bf16 = (f" ({' and '.join(units)})" if units else " (no AVX512-BF16 or AMX)"
            if flags else "")
    used = (results.get("peaks_gflops") or {}).get("used") or {}
    peak = ("; matmul peak " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in used.items() if v)
            if used else "")
    return (f"{machine['cpu_model']}{bf16}, {settings['threads']} threads, torch "
            f"{machine['torch']}{peak}; median seconds per epoch (epochs 2-{settings['epochs']}, "
            f"validation included) over {settings['rounds']} "
            f"round{'s' if settings['rounds'] != 1 else ''}; `{payload['command']}`")


def render_markdown(payload: dict[str, Any]) -> str:
    """The README table of a results file: one row per contender and setting."""
    head, body = _table_rows(payload)
    lines = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    lines += [f"| {' | '.join(row)} |" for row in body]
    return caption(payload) + "\n\n" + "\n".join(lines)


def render_rst(payload: dict[str, Any]) -> str:
    """The same table as an RST ``list-table``, for ``.. include::`` in the docs."""
    head, body = _table_rows(payload)
    text = caption(payload).replace("`", "``")
    out = [f".. Generated by benchmarks/bench_peers.py --render from the results of "
           f"{payload['finished_utc']}; do not edit.", "",
           ".. list-table::", "   :header-rows: 1", ""]
    for row in [head, *body]:
        first, *rest = (cell.replace("*", r"\*") for cell in row)
        out.append(f"   * - {first}")
        out += [f"     - {cell}" for cell in rest]
    return "\n".join(out) + "\n\n" + text + "\n"


def render(quick: bool, source: Path | None) -> None:
    """Print the README table; write the docs table (not from a quick run)."""
    path = source or C.RESULTS_DIR / (f"{NAME}-quick.json" if quick else f"{NAME}.json")
    if not path.is_file():
        raise SystemExit(f"no results to render: {path} does not exist (run the benchmark "
                         f"first)")
    payload = json.loads(path.read_text())
    print(render_markdown(payload))
    rst = render_rst(payload)
    if quick or payload.get("quick"):
        print("\n(a quick run: the docs table is printed, not written)\n")
        print(rst)
        return
    DOCS_TABLE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_TABLE.write_text(rst)
    print(f"\nwrote {DOCS_TABLE}")


def run_tta(args: argparse.Namespace) -> dict[str, Any]:
    """The time to 87.42% test accuracy of ``FAST``, one fresh process per seed."""
    tta = {"config": FAST, "target_accuracy": TARGET_ACCURACY,
           "clock": "Trainer.fit wall-clock seconds of a warm run (the process's second "
                    "fit; the first, cold one is kept as cold_fit_seconds); model "
                    "building and data loading excluded; test accuracy from "
                    "Trainer.evaluate afterwards",
           "runs": [_spawn(["tta", str(s)], args, args.threads) for s in args.seeds]}
    good = [r for r in tta["runs"] if "error" not in r]
    tta["median_fit_seconds"] = (statistics.median(r["fit_seconds"] for r in good)
                                 if good else None)
    tta["seeds_reached"] = sum(r["reached"] for r in good)
    print(f"\ntime to {100 * TARGET_ACCURACY:.2f}% test accuracy (fcnet, FAST = {FAST}; "
          f"{tta['clock']})")
    for r in tta["runs"]:
        if "error" in r:
            print("  failed:", r["error"])
        else:
            print(f"  seed {r['seed']}: {r['fit_seconds']:.2f} s (cold "
                  f"{r['cold_fit_seconds']:.2f} s), test accuracy {r['test_accuracy']:.4f} "
                  f"({'reached' if r['reached'] else 'missed'})")
    if good:
        print(f"  median {tta['median_fit_seconds']:.2f} s; {tta['seeds_reached']} of "
              f"{len(tta['runs'])} seeds reached {TARGET_ACCURACY}")
    return tta


# ---------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = C.base_parser(__doc__.splitlines()[0], default_threads=None)
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS),
                        default=list(WORKLOADS))
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS),
                        default=list(CONTENDERS))
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run, the first untimed (default 4; quick 3)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="time-to-accuracy seeds (default 0 1 2 3 4; quick 0)")
    parser.add_argument("--only-tta", action="store_true",
                        help="run only the time to 87.42%% and put it into the existing "
                        "results file (recorded with its own command and time)")
    parser.add_argument("--skip-tta", action="store_true",
                        help="leave out the time to 87.42%% test accuracy")
    parser.add_argument("--render", action="store_true",
                        help="print the README table of results/peers.json (with --quick: "
                        "peers-quick.json; --out: that file) and write "
                        "docs/_generated/peers_table.inc (never from a quick run)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--limit-train", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--limit-val", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _worker(args: argparse.Namespace) -> None:
    kind, *params = args.worker
    # Libraries print to stdout; the parent reads one JSON line, so they print to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        if kind == "peak":
            out = peak(args.threads, float(params[0]))
        elif kind == "tta":
            out = time_to_accuracy(int(params[0]), args.threads)
        else:
            data = load_data(limit_train=args.limit_train, limit_val=args.limit_val,
                             seed=args.seed)
            out = run_contender(kind, params[0], data, args.epochs, args.threads, args.seed)
    print(json.dumps(out), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    args = _parser().parse_args(argv)
    if args.render:
        render(args.quick, args.out)
        return
    args.threads = args.threads or os.cpu_count() or 1
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.epochs = args.epochs or (3 if args.quick else 4)
    args.seeds = args.seeds if args.seeds is not None else ([0] if args.quick
                                                            else [0, 1, 2, 3, 4])
    if args.quick and args.limit_train is None:
        args.limit_train, args.limit_val = 4096, 1024
    if args.worker:
        _worker(args)
        return
    if args.epochs < 2:
        raise SystemExit(f"--epochs must be >= 2 (the first is warm-up), got {args.epochs}")
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}")
    if args.only_tta:
        path = args.out or C.RESULTS_DIR / (f"{NAME}-quick.json" if args.quick else f"{NAME}.json")
        payload = json.loads(path.read_text())
        tta = run_tta(args)
        tta.update(command=" ".join([Path(sys.executable).name, *sys.argv]),
                   finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   load_average_at_end=C.load_average())
        payload["results"]["time_to_accuracy"] = tta
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, path)
        print(f"\nwrote the time to accuracy into {path}")
        return
    started = time.time()
    skipped = {}
    contenders = []
    for name in args.contenders:
        reason = missing_reason(name)
        if reason:
            print(f"skipping {name}: {reason}")
            skipped[name] = reason
        else:
            contenders.append(name)
    peak_seconds = "0.5" if args.quick else "2.0"
    print(f"fcnet vs peers: {args.threads} threads, {args.epochs} epochs, {args.rounds} "
          f"rounds, load {C.load_average()}", flush=True)
    peaks_start = _spawn(["peak", peak_seconds], args, args.threads)
    print(f"matmul peak (start): fp32 {peaks_start.get('fp32', 0):.1f}, "
          f"bf16 {peaks_start.get('bf16', 0):.1f} GFLOP/s", flush=True)
    all_runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for workload in args.workloads:
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in contenders}
        for rnd in range(args.rounds):
            for name in contenders:
                out = _spawn([name, workload], args, args.threads)
                runs[name].append(out)
                if "error" not in out:
                    print(f"{workload} round {rnd + 1} {name:15s} {out['figure']:.3f} s/epoch "
                          f"(epochs {', '.join(f'{s:.2f}' for s in out['epoch_seconds'])}; "
                          f"val acc {out['val_accuracy'][-1]:.4f}; threads "
                          f"{out['threads_used']})", flush=True)
        all_runs[workload] = runs
    peaks_end = _spawn(["peak", peak_seconds], args, args.threads)
    peaks = {k: max(p.get(k, 0.0) for p in (peaks_start, peaks_end)) or None
             for k in ("fp32", "bf16")}
    print(f"matmul peak (end): fp32 {peaks_end.get('fp32', 0):.1f}, "
          f"bf16 {peaks_end.get('bf16', 0):.1f} GFLOP/s", flush=True)
    workloads = {}
    for workload, runs in all_runs.items():
        first = next((r for rs in runs.values() for r in rs if "error" not in r), {})
        train = first.get("train_samples", args.limit_train or 48000)
        val = first.get("val_samples", args.limit_val or 12000)
        workloads[workload] = summarize_workload(workload, runs, peaks, train, val)
        print("\n" + workload_markdown(workload, workloads[workload]), flush=True)
    tta = None if args.skip_tta else run_tta(args)
    results = {
        "settings": {"workloads": {w: {"sizes": WORKLOADS[w][0], "batch_size": WORKLOADS[w][1]}
                                   for w in args.workloads},
                     "dropout": DROPOUT, "lr": LR, "optimizer": "adam", "epochs": args.epochs,
                     "rounds": args.rounds, "threads": args.threads, "seed": args.seed,
                     "contenders": args.contenders, "limit_train": args.limit_train,
                     "limit_val": args.limit_val,
                     "figure": "median over rounds of each run's median s/epoch of epochs 2-E"},
        "versions": versions(),
        "skipped": skipped,
        "peaks_gflops": {"start": peaks_start, "end": peaks_end, "used": peaks},
        "workloads": workloads,
        "time_to_accuracy": tta,
    }
    C.write_result(NAME, results, quick=args.quick, out=args.out, started=started)


if __name__ == "__main__":
    main()
