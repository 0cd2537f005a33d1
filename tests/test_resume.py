"""Crash-exact resume: SIGKILL, Ctrl-C and crashes mid-run, then resume to the very same weights.

Every run here trains on the CPU with one thread, where fcnet promises bit-identical
weights after a resume.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnet import (
    Callback,
    CheckpointError,
    DisableAugmentation,
    EarlyStopping,
    GradientClipping,
    ModelCheckpoint,
    NonFiniteLossError,
    ProgressBar,
    Trainer,
    WeightAveraging,
    build_mlp,
)
from fcnet.checkpoint import find_latest_checkpoint, load_checkpoint
from fcnet.data import ArrayDataset, RandomShift, train_val_split

WORKER = Path(__file__).with_name("_resume_worker.py")


def _data(n=120, features=8, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 2
    y = torch.arange(n) % classes
    x = centers[y] + torch.randn(n, features, generator=g) * 1.5
    return (x[: n - 30], y[: n - 30]), (x[n - 30:], y[n - 30:])


def _images(data):
    """The same samples as 2x4 images, for an augmentation."""
    (x, y), (xv, yv) = data
    return (x.reshape(-1, 2, 4), y), (xv.reshape(-1, 2, 4), yv)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_weights(a: dict, b: dict, context="") -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), (key, context)


def _strip_seconds(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


def _step(trainer, batch):
    """The global step (counted from 1) that ``batch`` of the epoch under way completes."""
    return trainer.epoch * trainer.batches_per_epoch + batch + 1


class _Crash(Exception):
    pass


class _CrashAt(Callback):
    """Raises after a given global step: a crash between two training steps."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, batch, logs):
        if _step(trainer, batch) == self.step:
            raise _Crash


class _SigintAt(Callback):
    """Sends real SIGINTs (Ctrl-C) to this process after a given global step."""

    def __init__(self, step, times=1):
        self.step, self.times = step, times

    def on_batch_end(self, trainer, batch, logs):
        if _step(trainer, batch) == self.step:
            for _ in range(self.times):
                signal.raise_signal(signal.SIGINT)


class _Steps(Callback):
    """Counts the training steps taken."""

    def __init__(self):
        self.steps = 0

    def on_batch_begin(self, trainer, batch):
        self.steps += 1


@pytest.fixture(autouse=True)
def one_thread():
    # As in the worker: float results must not depend on how work is split in threads.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------- real signals
def _load_worker():
    spec = importlib.util.spec_from_file_location("_resume_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()
_RUN_STEPS = worker.EPOCHS * worker.BATCHES_PER_EPOCH


def _position_step(position) -> int:
    return position["epoch"] * worker.BATCHES_PER_EPOCH + position["batch"]


def _saved_step(ckpt: Path) -> int:
    """The step of the checkpoint ``latest.json`` names (-1 before the first)."""
    try:
        name = json.loads((ckpt / "latest.json").read_text())["checkpoint"]
    except (OSError, ValueError, KeyError):
        return -1
    epoch, batch = name.removeprefix("epoch").split("-batch")
    return int(epoch) * worker.BATCHES_PER_EPOCH + int(batch)


def _signal_worker_then_resume(tmp_path, sig):
    """Start the worker, send ``sig`` at a random moment after a random step, then
    resume here and compare with an uninterrupted reference run.

    The worker holds a few steps after the target step until the signal is sent, so a
    slow or busy machine delays the signal but never lets the run finish first.
    """
    ckpt, release = tmp_path / "ckpt", tmp_path / "release"
    rng = random.Random(os.urandom(8))
    # 4 x 19 steps of >= 10 ms, a save every 2. Signal at a random instant after a random
    # step: mid-step, mid-save, in validation, or while the worker holds.
    target, delay = rng.randint(2, _RUN_STEPS - 12), rng.uniform(0.0, 0.05)
    hold = target + 6
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(WORKER), str(ckpt), str(hold), str(release)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while _saved_step(ckpt) < target:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, f"the worker did not reach step {target}"
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(sig)
        release.touch()
        output = proc.communicate(timeout=300)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stopped_at = load_checkpoint(ckpt)["position"]
    context = f"{stopped_at=} {target=} {hold=} {delay=}"
    print(f"signal {int(sig)} {context}")  # shown with -s: where the run was stopped
    assert target <= _position_step(stopped_at) <= hold, context
    train, val = worker.data()
    resumed = worker.make_trainer(ckpt)
    resumed.fit(train, val, resume_from=ckpt)
    reference = worker.make_trainer(None)
    reference.fit(train, val)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model), context)
    assert _strip_seconds(resumed.history) == _strip_seconds(reference.history), context
    assert resumed.history.meta["resumed"][0]["epoch"] == stopped_at["epoch"]
    return proc.returncode, output, stopped_at


