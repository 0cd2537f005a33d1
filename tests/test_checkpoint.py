"""Model files and training checkpoints: formats, safety, ModelCheckpoint's behaviour."""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fcnet.checkpoint as ck
from fcnet import (
    CheckpointError,
    EarlyStopping,
    ModelCheckpoint,
    Trainer,
    build_mlp,
    load_model,
    save_model,
)


class _Files(dict):
    """File contents by name, with a short repr for hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<files {sorted(self)}>"


def _same(a, b, where="state"):
    """Deep equality that also checks types (int stays int, tuple stays tuple)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}.{i}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


def _round_trip(obj):
    tensors = {}
    skeleton = ck._encode(obj, "x", tensors)
    text = json.dumps(skeleton, allow_nan=False)
    back = safetensors.torch.load(safetensors.torch.save(tensors))
    return ck._decode(json.loads(text), back, "test")


def _data(n=64, features=8, classes=3):
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % classes
    x = torch.randn(classes, features, generator=g)[y] * 3 + torch.randn(n, features, generator=g)
    return x, y


# ---------------------------------------------------------------------------- model files
@pytest.mark.parametrize(
    "kwargs",
    [
        {"sizes": [8, 3]},
        {"sizes": [8, 16, 3], "dropout": 0.25, "norm": "batch", "input_norm": (0.5, 0.5),
         "input_dropout": 0.1},
        {"sizes": [8, 6, 5, 3], "dropout": [0.1, 0.0], "activation": "gelu", "norm": "layer",
         "output": "log_softmax"},
    ],
)
def test_save_and_load_model_round_trip(tmp_path, kwargs):
    model = build_mlp(**kwargs)
    with torch.no_grad():  # non-default buffers too (batch norm statistics)
        for buf in model.buffers():
            if buf.is_floating_point():
                buf.add_(0.25)
    assert save_model(model, tmp_path / "m") == tmp_path / "m"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format"] == "fcnet.model" and meta["format_version"] == 1
    assert meta["spec"] == model.spec.to_dict() and meta["fcnet_version"] == "0.1.0"
    loaded = load_model(tmp_path / "m")
    assert type(loaded).__name__ == "MLP" and loaded.spec == model.spec and not loaded.training
    _same(dict(loaded.state_dict()), dict(model.state_dict()))
    x = torch.randint(0, 255, (5, 8), dtype=torch.uint8)
    assert torch.equal(loaded(x), model.eval()(x))
    # Either file of the pair names the model too.
    _same(dict(load_model(tmp_path / "m" / "model.safetensors").state_dict()),
          dict(model.state_dict()))


def test_save_model_refuses_what_it_cannot_rebuild(tmp_path):
    plain = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with pytest.raises(TypeError, match=r"save_model needs a model built by fcnet.build_mlp "
                                        r"\(with an MLPSpec .spec to rebuild it\), got a "
                                        r"Sequential without one"):
        save_model(plain, tmp_path / "m")
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got str"):
        save_model("model", tmp_path / "m")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"path must be a folder to hold model.safetensors and "
                                         r"model.json, but '.*file' is a file"):
        save_model(build_mlp([4, 2]), tmp_path / "file")
    with pytest.raises(TypeError, match=r"path must be a str or os.PathLike path, got int"):
        save_model(build_mlp([4, 2]), 5)
    assert not (tmp_path / "m").exists()


