"""Crash-exact resume: SIGKILL and Ctrl-C mid-run, then resume to the very same weights."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcnet import (
    Callback,
    CheckpointError,
    EarlyStopping,
    ModelCheckpoint,
    NonFiniteLossError,
    ProgressBar,
    Trainer,
    WeightAveraging,
    build_mlp,
)
from fcnet.checkpoint import find_latest_checkpoint, load_training_state

WORKER = Path(__file__).with_name("_resume_worker.py")


def _data(n=120, features=8, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 2
    y = torch.arange(n) % classes
    x = centers[y] + torch.randn(n, features, generator=g) * 1.5
    return (x[: n - 30], y[: n - 30]), (x[n - 30:], y[n - 30:])


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _strip_seconds(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


class _Crash(Exception):
    pass


class _CrashAt(Callback):
    """Raises at a given global step: a crash between two training steps."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, batch, logs):
        if trainer.epoch * trainer.batches_per_epoch + batch + 1 == self.step:
            raise _Crash


class _SigintAt(Callback):
    """Sends a real SIGINT to this process at a given global step (Ctrl-C)."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, batch, logs):
        if trainer.epoch * trainer.batches_per_epoch + batch + 1 == self.step:
            signal.raise_signal(signal.SIGINT)


# ---------------------------------------------------------------------------- real signals
def _load_worker():
    spec = importlib.util.spec_from_file_location("_resume_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    # As in the worker: float results must not depend on how work is split in threads.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _saved_step(ckpt: Path) -> int:
    """The step of the checkpoint ``latest.json`` names (-1 before the first)."""
    try:
        name = json.loads((ckpt / "latest.json").read_text())["checkpoint"]
    except (OSError, ValueError):
        return -1
    epoch, batch = name.removeprefix("epoch").split("-batch")
    return int(epoch) * 19 + int(batch)


def _signal_worker_then_resume(tmp_path, sig):
    """Start the worker, send ``sig`` at a random moment after a random step, then
    resume here and compare with an uninterrupted reference run."""
    ckpt = tmp_path / "ckpt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(WORKER), "train", str(ckpt), str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # The run has 4 x 19 steps of >= 10 ms and saves every 2 steps. Wait for a random
    # step, picked whatever the machine's speed, then signal a random instant after it:
    # mid-step, mid-save, in validation...
    rng = random.Random(os.urandom(8))
    target, delay = rng.randint(2, 60), rng.uniform(0.0, 0.03)
    try:
        deadline = time.monotonic() + 120
        while _saved_step(ckpt) < target:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, f"the worker did not reach step {target}"
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stopped_at = load_training_state(ckpt)["position"]
    worker = _load_worker()
    train, val = worker.data()
    resumed = worker.make_trainer(ckpt)
    resumed.fit(train, val, resume_from=ckpt)
    reference = worker.make_trainer(None)
    reference.fit(train, val)
    context = f"{stopped_at=} {target=} {delay=}"
    print(f"signal {int(sig)} {context}")  # shown with -s: where the runs were stopped
    assert resumed.model.state_dict().keys() == reference.model.state_dict().keys()
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), (key, context)
    assert _strip_seconds(resumed.history) == _strip_seconds(reference.history), context
    assert resumed.history.meta["resumed"][0]["epoch"] == stopped_at["epoch"]
    return proc.returncode, output, stopped_at


def test_sigkill_at_a_random_moment_then_resume_gives_identical_weights(tmp_path, one_thread):
    code, _, _ = _signal_worker_then_resume(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL, "the worker finished before the kill"


@pytest.mark.slow  # the in-process SIGINT test below covers the same path quickly
def test_ctrl_c_in_a_real_process_saves_where_it_stopped_and_resumes_exactly(tmp_path,
                                                                            one_thread):
    code, output, stopped_at = _signal_worker_then_resume(tmp_path, signal.SIGINT)
    assert code == 0, output
    assert output.strip().endswith("interrupted"), output
    assert 0 < stopped_at["epoch"] * 19 + stopped_at["batch"] < 4 * 19  # mid-run


# ---------------------------------------------------------------------------- in-process
def _run(model0, ckpt=None, callbacks=(), resume_from=None, *, optimizer="adam",
         scheduler="onecycle", epochs=3, every_n_batches=2, es=True, data=None, **extra):
    (train, val) = data or _data()
    model = copy.deepcopy(model0)
    cbs = [EarlyStopping(patience=10)] if es else []
    cbs += list(callbacks)
    if ckpt is not None:
        cbs.append(ModelCheckpoint(ckpt, every_n_batches=every_n_batches))
    trainer = Trainer(model, optimizer=optimizer, lr=1e-2, epochs=epochs, batch_size=16,
                      seed=3, scheduler=scheduler, callbacks=cbs, progress=False, **extra)
    trainer.fit(train, val, resume_from=resume_from)
    return trainer


def _crash_and_resume(model0, tmp_path, crash_step, make_callbacks=list, **kw):
    """An uninterrupted run, and one crashed at global step ``crash_step`` then resumed
    from its checkpoints, each with fresh ``make_callbacks()``: the two must agree."""
    reference = _run(model0, None, make_callbacks(), **kw)
    with pytest.raises(_Crash):
        _run(model0, tmp_path, [*make_callbacks(), _CrashAt(crash_step)], **kw)
    resumed = _run(model0, tmp_path, make_callbacks(), resume_from=tmp_path, **kw)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))
    assert _strip_seconds(resumed.history) == _strip_seconds(reference.history)
    return reference, resumed


@pytest.fixture
def model0():
    torch.manual_seed(0)
    return build_mlp([8, 16, 3], dropout=0.25, norm="batch")


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "crash_step"),
    [("adam", "onecycle", 9), ("sgd", "cosine", 6), ("adamw", "step", 13), ("sgd", None, 12)],
)
def test_crash_between_steps_then_resume_is_exact(tmp_path, model0, optimizer, scheduler,
                                                  crash_step):
    # 90 samples / 16 = 6 batches per epoch: crashes land mid-epoch and at an epoch end.
    reference, resumed = _crash_and_resume(model0, tmp_path, crash_step,
                                           optimizer=optimizer, scheduler=scheduler)
    assert resumed.optimizer.state_dict()["param_groups"] == \
        reference.optimizer.state_dict()["param_groups"]


def test_resume_is_exact_with_mixup_weight_decay_groups_and_weight_averaging(tmp_path, model0):
    # Mixup draws from the global generator; weight decay splits the parameters into two
    # optimizer groups; the EMA is callback state. All must come back exactly.
    _, resumed = _crash_and_resume(model0, tmp_path, 9, lambda: [WeightAveraging(0.9)],
                                   optimizer="adamw", mixup=0.2, weight_decay=0.05)
    assert len(resumed.optimizer.param_groups) == 2


@pytest.mark.parametrize("crash_step", [5, 9, 16])
def test_resume_is_exact_across_the_last_epochs_without_mixup(tmp_path, model0, crash_step):
    # Epochs 1-2 mix, epoch 3 does not (six batches an epoch): a run stopped in either
    # part resumes to the weights of an uninterrupted one.
    _crash_and_resume(model0, tmp_path, crash_step, mixup=0.2, no_augment_epochs=1)


def test_sigint_saves_a_mid_epoch_checkpoint_and_resume_is_exact(tmp_path, model0):
    reference = _run(model0)
    interrupted = _run(model0, tmp_path, [_SigintAt(8)], every_n_batches=100)
    meta = interrupted.history.meta
    assert meta["interrupted"] is True and meta["interrupted_at"] == {"epoch": 2, "batch": 2}
    assert len(interrupted.history) == 1
    # The Ctrl-C checkpoint is the latest one and sits mid-epoch, with the training weights
    # (not the best ones EarlyStopping put back at the end).
    latest = find_latest_checkpoint(tmp_path)
    assert latest.name == "epoch0001-batch000002"
    state = load_training_state(tmp_path)
    assert state["accumulators"]["seen"] == 32
    resumed = _run(model0, tmp_path, resume_from=tmp_path, every_n_batches=100)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))
    assert _strip_seconds(resumed.history) == _strip_seconds(reference.history)
    assert "interrupted" not in resumed.history.meta
    assert resumed.history.meta["resumed"] == [
        {"from": str(tmp_path / "epoch0001-batch000002"), "epoch": 1, "batch": 2}]


def test_progress_bar_draws_a_run_resumed_mid_epoch(tmp_path, model0):
    with pytest.raises(_Crash):
        _run(model0, tmp_path, [_CrashAt(9)])
    out = io.StringIO()
    _run(model0, tmp_path, [ProgressBar(out, enabled=True)], resume_from=tmp_path)
    assert "\repoch 2/3 [" in out.getvalue() and "epoch 3/3 train_loss=" in out.getvalue()


def test_resume_from_a_finished_or_early_stopped_run_changes_nothing(tmp_path, model0):
    first = _run(model0, tmp_path, epochs=2)
    again = _run(model0, tmp_path, resume_from=tmp_path, epochs=2)
    _assert_same_weights(_weights(again.model), _weights(first.model))
    assert len(again.history) == 2
    with pytest.raises(CheckpointError, match=r"is at epoch 2, batch 0, beyond this Trainer's "
                                              r"epochs=1"):
        _run(model0, tmp_path, resume_from=tmp_path, epochs=1)


def test_resume_accepts_a_checkpoint_folder_or_file(tmp_path, model0):
    reference = _run(model0, epochs=2)
    with pytest.raises(_Crash):
        _run(model0, tmp_path, [_CrashAt(8)], epochs=2)
    latest = find_latest_checkpoint(tmp_path)
    for target in (latest, latest / "manifest.json"):
        resumed = _run(model0, tmp_path / "again", resume_from=target, epochs=2)
        _assert_same_weights(_weights(resumed.model), _weights(reference.model))


# ---------------------------------------------------------------------------- refusals
def _crashed_run(tmp_path, model0):
    with pytest.raises(_Crash):
        _run(model0, tmp_path, [_CrashAt(5)])
    return tmp_path


def test_resume_refuses_a_different_model_before_any_step(tmp_path, model0):
    _crashed_run(tmp_path, model0)
    (train, val) = _data()
    torch.manual_seed(0)
    other = build_mlp([8, 24, 3], dropout=0.25, norm="batch")
    before = _weights(other)
    trainer = Trainer(other, epochs=3, batch_size=16, scheduler="onecycle", progress=False)
    with pytest.raises(CheckpointError, match=r"holds a different model: sizes \[8, 16, 3\] "
                                              r"in the checkpoint, \[8, 24, 3\] here"):
        trainer.fit(train, val, resume_from=tmp_path)
    _assert_same_weights(_weights(other), before)
    assert trainer.optimizer.state_dict()["state"] == {}  # no step was taken

    # A model without a spec is compared tensor by tensor.
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
    trainer = Trainer(plain, epochs=3, batch_size=16, scheduler="onecycle", progress=False)
    with pytest.raises(CheckpointError, match=r"the weights do not match the model: missing "
                                              r"tensors \['1.bias', '1.weight'\]"):
        trainer.fit(train, val, resume_from=tmp_path)


def test_resume_refuses_other_data_or_batch_settings(tmp_path, model0):
    _crashed_run(tmp_path, model0)
    (train, val) = _data()
    fewer = (train[0][:80], train[1][:80])

    def fit(data, v=val, **kw):
        args = {"epochs": 3, "batch_size": 16, "scheduler": "onecycle", **kw}
        Trainer(copy.deepcopy(model0), progress=False, **args).fit(data, v,
                                                                   resume_from=tmp_path)

    with pytest.raises(CheckpointError, match=r"saved with train inputs of shape \(90, 8\) and "
                                              r"labels \(90,\), but fit\(\) got \(80, 8\)"):
        fit(fewer)
    with pytest.raises(CheckpointError, match=r"saved with train inputs of dtype float32, but "
                                              r"fit\(\) got uint8"):
        fit((train[0].clamp(0, 255).to(torch.uint8), train[1]))
    with pytest.raises(CheckpointError, match=r"saved with validation data, but fit\(\) got "
                                              r"val=None"):
        fit(train, None)
    with pytest.raises(CheckpointError, match=r"saved with batch_size=16, but this Trainer has "
                                              r"batch_size=32"):
        fit(train, batch_size=32)
    with pytest.raises(CheckpointError, match=r"holds scheduler OneCycleLR, but this Trainer "
                                              r"has None"):
        fit(train, scheduler=None)
    with pytest.raises(CheckpointError, match=r"holds Adam optimizer state, but this Trainer "
                                              r"uses SGD"):
        fit(train, optimizer="sgd")


def test_resume_refuses_a_different_split(tmp_path):
    from fcnet.data import ArrayDataset, train_val_split

    x = torch.randint(0, 255, (120, 4, 2), dtype=torch.uint8)
    full = ArrayDataset(x, torch.arange(120) % 3)
    train, val = train_val_split(full, val_fraction=0.25, seed=0)
    torch.manual_seed(0)
    model0 = build_mlp([8, 3])

    def trainer(callbacks=()):
        return Trainer(copy.deepcopy(model0), epochs=2, batch_size=16, progress=False,
                       callbacks=list(callbacks))

    with pytest.raises(_Crash):
        trainer([ModelCheckpoint(tmp_path, every_n_batches=2), _CrashAt(3)]).fit(train, val)
    assert load_training_state(tmp_path)["data"]["train"]["provenance"] == train.provenance
    other_train, other_val = train_val_split(full, val_fraction=0.25, seed=1)
    with pytest.raises(CheckpointError, match=r"the train split differs from the checkpoint's "
                                              r"\(fields \['indices_sha256', 'seed'\]"):
        trainer().fit(other_train, other_val, resume_from=tmp_path)
    with pytest.warns(UserWarning, match=r"holds the state of a ModelCheckpoint callback that "
                                         r"this Trainer does not have; that state is ignored"):
        trainer().fit(train, val, resume_from=tmp_path)  # the same split resumes


def test_resume_from_missing_empty_or_corrupted_paths(tmp_path, model0):
    (train, val) = _data()
    trainer = Trainer(copy.deepcopy(model0), epochs=3, batch_size=16, scheduler="onecycle",
                      progress=False)
    with pytest.raises(FileNotFoundError,
                       match=r"resume_from: no checkpoint file or folder at '.*nowhere'"):
        trainer.fit(train, val, resume_from=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no complete checkpoint in '.*empty': expected a "
                                              r"checkpoint folder \(with manifest.json\)"):
        trainer.fit(train, val, resume_from=tmp_path / "empty")
    with pytest.raises(TypeError, match=r"resume_from must be a str or os.PathLike path, got int"):
        trainer.fit(train, val, resume_from=3)

    ckpt = _crashed_run(tmp_path / "run", model0)
    latest = find_latest_checkpoint(ckpt)
    blob = bytearray((latest / "state.safetensors").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (latest / "state.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=r"state.safetensors is corrupted: its sha256 does "
                                              r"not match the manifest"):
        trainer.fit(train, val, resume_from=latest)
    (latest / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"is incomplete: manifest.json is missing \(its "
                                              r"save did not finish\)"):
        trainer.fit(train, val, resume_from=latest)
    # Given the folder of checkpoints, the broken latest one is skipped for the one before.
    with pytest.warns(UserWarning, match=r"skipping a broken checkpoint: .*epoch0000-batch000004"):
        state = load_training_state(ckpt)
    assert state["position"] == {"epoch": 0, "batch": 2}


# ---------------------------------------------------------------------------- guarded training
class _Poison(Callback):
    """Puts a NaN into the weights after a given step, as a diverging step would."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, batch, logs):
        if trainer.epoch * trainer.batches_per_epoch + batch + 1 == self.step:
            with torch.no_grad():
                trainer.model.hidden1.weight[0, 0] = float("nan")