def test_sigkill_at_a_random_moment_then_resume_gives_identical_weights(tmp_path):
    code, output, _ = _signal_worker_then_resume(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL, output


def test_ctrl_c_in_a_real_process_saves_where_it_stopped_and_resumes_exactly(tmp_path):
    code, output, stopped_at = _signal_worker_then_resume(tmp_path, signal.SIGINT)
    assert code == worker.INTERRUPTED, output
    assert output.strip().endswith("interrupted"), output
    assert "fcnet: training interrupted (Ctrl-C) at epoch" in output
    latest = find_latest_checkpoint(tmp_path / "ckpt")
    assert (latest / "manifest.json").is_file()
    # The Trainer stopped after the batch under way and saved exactly there.
    assert 0 < _position_step(stopped_at) < _RUN_STEPS


# ---------------------------------------------------------------------------- in-process
def _trainer(model0, ckpt=None, callbacks=(), *, optimizer="adam", scheduler="onecycle",
             epochs=3, every_n_batches=2, es=True, **extra):
    cbs = [EarlyStopping(patience=10)] if es else []
    cbs += list(callbacks)
    if ckpt is not None:
        cbs.append(ModelCheckpoint(ckpt, every_n_batches=every_n_batches))
    settings = {"lr": 1e-2, "epochs": epochs, "batch_size": 16, "seed": 3, **extra}
    return Trainer(copy.deepcopy(model0), optimizer=optimizer, scheduler=scheduler,
                   callbacks=cbs, device="cpu", progress=False, **settings)


def _run(model0, ckpt=None, callbacks=(), resume_from=None, *, data=None, **kw):
    train, val = data or _data()
    trainer = _trainer(model0, ckpt, callbacks, **kw)
    trainer.fit(train, val, resume_from=resume_from)
    return trainer


def _crash_and_resume(model0, tmp_path, crash_step, make_callbacks=list, **kw):
    """An uninterrupted run, and one crashed after global step ``crash_step`` then resumed
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
    return build_mlp([8, 16, 3], dropout=0.25, norm="batch", seed=0)


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


def test_resume_is_exact_with_decay_groups_clipping_and_weight_averaging(tmp_path, model0):
    # Weight decay splits the parameters into two optimizer groups, clipping acts between
    # backward and step, and the EMA is callback state: all must come back exactly.
    _, resumed = _crash_and_resume(
        model0, tmp_path, 9, lambda: [WeightAveraging(0.9), GradientClipping(0.5)],
        optimizer="adamw", weight_decay=0.05, label_smoothing=0.1)
    assert len(resumed.optimizer.param_groups) == 2


@pytest.mark.parametrize("crash_step", [5, 9, 16])
def test_resume_is_exact_with_augmentation_and_its_last_epochs_without(tmp_path, model0,
                                                                       crash_step):
    # Epochs 1-2 are augmented, epoch 3 is not (six batches an epoch): a run stopped in
    # either part resumes to the weights of an uninterrupted one.
    _crash_and_resume(model0, tmp_path, crash_step, lambda: [DisableAugmentation(1)],
                      augment=RandomShift(1), data=_images(_data()))


def test_ctrl_c_saves_a_complete_checkpoint_then_raises_and_resume_is_exact(tmp_path, model0,
                                                                             capsys):
    reference = _run(model0)
    handler = signal.getsignal(signal.SIGINT)
    interrupted = _trainer(model0, tmp_path, [_SigintAt(8)], every_n_batches=100)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(*_data())
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C works as before again
    assert "fcnet: training interrupted (Ctrl-C) at epoch 2, batch 2" in capsys.readouterr().err
    meta = interrupted.history.meta
    assert meta["interrupted"] is True and meta["interrupted_at"] == {"epoch": 2, "batch": 2}
    assert len(interrupted.history) == 1
    # The Ctrl-C checkpoint is complete, the latest one, and sits mid-epoch, with the
    # training weights (not the best ones EarlyStopping put back at the end).
    latest = find_latest_checkpoint(tmp_path)
    assert latest.name == "epoch0001-batch000002"
    assert sorted(p.name for p in latest.iterdir()) == ["manifest.json", "state.json",
                                                        "state.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    state = load_checkpoint(latest)
    assert state["position"]["epoch"] == 1 and state["position"]["batch"] == 2
    assert state["accumulators"]["seen"] == 32
    assert state["history"]["meta"]["interrupted_at"] == {"epoch": 2, "batch": 2}
    resumed = _run(model0, tmp_path, resume_from=tmp_path, every_n_batches=100)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))
    assert _strip_seconds(resumed.history) == _strip_seconds(reference.history)
    assert "interrupted" not in resumed.history.meta
    assert resumed.history.meta["resumed"] == [
        {"from": str(tmp_path / "epoch0001-batch000002"), "epoch": 1, "batch": 2}]


class _SigintAtEnd(Callback):
    """Sends a SIGINT from ``on_train_end``: a Ctrl-C while fit is finishing."""

    def __init__(self):
        self.finished = False

    def on_train_end(self, trainer):
        signal.raise_signal(signal.SIGINT)
        self.finished = True


@pytest.mark.parametrize("when", ["in the step", "at the end"])
def test_a_second_ctrl_c_aborts_at_once_and_keeps_a_complete_checkpoint(tmp_path, model0,
                                                                         when):
    reference = _run(model0)
    handler = signal.getsignal(signal.SIGINT)
    steps, end = _Steps(), _SigintAtEnd()
    extra = [_SigintAt(9, times=2)] if when == "in the step" else [_SigintAt(9), end]
    trainer = _trainer(model0, tmp_path, [steps, *extra], every_n_batches=4)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(*_data())
    assert signal.getsignal(signal.SIGINT) is handler
    assert steps.steps == 9  # the first Ctrl-C stops after the step under way
    if when == "in the step":
        # Raised in the very step, before anything was saved there: the checkpoint of
        # step 8 is the latest.
        assert "interrupted" not in trainer.history.meta
        assert find_latest_checkpoint(tmp_path).name == "epoch0001-batch000002"
    else:
        # ModelCheckpoint saved the interrupted state first; the callback after it was cut.
        assert not end.finished
        assert find_latest_checkpoint(tmp_path).name == "epoch0001-batch000003"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    resumed = _run(model0, tmp_path, resume_from=tmp_path, every_n_batches=4)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))


def test_progress_bar_draws_a_run_resumed_mid_epoch(tmp_path, model0):
    with pytest.raises(_Crash):
        _run(model0, tmp_path, [_CrashAt(9)])
    out = io.StringIO()
    _run(model0, tmp_path, [ProgressBar(out, enabled=True)], resume_from=tmp_path)
    # The bar of epoch 2 starts at its third batch, where the run came back.
    assert re.search(r"\repoch 2/3: +33%\|[^|]*\| 2/6 \[", out.getvalue()), out.getvalue()
    assert re.search(r"\repoch 3/3: 100%.*train_loss=", out.getvalue()), out.getvalue()


def test_resume_from_a_finished_run_changes_nothing(tmp_path, model0):
    first = _run(model0, tmp_path, epochs=2)
    steps = _Steps()
    again = _run(model0, tmp_path, [steps], resume_from=tmp_path, epochs=2)
    _assert_same_weights(_weights(again.model), _weights(first.model))
    assert len(again.history) == 2 and steps.steps == 0


def test_resume_accepts_a_checkpoint_folder_or_file(tmp_path, model0):
    reference = _run(model0, epochs=2)
    with pytest.raises(_Crash):
        _run(model0, tmp_path, [_CrashAt(8)], epochs=2)
    latest = find_latest_checkpoint(tmp_path)
    for target in (latest, latest / "manifest.json", latest / "state.json"):
        resumed = _run(model0, tmp_path / "again", resume_from=target, epochs=2)
        _assert_same_weights(_weights(resumed.model), _weights(reference.model))


def test_a_checkpoint_of_a_second_fit_resumes_to_the_two_uninterrupted_fits(tmp_path, model0):
    train, val = _data()
    reference = _trainer(model0, epochs=2)
    reference.fit(train, val)
    reference.fit(train, val)  # continues: epochs 3 and 4, the schedule anew
    assert reference.epoch == 4 and len(reference.history) == 4
    crash = _CrashAt(0)  # disarmed in the first fit
    crashed = _trainer(model0, tmp_path, [crash], epochs=2)
    crashed.fit(train, val)
    crash.step = 6 * 2 + 9  # mid-epoch 4: the second fit's second epoch
    with pytest.raises(_Crash):
        crashed.fit(train, val)
    resumed = _trainer(model0, tmp_path, epochs=2)
    resumed.fit(train, val, resume_from=tmp_path)
    assert resumed.epoch == 4
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))
    assert _strip_seconds(resumed.history) == _strip_seconds(reference.history)
    # ...and goes on like the uninterrupted Trainer in a third fit.
    reference.fit(train, val)
    resumed.fit(train, val)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))


def _global_rng():
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _assert_same_rng(a, b):
    assert torch.equal(a[0], b[0]), "torch's global RNG state changed"
    assert a[1] == b[1], "random's state changed"
    assert a[2][0] == b[2][0] and np.array_equal(a[2][1], b[2][1]) and a[2][2:] == b[2][2:], \
        "numpy's global RNG state changed"


@pytest.mark.parametrize("fast_dropout", [False, True])
def test_fit_and_a_resumed_fit_leave_the_callers_global_rng_as_it_was(tmp_path, fast_dropout):
    # Dropout (torch's or FastDropout's masks), the data order and the augmentation all
    # draw from the Trainer's own stream.
    model0 = build_mlp([8, 16, 3], dropout=0.25, norm="batch", fast_dropout=fast_dropout,
                       seed=0)
    data = _images(_data())
    kw = {"augment": RandomShift(1), "data": data, "epochs": 2}
    before = _global_rng()
    first = _weights(_run(model0, **kw).model)
    _assert_same_rng(_global_rng(), before)
    with pytest.raises(_Crash):
        _run(model0, tmp_path / "crashed", [_CrashAt(5)], **kw)
    _assert_same_rng(_global_rng(), before)
    resumed = _run(model0, tmp_path / "resumed", resume_from=tmp_path / "crashed", **kw)
    _assert_same_weights(_weights(resumed.model), first)
    resumed.fit(*data)  # a second fit goes on with the Trainer's own stream
    resumed.predict(data[1][0])
    _assert_same_rng(_global_rng(), before)
    # ...and the caller's draws do not reach the runs.
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    _assert_same_weights(_weights(_run(model0, **kw).model), first)
    again = _run(model0, tmp_path / "again", resume_from=tmp_path / "crashed", **kw)
    _assert_same_weights(_weights(again.model), first)


def test_a_fit_after_a_resumed_fit_warns_of_nothing(crashed, model0, recwarn):
    resumed = _run(model0, crashed, resume_from=crashed)
    resumed.fit(*_data())
    assert [str(w.message) for w in recwarn] == []


# ---------------------------------------------------------------------------- refusals
@pytest.fixture
def crashed(tmp_path, model0):
    """A checkpoint folder of a run crashed after step 5 (of 6 in epoch 1)."""
    with pytest.raises(_Crash):
        _run(model0, tmp_path, [_CrashAt(5)])
    return tmp_path


def _refused(model0, ckpt, data=None, **kw):
    """Resume with other settings or data: the CheckpointError, after checking that no
    step was taken and the weights are the model's own."""
    train, val = data or _data()
    steps = _Steps()
    trainer = _trainer(model0, callbacks=[steps], **kw)
    before = _weights(trainer.model)
    with pytest.raises(CheckpointError) as info:
        trainer.fit(train, val, resume_from=ckpt)
    assert steps.steps == 0
    _assert_same_weights(_weights(trainer.model), before)
    return str(info.value)


def test_resume_refuses_a_different_model_before_any_step(crashed, model0):
    other = build_mlp([8, 24, 3], dropout=0.25, norm="batch", seed=0)
    message = _refused(other, crashed)
    assert "holds a different model: sizes [8, 16, 3] in the checkpoint, [8, 24, 3] here" \
        in message
    # A model without a spec is compared tensor by tensor.
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
    message = _refused(plain, crashed, es=False)
    assert "the weights do not fit this model" in message and "1.weight" in message


@pytest.mark.parametrize(
    ("setting", "saved", "value"),
    [
        ("lr", 0.01, 0.02),
        ("weight_decay", 0.0, 0.01),
        ("label_smoothing", 0.0, 0.1),
        ("seed", 3, 4),
        ("batch_size", 16, 32),
        ("optimizer", "'adam'", "sgd"),
        ("epochs", 3, 4),
    ],
)
def test_resume_refuses_a_changed_setting_naming_it(crashed, model0, setting, saved, value):
    message = _refused(model0, crashed, **{setting: value})
    assert f"was saved with {setting}={saved}, but this Trainer has {setting}={value!r}" \
        in message


@pytest.mark.parametrize("scheduler", [None, "cosine"])
def test_resume_refuses_another_scheduler(crashed, model0, scheduler):
    message = _refused(model0, crashed, scheduler=scheduler)
    assert "was saved with scheduler={'name': 'onecycle'" in message


def test_an_unseeded_trainer_resumes_with_the_checkpoints_seed(crashed, model0):
    reference = _run(model0)
    resumed = _run(model0, crashed, resume_from=crashed, seed=None)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))
    assert resumed.seed_used == 3