def test_load_model_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no model file or folder at '.*nothing'"):
        load_model(tmp_path / "nothing")
    folder = save_model(build_mlp([8, 4, 3]), tmp_path / "m")
    meta_path = folder / "model.json"
    good = json.loads(meta_path.read_text())

    def load_with(**changes):
        meta = {**good, **changes}
        meta_path.write_text(json.dumps(meta))
        return load_model(folder)

    with pytest.raises(CheckpointError, match=r"invalid model spec: activation must be one of "
                                              r"'relu'.*got 'swish'"):
        load_with(spec={**good["spec"], "activation": "swish"})
    with pytest.raises(CheckpointError, match=r"invalid model spec: spec has unknown fields "
                                              r"\['layers'\]"):
        load_with(spec={**good["spec"], "layers": ["conv"]})
    with pytest.raises(CheckpointError, match=r"the weights do not match the model: "
                                              r"hidden1.bias has shape \(4,\), the model "
                                              r"expects \(5,\); hidden1.weight has shape "
                                              r"\(4, 8\), the model expects \(5, 8\)"):
        load_with(spec={**good["spec"], "sizes": [8, 5, 3]})
    with pytest.raises(CheckpointError, match=r"missing tensors \['norm1.bias', "):
        load_with(spec={**good["spec"], "norm": "layer"})
    with pytest.raises(CheckpointError, match=r"unexpected tensors \['hidden1.bias', "
                                              r"'hidden1.weight'\]; output.weight has shape "
                                              r"\(3, 4\), the model expects \(3, 8\)"):
        load_with(spec={"sizes": [8, 3], "dropout": []})
    with pytest.raises(CheckpointError, match=r"format version 2, written by a newer fcnet"):
        load_with(format_version=2)
    with pytest.raises(CheckpointError, match=r"is not an fcnet.model file"):
        load_with(format="something")
    meta_path.write_text(json.dumps(good))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model.safetensors is truncated or corrupted: "
                                              r"0 bytes"):
        load_model(folder)


def test_huge_spec_is_refused_without_allocating_it(tmp_path):
    folder = save_model(build_mlp([8, 3]), tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    meta["spec"]["sizes"] = [10**7, 10**7, 3]
    meta["spec"]["dropout"] = [0.0]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"missing tensors \['hidden1.bias'"):
        load_model(folder)
    meta["spec"]["sizes"] = [10**30, 3]
    meta["spec"]["dropout"] = []
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"the model spec cannot be built"):
        load_model(folder)