def test_non_finite_weights_are_never_checkpointed(tmp_path, model0):
    with pytest.warns(RuntimeWarning, match=r"ModelCheckpoint: not saving at epoch 0, batch 4: "
                                            r"the weight 'hidden1.weight' holds NaN or infinite "
                                            r"values; the last good checkpoint is kept"), \
            pytest.raises(NonFiniteLossError, match=r"the training loss became nan at epoch 1, "
                                                    r"batch 4"):
        _run(model0, tmp_path, [_Poison(4)])
    latest = find_latest_checkpoint(tmp_path)
    assert latest.name == "epoch0000-batch000002"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("epoch")) == [
        "epoch0000-batch000002"]
    state = load_training_state(tmp_path)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


# ---------------------------------------------------------------------------- kill during a save
def test_a_save_cut_short_leaves_the_previous_checkpoint_intact(tmp_path, model0, monkeypatch):
    import fcnet.checkpoint as ck

    calls = {"n": 0}
    real = ck.atomic_write_bytes

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] == 5:  # the second checkpoint, after its tensor file: a "crash"
            raise _Crash
        real(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", flaky)
    with pytest.raises(_Crash):
        _run(model0, tmp_path)
    assert find_latest_checkpoint(tmp_path).name == "epoch0000-batch000002"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(ck, "atomic_write_bytes", real)
    # A leftover temporary folder (a SIGKILL mid-save) and a folder without manifest are
    # not checkpoints; the next save cleans the temporary folder up.
    (tmp_path / ".tmp-epoch0000-batch000004-dead").mkdir()
    (tmp_path / ".tmp-epoch0000-batch000004-dead" / "state.json").write_text("{")
    assert load_training_state(tmp_path)["position"] == {"epoch": 0, "batch": 2}
    reference = _run(model0)
    resumed = _run(model0, tmp_path, resume_from=tmp_path)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