def test_resume_refuses_other_data(crashed, model0):
    (x, y), val = _data()
    message = _refused(model0, crashed, data=((x[:80], y[:80]), val))
    assert "was saved with train data" in message and "[90, 8]" in message \
        and "[80, 8]" in message
    message = _refused(model0, crashed, data=((x.clamp(0, 255).to(torch.uint8), y), val))
    assert "dtype 'float32'" in message and "dtype 'uint8'" in message
    message = _refused(model0, crashed, data=((x, y), None), es=False)
    assert "was saved with val data" in message and "but fit() got None" in message
    message = _refused(model0, crashed, data=((x, y), (val[0][:10], val[1][:10])))
    assert "was saved with val data" in message and "[10, 8]" in message


def test_resume_refuses_a_different_split(tmp_path):
    x = torch.randint(0, 255, (120, 4, 2), dtype=torch.uint8)
    full = ArrayDataset(x, torch.arange(120) % 3)
    train, val = train_val_split(full, val_fraction=0.25, seed=0)
    model0 = build_mlp([8, 3], seed=0)

    def trainer(callbacks=()):
        return Trainer(copy.deepcopy(model0), epochs=2, batch_size=16, device="cpu",
                       progress=False, callbacks=list(callbacks))

    with pytest.raises(_Crash):
        trainer([ModelCheckpoint(tmp_path, every_n_batches=2), _CrashAt(3)]).fit(train, val)
    assert load_checkpoint(tmp_path)["data"]["train"]["provenance"] == train.provenance
    other_train, other_val = train_val_split(full, val_fraction=0.25, seed=1)
    with pytest.raises(CheckpointError, match=r"was saved with train data .*'seed': 0.*but "
                                              r"fit\(\) got .*'seed': 1"):
        trainer().fit(other_train, other_val, resume_from=tmp_path)
    with pytest.warns(UserWarning, match=r"holds the state of a ModelCheckpoint callback that "
                                         r"this Trainer does not have; that state is ignored"):
        trainer().fit(train, val, resume_from=tmp_path)  # the same split resumes