def test_a_failed_save_keeps_the_existing_model(tmp_path, monkeypatch):
    first = build_mlp([8, 3])
    save_model(first, tmp_path / "m")
    calls = []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(path, data)

    real = ck.atomic_write_bytes
    monkeypatch.setattr(ck, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        save_model(build_mlp([8, 3]), tmp_path / "m")
    _same(dict(load_model(tmp_path / "m").state_dict()), dict(first.state_dict()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary leftovers


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = save_model(build_mlp([8, 4, 3], norm="batch"), tmp_path_factory.mktemp("m") / "m")
    return _Files(meta=(folder / "model.json").read_bytes(),
                  weights=(folder / "model.safetensors").read_bytes())


def _load_pair(tmp_path, meta: bytes, weights: bytes):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "model.json").write_bytes(meta)
    (folder / "model.safetensors").write_bytes(weights)
    return load_model(folder)


def _with_hash(meta: bytes, weights: bytes) -> bytes:
    # A manifest that matches the damaged weights, so that the weights parser is reached.
    data = json.loads(meta)
    data["weights"].update(bytes=len(weights), sha256=ck._sha256(weights))
    return json.dumps(data).encode()


_FUZZ = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(data=st.data())
def test_fuzzed_model_files_fail_with_checkpoint_error_only(tmp_path, saved_model, data):
    meta, weights = saved_model["meta"], saved_model["weights"]
    which = data.draw(st.sampled_from(["meta-random", "meta-cut", "meta-flip", "w-random",
                                       "w-cut", "w-flip"]))
    if which.startswith("meta"):
        if which == "meta-random":
            meta = data.draw(st.binary(max_size=400))
        elif which == "meta-cut":
            meta = meta[: data.draw(st.integers(0, len(meta) - 1))]
        else:
            i = data.draw(st.integers(0, len(meta) - 1))
            meta = meta[:i] + bytes([meta[i] ^ data.draw(st.integers(1, 255))]) + meta[i + 1:]
    else:
        if which == "w-random":
            weights = data.draw(st.binary(max_size=400))
        elif which == "w-cut":
            weights = weights[: data.draw(st.integers(0, len(weights) - 1))]
        else:
            i = data.draw(st.integers(0, len(weights) - 1))
            weights = (weights[:i] + bytes([weights[i] ^ data.draw(st.integers(1, 255))])
                       + weights[i + 1:])
        if data.draw(st.booleans()):
            meta = _with_hash(meta, weights)
    with contextlib.suppress(CheckpointError):
        _load_pair(tmp_path, meta, weights)
    # A flipped byte may still decode (e.g. a changed weight value with a matching hash);
    # then the model loaded, which is fine. Any other exception fails the test.


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)


@_FUZZ
@given(spec=json_values, extra=st.dictionaries(st.sampled_from(["format", "format_version",
                                                                 "weights", "spec"]),
                                               json_values, max_size=2))
def test_structurally_wrong_model_json_fails_with_checkpoint_error(tmp_path, saved_model, spec,
                                                                   extra):
    meta, weights = saved_model["meta"], saved_model["weights"]
    data = {**json.loads(meta), "spec": spec, **extra}
    with pytest.raises(CheckpointError):
        _load_pair(tmp_path, json.dumps(data).encode(), weights)


# ---------------------------------------------------------------------------- state encoding
@pytest.mark.parametrize(
    ("make_opt", "make_sched"),
    [
        (lambda p: torch.optim.Adam(p, lr=1e-2),
         lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20)),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20)),
        (lambda p: torch.optim.AdamW(p, lr=1e-2, amsgrad=True),
         lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)),
        (lambda p: torch.optim.SGD(p, lr=0.1),
         lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=1)),
    ],
)
def test_optimizer_and_scheduler_states_round_trip_exactly(make_opt, make_sched):
    model = build_mlp([8, 5, 3])
    opt = make_opt(model.parameters())
    sched = make_sched(opt)
    x, y = _data()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step(1.0) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) \
            else sched.step()
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    _same(_round_trip(opt_state), opt_state)
    _same(_round_trip(sched_state), sched_state)
    # ...and torch accepts them: a fresh pair continues exactly like the original.
    twin = build_mlp([8, 5, 3])
    twin.load_state_dict(model.state_dict())
    opt2 = make_opt(twin.parameters())
    sched2 = make_sched(opt2)
    opt2.load_state_dict(_round_trip(opt_state))
    sched2.load_state_dict(_round_trip(sched_state))
    for m, o in ((model, opt), (twin, opt2)):
        o.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        o.step()
    _same(dict(twin.state_dict()), dict(model.state_dict()))


def test_rng_states_and_odd_values_round_trip():
    state = ck._rng_state()
    _same(_round_trip(state), state)
    odd = {1: "int key", (2, "t"): [1.5, float("inf"), float("-inf")], "__x": None,
           "nan": float("nan"), "arr": np.arange(6, dtype=np.uint32).reshape(2, 3),
           "scalar": np.float32(0.5), "t": torch.tensor([True, False]), "e": torch.zeros(0, 3)}
    back = _round_trip(odd)
    assert back["scalar"] == 0.5 and isinstance(back["scalar"], float)
    del odd["scalar"], back["scalar"]
    _same(back, odd)
    with pytest.raises(TypeError, match=r"x.f: cannot save a function; checkpoints hold "
                                        r"tensors, numpy arrays and JSON values"):
        _round_trip({"f": lambda: 0})


# ---------------------------------------------------------------------------- ModelCheckpoint
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dirpath": 3}, TypeError, r"dirpath must be a str or os.PathLike folder path, got int 3"),
        ({"dirpath": ""}, ValueError, r"dirpath must be a folder path, got ''"),
        ({"every_n_epochs": 0}, ValueError,
         r"every_n_epochs must be >= 1 \(1 saves after every epoch\), got 0"),
        ({"every_n_epochs": 1.5}, TypeError, r"every_n_epochs must be an int, got float 1.5"),
        ({"every_n_epochs": True}, TypeError, r"every_n_epochs must be an int, got bool True"),
        ({"keep_last": 0}, ValueError, r"keep_last must be >= 1 \(1 keeps only the newest\), "
                                       r"got 0"),
        ({"keep_last": None}, TypeError, r"keep_last must be an int, got NoneType None"),
        ({"every_n_batches": 0}, ValueError,
         r"every_n_batches must be >= 1 \(None saves only at epoch ends\), got 0"),
        ({"every_n_batches": "10"}, TypeError, r"every_n_batches must be an int, got str '10'"),
        ({"save_best": "yes"}, TypeError, r"save_best must be True or False, got 'yes'"),
        ({"monitor": ""}, TypeError, r"monitor must be a non-empty str, got ''"),
        ({"mode": "best"}, ValueError, r"mode must be one of 'auto', 'min', 'max', got 'best'"),
    ],
)
def test_model_checkpoint_rejects_bad_arguments(tmp_path, kwargs, error, match):
    kwargs = {"dirpath": tmp_path, **kwargs}
    with pytest.raises(error, match=match):
        ModelCheckpoint(**kwargs)


