"""History round trips, and the logging callbacks."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from fcnet import (
    EarlyStopping,
    EpochLogger,
    History,
    HistoryLogger,
    ProgressBar,
    Trainer,
    build_mlp,
)


def test_history_column_best_and_json_round_trip(tmp_path):
    h = History([{"epoch": 1, "train_loss": 0.9, "val_loss": 0.8},
                 {"epoch": 2, "train_loss": 0.5, "val_loss": float("nan")},
                 {"epoch": 3, "train_loss": 0.4, "val_loss": 0.7}], meta={"seed": 3})
    assert h.column("train_loss") == [0.9, 0.5, 0.4]
    assert h.best("val_loss")["epoch"] == 3
    with pytest.raises(KeyError, match=r"no epoch in the history has 'val_acc'; available"):
        h.column("val_acc")
    path = tmp_path / "h.json"
    h.to_json(path)
    json.loads(path.read_text())  # standard JSON: NaN is stored as null
    back = History.from_json(path)
    assert back.column("val_loss") == [0.8, None, 0.7]
    assert back.meta == {"seed": 3} and isinstance(back, list)
    assert History.from_json(h.to_json())[0] == h[0]


def test_history_logger_writes_csv_and_json_each_epoch(tmp_path, blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), epochs=3, progress=False,
                      callbacks=[HistoryLogger(tmp_path / "h.csv"),
                                 HistoryLogger(tmp_path / "h.json")])
    trainer.fit((x, y), (x, y))
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_accuracy"]) == pytest.approx(trainer.history[-1]["val_accuracy"])
    assert History.from_json(tmp_path / "h.json") == trainer.history
    with pytest.raises(ValueError, match=r"path must end in .csv or .json, got 'h.txt'"):
        HistoryLogger("h.txt")


def test_epoch_logger_prints_one_line_per_epoch(blobs):
    x, y = blobs
    out = io.StringIO()
    Trainer(build_mlp([8, 3]), epochs=2, progress=False,
            callbacks=[EpochLogger(out)]).fit((x, y), (x, y))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2 train_loss=")
    assert "val_accuracy=" in lines[1]


def test_progress_bar_writes_lines_off_a_terminal_and_draws_when_forced(blobs):
    x, y = blobs
    plain, forced = io.StringIO(), io.StringIO()
    Trainer(build_mlp([8, 3]), epochs=2,
            callbacks=[ProgressBar(plain)]).fit((x, y))
    Trainer(build_mlp([8, 3]), epochs=2,
            callbacks=[ProgressBar(forced, enabled=True, refresh_seconds=0)]).fit((x, y))
    # Off a terminal: no bar, one plain line per epoch, so a log file says what ran.
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2 train_loss=")
    assert "\r" not in plain.getvalue()
    # Forced: tqdm's bar, with the batch count and the running loss.
    text = forced.getvalue()
    assert "epoch 1/2" in text and "batch" in text and "loss=" in text and "\r" in text


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patience": -1}, ValueError, r"patience must be >= 0, got -1"),
        ({"patience": 2.0}, TypeError, r"patience must be an int"),
        ({"min_delta": -0.1}, ValueError, r"min_delta must be a finite number >= 0"),
        ({"mode": "up"}, ValueError, r"mode must be one of 'auto', 'min', 'max', got 'up'"),
        ({"monitor": ""}, TypeError, r"monitor must be a non-empty str"),
    ],
)
def test_early_stopping_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        EarlyStopping(**kwargs)


def test_early_stopping_mode_auto_and_unknown_monitor(blobs):
    assert EarlyStopping("val_accuracy").resolved_mode == "max"
    assert EarlyStopping("val_loss").resolved_mode == "min"
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3]), epochs=2, progress=False,
                      callbacks=[EarlyStopping("train_f1")])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"EarlyStopping\(monitor='train_f1'\): this fit's epochs"):
        trainer.fit((x, y))
    # Checked before any step: the weights are untouched.
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())
    misspelt = Trainer(build_mlp([8, 3]), epochs=2, progress=False,
                       callbacks=[EarlyStopping("val_acc")])
    with pytest.raises(ValueError, match=r"did you mean 'val_accuracy'\?"):
        misspelt.fit((x, y), (x, y))


def test_one_early_stopping_instance_serves_two_fits(blobs):
    x, y = blobs
    es = EarlyStopping(patience=0)
    for _ in range(2):
        trainer = Trainer(build_mlp([8, 3]), lr=0.0, epochs=10, progress=False, callbacks=[es])
        history = trainer.fit((x, y), (x, y))
        assert len(history) == 2  # state was reset: the first epoch is the best again


def test_weight_averaging_matches_a_hand_computed_average(blobs):
    import torch

    from fcnet import Callback, WeightAveraging

    x, y = blobs
    seen = []

    class Record(Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    model = build_mlp([8, 16, 3], norm="batch")
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, lr=0.05, epochs=2, batch_size=50, progress=False,
                      callbacks=[Record(), WeightAveraging(decay=0.9)])
    history = trainer.fit((x, y))
    expected = {k: v.clone() for k, v in start.items() if v.is_floating_point()}
    for t, state in enumerate(seen, start=1):
        decay = min(0.9, (1 + t) / (10 + t))
        for k in expected:
            expected[k] = decay * expected[k] + (1 - decay) * state[k]
    final = trainer.model.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(final[k], v)
    assert history.meta["weight_averaging"] == {"decay": 0.9, "updates": 12}
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\), got 1.0"):
        WeightAveraging(decay=1.0)


def test_weight_averaging_resumes_exactly_from_a_checkpoint(tmp_path, blobs):
    import torch

    from fcnet import ModelCheckpoint, WeightAveraging

    x, y = blobs
    torch.manual_seed(0)
    initial = build_mlp([8, 16, 3])

    def run(resume_from=None):
        model = build_mlp([8, 16, 3])
        model.load_state_dict(initial.state_dict())
        trainer = Trainer(model, lr=0.05, epochs=3, batch_size=50, seed=1, progress=False,
                          callbacks=[WeightAveraging(decay=0.9),
                                     ModelCheckpoint(tmp_path / "ck", keep_last=5,
                                                     save_best=False)])
        trainer.fit((x, y), resume_from=resume_from)
        return trainer.model.state_dict()

    full = run()
    resumed = run(resume_from=tmp_path / "ck" / "epoch0002-batch000000")
    for k, v in full.items():
        assert torch.equal(v, resumed[k]), k


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    from fcnet._io import atomic_write_text

    atomic_write_text(tmp_path / "a.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left