def test_a_refused_resume_leaves_the_trainer_as_it_was(crashed, model0):
    train, val = _data()
    twin, trainer = _trainer(model0, epochs=1), _trainer(model0, epochs=1)
    twin.fit(train, val)
    trainer.fit(train, val)
    with pytest.raises(CheckpointError, match=r"saved with epochs=3, but this Trainer has "
                                              r"epochs=1"):
        trainer.fit(train, val, resume_from=crashed)
    # The next fit continues the first one, as the twin's does.
    twin.fit(train, val)
    trainer.fit(train, val)
    _assert_same_weights(_weights(trainer.model), _weights(twin.model))


def _edited_copy(checkpoint: Path, folder: Path, edit) -> Path:
    """A copy of ``checkpoint`` whose Trainer state ``edit`` changed, with a manifest that
    matches (as a hand-edited or badly written file would be)."""
    folder.mkdir()
    meta = json.loads((checkpoint / "state.json").read_text())
    edit(meta["state"])
    blob = json.dumps(meta).encode()
    (folder / "state.json").write_bytes(blob)
    (folder / "state.safetensors").write_bytes((checkpoint / "state.safetensors").read_bytes())
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"]["state.json"] = {"bytes": len(blob),
                                       "sha256": hashlib.sha256(blob).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.filterwarnings("ignore:.*holds the state of a ModelCheckpoint callback")