def test_model_checkpoint_checks_its_folder_and_monitor_at_fit(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"dirpath must be a folder, but '.*file' is a file"):
        ModelCheckpoint(tmp_path / "file")
    x, y = _data()
    later = ModelCheckpoint(tmp_path / "later")
    (tmp_path / "later").write_text("now a file")
    trainer = Trainer(build_mlp([8, 3]), epochs=1, progress=False, callbacks=[later])
    with pytest.raises(ValueError, match=r"dirpath must be a folder, but '.*later' is a file"):
        trainer.fit((x, y), (x, y))
    trainer = Trainer(build_mlp([8, 3]), epochs=1, progress=False,
                      callbacks=[ModelCheckpoint(tmp_path / "c")])
    with pytest.raises(ValueError, match=r"ModelCheckpoint monitors 'val_loss' for save_best but "
                                         r"fit\(\) got no validation data"):
        trainer.fit((x, y))
    trainer = Trainer(build_mlp([8, 3]), epochs=1, progress=False,
                      callbacks=[ModelCheckpoint(tmp_path / "c", monitor="train_acc")])
    with pytest.raises(ValueError, match=r"ModelCheckpoint monitors 'train_acc', which is not in "
                                         r"the epoch's logs; available: \['epoch', 'lr'"):
        trainer.fit((x, y))


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_layout_pruning_latest_and_best(tmp_path):
    x, y = _data()
    xv, yv = x[:16], y[:16]

    class ValLoss(EarlyStopping):  # a scripted val_loss: best at epoch 2
        def on_epoch_end(self, trainer, epoch, logs):
            logs["val_loss"] = [0.9, 0.5, 0.7, 0.6][epoch - 1]

    ckpt = ModelCheckpoint(tmp_path, keep_last=2)
    torch.manual_seed(0)
    trainer = Trainer(build_mlp([8, 3]), epochs=4, batch_size=16, progress=False,
                      callbacks=[ckpt, ValLoss(patience=10)])
    trainer.fit((x, y), (xv, yv))
    assert _names(tmp_path) == ["best", "epoch0003-batch000000", "epoch0004-batch000000",
                                "latest.json"]
    assert json.loads((tmp_path / "latest.json").read_text())["checkpoint"] == \
        "epoch0004-batch000000"
    assert _names(tmp_path / "epoch0004-batch000000") == ["manifest.json", "state.json",
                                                          "state.safetensors"]
    assert _names(tmp_path / "best") == ["epoch0002-batch000000", "latest.json"]
    assert (ckpt.best, ckpt.best_epoch) == (0.5, 2)
    assert ckpt.last_path == tmp_path / "epoch0004-batch000000"
    meta = json.loads((tmp_path / "epoch0004-batch000000" / "state.json").read_text())
    assert meta["position"] == {"epoch": 4, "batch": 0, "global_step": 16}
    assert meta["model"]["spec"] == trainer.model.spec.to_dict()
    assert meta["data"]["train"]["inputs"] == {"shape": [64, 8], "dtype": "float32"}
    assert meta["history"]["epochs"][-1]["epoch"] == 4
    assert [c["class"] for c in meta["callbacks"]] == ["ModelCheckpoint", "ValLoss"]
    best = load_model(tmp_path / "best")
    state = ck.load_training_state(tmp_path / "best")
    _same(dict(best.state_dict()), state["model"])

    # A second, fresh run in the same folder: its checkpoints become the latest, and the
    # first run's are not pruned by it.
    Trainer(build_mlp([8, 3]), epochs=2, batch_size=16, progress=False,
            callbacks=[ModelCheckpoint(tmp_path, keep_last=1, save_best=False)]).fit((x, y))
    assert ck.find_latest_checkpoint(tmp_path).name == "epoch0002-batch000000"
    assert _names(tmp_path) == ["best", "epoch0002-batch000000", "epoch0003-batch000000",
                                "epoch0004-batch000000", "latest.json"]