@pytest.mark.parametrize("edit", [
    lambda state: state.update(config=1),
    lambda state: state.update(callbacks=True),
    lambda state: state["position"].update(batch=10**9),
    lambda state: state["optimizer"].update(state="x"),
], ids=["config", "callbacks", "position", "optimizer"])
def test_a_malformed_trainer_state_is_a_checkpoint_error(crashed, model0, tmp_path_factory,
                                                         edit):
    latest = find_latest_checkpoint(crashed)
    folder = _edited_copy(latest, tmp_path_factory.mktemp("edited") / "ckpt", edit)
    _refused(model0, folder)


def test_resume_from_missing_empty_or_corrupted_paths(tmp_path, model0):
    train, val = _data()
    trainer = _trainer(model0)
    with pytest.raises(FileNotFoundError,
                       match=r"resume_from: no checkpoint file or folder at '.*nowhere'"):
        trainer.fit(train, val, resume_from=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no complete checkpoint in '.*empty': expected a "
                                              r"checkpoint folder \(with manifest.json\)"):
        trainer.fit(train, val, resume_from=tmp_path / "empty")
    with pytest.raises(TypeError, match=r"resume_from must be a str or os.PathLike path, got int"):
        trainer.fit(train, val, resume_from=3)

    ckpt = tmp_path / "run"
    with pytest.raises(_Crash):
        _run(model0, ckpt, [_CrashAt(5)])
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
        state = load_checkpoint(ckpt)
    assert (state["position"]["epoch"], state["position"]["batch"]) == (0, 2)