def test_every_n_epochs_and_the_final_checkpoint(tmp_path):
    x, y = _data()
    trainer = Trainer(build_mlp([8, 3]), epochs=5, batch_size=32, progress=False,
                      callbacks=[ModelCheckpoint(tmp_path, every_n_epochs=2, keep_last=5,
                                                 save_best=False)])
    trainer.fit((x, y))
    # Epochs 2 and 4, and the end of training (epoch 5) although 5 is not a multiple of 2.
    assert [p.name for p in sorted(tmp_path.glob("epoch*"))] == [
        "epoch0002-batch000000", "epoch0004-batch000000", "epoch0005-batch000000"]


def test_no_pickle_is_used_to_save_or_load(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "dump"),
                         (pickle, "dumps"), (torch, "load"), (torch, "save")):
        monkeypatch.setattr(module, name, forbidden)
    x, y = _data()
    model = build_mlp([8, 4, 3])
    trainer = Trainer(model, epochs=2, batch_size=32, progress=False,
                      callbacks=[ModelCheckpoint(tmp_path / "c"), EarlyStopping()])
    trainer.fit((x, y), (x, y))
    save_model(model, tmp_path / "m")
    load_model(tmp_path / "m")
    load_model(tmp_path / "c")
    Trainer(build_mlp([8, 4, 3]), epochs=2, batch_size=32, progress=False,
            callbacks=[ModelCheckpoint(tmp_path / "c"), EarlyStopping()]).fit(
        (x, y), (x, y), resume_from=tmp_path / "c")
    source = Path(ck.__file__).read_text()
    assert not re.search(r"(?<!safetensors\.)torch\.(load|save)\b", source)
    assert not re.search(r"\b(import|from) (pickle|marshal|dill)\b|\bpickle\.[a-z]", source)


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory):
    folder = tmp_path_factory.mktemp("c")
    x, y = _data()
    Trainer(build_mlp([8, 4, 3]), epochs=1, batch_size=32, progress=False,
            callbacks=[ModelCheckpoint(folder), EarlyStopping()]).fit((x, y), (x, y))
    latest = ck.find_latest_checkpoint(folder)
    return _Files({name: (latest / name).read_bytes()
                   for name in ("state.json", "state.safetensors", "manifest.json")})


@_FUZZ
@given(data=st.data())
def test_fuzzed_training_checkpoints_fail_with_checkpoint_error_only(tmp_path, saved_state,
                                                                     data):
    files = dict(saved_state)
    name = data.draw(st.sampled_from(sorted(files)))
    blob = files[name]
    how = data.draw(st.sampled_from(["random", "cut", "flip"]))
    if how == "random":
        blob = data.draw(st.binary(max_size=300))
    elif how == "cut":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        i = data.draw(st.integers(0, len(blob) - 1))
        blob = blob[:i] + bytes([blob[i] ^ data.draw(st.integers(1, 255))]) + blob[i + 1:]
    files[name] = blob
    if name != "manifest.json" and data.draw(st.booleans()):
        manifest = json.loads(files["manifest.json"])
        manifest["files"][name] = {"bytes": len(blob), "sha256": ck._sha256(blob)}
        files["manifest.json"] = json.dumps(manifest).encode()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    for key, value in files.items():
        (folder / key).write_bytes(value)
    with contextlib.suppress(CheckpointError):
        ck.load_training_state(folder)