# ---------------------------------------------------------------------------- guarded training
class _Poison(Callback):
    """Puts a NaN into the weights after a given step, as a diverging step would."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, batch, logs):
        if _step(trainer, batch) == self.step:
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
    state = load_checkpoint(tmp_path)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


# ---------------------------------------------------------------------------- kill during a save
def test_a_save_cut_short_leaves_the_previous_checkpoint_intact(tmp_path, model0, monkeypatch):
    real = os.replace
    manifests = []

    def crash_at_the_second_manifest(src, dst):
        if Path(dst).name == "manifest.json":
            manifests.append(dst)
            if len(manifests) == 2:  # the second checkpoint, files but manifest on disk
                raise _Crash
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash_at_the_second_manifest)
    with pytest.raises(_Crash):
        _run(model0, tmp_path)
    monkeypatch.setattr(os, "replace", real)
    assert find_latest_checkpoint(tmp_path).name == "epoch0000-batch000002"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # A leftover temporary folder (a SIGKILL mid-save) is not a checkpoint; the next save
    # cleans it up.
    (tmp_path / ".tmp-epoch0000-batch000004-dead").mkdir()
    (tmp_path / ".tmp-epoch0000-batch000004-dead" / "state.json").write_text("{")
    state = load_checkpoint(tmp_path)
    assert (state["position"]["epoch"], state["position"]["batch"]) == (0, 2)
    reference = _run(model0)
    resumed = _run(model0, tmp_path, resume_from=tmp_path)
    _assert_same_weights(_weights(resumed.model), _weights(reference.model))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


class _Counter(Callback):
    def on_train_begin(self, trainer):
        self.n = 0

    def on_batch_end(self, trainer, batch, logs):
        self.n += 1

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


class _CounterV2(_Counter):  # a later version that wants a field old checkpoints lack
    def load_state_dict(self, state):
        self.n, self.m = state["n"], state["m"]


_CounterV2.__name__ = _Counter.__name__


def test_a_refused_resume_writes_nothing_and_leaves_the_trainer_as_it_was(tmp_path):
    train, val = _data()
    ckpt = tmp_path / "ckpt"
    first = Trainer(build_mlp([8, 16, 3], seed=0), epochs=3, seed=0, progress=False,
                    callbacks=[_Counter(), ModelCheckpoint(ckpt, save_best=False)])
    first.fit(train, val)
    files = sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*"))
    latest = (ckpt / "latest.json").read_text()

    model = build_mlp([8, 16, 3], seed=5)
    before = _weights(model)
    again = Trainer(model, epochs=3, seed=0, progress=False,
                    callbacks=[_CounterV2(), ModelCheckpoint(ckpt, save_best=False)])
    with pytest.raises(CheckpointError, match=r"cannot restore the state of _Counter: "
                                              r"KeyError\('m'\)"):
        again.fit(train, val, resume_from=ckpt)
    # No checkpoint was written over the run's (ModelCheckpoint's on_train_end never ran).
    assert sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*")) == files
    assert (ckpt / "latest.json").read_text() == latest
    # The Trainer and its model are as before the call: untrained, nothing recorded.
    _assert_same_weights(_weights(model), before)
    assert len(again.history) == 0 and again.epoch == 0 and again.optimizer is None
    assert again.seed_used is None and model.spec.input_dtype is None
    # With the callback mended, the same Trainer resumes the finished run as it was.
    again.callbacks[0] = _Counter()
    history = again.fit(train, val, resume_from=ckpt)
    assert len(history) == 3 and again.epoch == 3
    _assert_same_weights(_weights(model), _weights(first.model))


def test_a_second_run_in_the_same_folder_never_replaces_the_firsts_checkpoints(tmp_path):
    train, val = _data()
    ckpt = tmp_path / "ckpt"

    def run(seed):
        trainer = Trainer(build_mlp([8, 16, 3], seed=seed), epochs=3, seed=seed,
                          progress=False,
                          callbacks=[ModelCheckpoint(ckpt, save_best=True, keep_last=3)])
        trainer.fit(train, val)
        return trainer

    first = run(0)
    before = {p.relative_to(ckpt): p.read_bytes() for p in ckpt.rglob("*") if p.is_file()
              and p.name != "latest.json"}
    second = run(1)
    after = {p.relative_to(ckpt): p.read_bytes() for p in ckpt.rglob("*") if p.is_file()}
    for path, data in before.items():  # every file of the first run, byte for byte
        assert after[path] == data, path
    second_id = second.callbacks[0].run_id
    assert json.loads((ckpt / "latest.json").read_text()) == {
        "checkpoint": f"epoch0003-batch000000-{second_id}", "run_id": second_id}
    # Resuming the folder takes the second run; the first's checkpoint still loads as it.
    _assert_same_weights(load_checkpoint(ckpt)["model"], _weights(second.model))
    _assert_same_weights(load_checkpoint(ckpt / "epoch0003-batch000000")["model"],
                         _weights(first.model))
    resumed = Trainer(build_mlp([8, 16, 3], seed=1), epochs=3, seed=1, progress=False,
                      callbacks=[ModelCheckpoint(ckpt, save_best=True, keep_last=3)])
    resumed.fit(train, val, resume_from=ckpt)
    assert resumed.epoch == 3
    _assert_same_weights(_weights(resumed.model), _weights(second.model))
