"""Model files and training checkpoints: formats, safety, ModelCheckpoint's behaviour."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fcnet
import fcnet.checkpoint as ck
from fcnet import (
    Callback,
    CheckpointError,
    EarlyStopping,
    ModelCheckpoint,
    Trainer,
    build_mlp,
    load_model,
    save_model,
)
from fcnet.checkpoint import (
    find_latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _round_trip(state, folder):
    """``state`` saved with save_checkpoint and read back with load_checkpoint."""
    saved = save_checkpoint(folder, state, position=(0, 0))
    back = load_checkpoint(saved)
    assert back.pop("path") == str(saved)
    return back


def _data(n=64, features=8, classes=3):
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % classes
    x = torch.randn(classes, features, generator=g)[y] * 3 + torch.randn(n, features, generator=g)
    return x, y


def _trainer(model, **kw):
    return Trainer(model, **{"epochs": 1, "batch_size": 32, "device": "cpu", "progress": False,
                             **kw})


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
    assert meta["format"] == "fcnet.model" and meta["format_version"] == 2
    assert meta["spec"] == model.spec.to_dict() and meta["fcnet_version"] == fcnet.__version__
    loaded = load_model(tmp_path / "m")
    assert type(loaded).__name__ == "MLP" and loaded.spec == model.spec and not loaded.training
    _same(dict(loaded.state_dict()), dict(model.state_dict()))
    x = torch.randint(0, 255, (5, 8), dtype=torch.uint8)
    assert torch.equal(loaded(x), model.eval()(x))
    # Either file of the pair names the model too.
    _same(dict(load_model(tmp_path / "m" / "model.safetensors").state_dict()),
          dict(model.state_dict()))


def test_load_model_takes_a_run_folder(tmp_path):
    model = build_mlp([8, 4, 3], seed=0)
    save_model(model, tmp_path / "run" / "model")
    (tmp_path / "run" / "metrics.json").write_text("{}")
    _same(dict(load_model(tmp_path / "run").state_dict()), dict(model.state_dict()))


def test_the_trained_input_record_is_saved_and_pixels_read_alike_in_any_int_dtype(
        tmp_path, tiny_images):
    x, y = tiny_images
    model = build_mlp([784, 32, 10], seed=0)
    assert model.spec.input_dtype is None and model.spec.input_range is None
    trainer = _trainer(model, epochs=2, seed=0)
    trainer.fit((x, y))
    assert model.spec.input_dtype == "uint8"
    assert model.spec.input_range == (0.0, 250 / 255)
    save_model(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["spec"]["input_dtype"] == "uint8"
    assert meta["spec"]["input_range"] == [0.0, 250 / 255]
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec
    expected = trainer.predict(x)
    assert (expected == y).float().mean() > 0.5  # it learnt something
    for dtype in (torch.uint8, torch.int64, torch.int32):
        with torch.no_grad():
            out = loaded(x.to(dtype))
        assert torch.equal(out, loaded(x)), dtype  # the same pixels, the same scores
        assert torch.equal(out.argmax(1), expected), dtype
        assert torch.equal(_trainer(loaded).predict(x.to(dtype)), expected), dtype
    too_bright = x[:1].to(torch.int64)
    too_bright[0, 0, 0] = 300
    with pytest.raises(ValueError, match=r"trained on uint8 pixels, so integer input is read "
                                         r"as pixels in \[0, 255\]; got .*int64 values in "
                                         r"\[0, 300\]"):
        loaded(too_bright)


def test_save_model_refuses_a_replaced_head_before_writing(tmp_path):
    model = build_mlp([8, 16, 3], seed=0)
    folder = save_model(model, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    model.output = torch.nn.Linear(16, 5)
    with pytest.raises(ValueError, match=r"model.spec no longer describes the model's layers "
                                         r"\(output.bias has shape \(5,\), the spec gives \(3,\); "
                                         r"output.weight has shape \(5, 16\), the spec gives "
                                         r"\(3, 16\)\).*Nothing was written"):
        save_model(model, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary leftovers
    _same(dict(load_model(folder).state_dict()), dict(build_mlp([8, 16, 3], seed=0).state_dict()))


def test_save_model_refuses_what_it_cannot_rebuild(tmp_path):
    plain = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with pytest.raises(TypeError, match=r"save_model needs a model built by fcnet.build_mlp "
                                        r"\(with an MLPSpec .spec to rebuild it\), got a "
                                        r"Sequential without one"):
        save_model(plain, tmp_path / "m")
    # Any module may carry a spec, but it must describe the module's tensors.
    plain.spec = build_mlp([4, 2]).spec
    with pytest.raises(ValueError, match=r"model.spec no longer describes the model's layers "
                                         r"\(missing tensors \['input.mean', "):
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


def _device_error(device) -> str:
    with pytest.raises(ValueError) as info:
        Trainer(build_mlp([8, 3]), device=device)
    return str(info.value)


def test_load_model_checks_the_device_like_the_trainer(tmp_path):
    folder = save_model(build_mlp([8, 3]), tmp_path / "m")
    message = _device_error("banana")
    assert message == "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'banana'"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_model(folder, device="banana")
    with pytest.raises(ValueError, match=re.escape(message)):  # checked before the path
        load_model(tmp_path / "nothing", device="banana")
    assert load_model(folder, device="cpu").output.weight.device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_model_on_cuda_without_cuda_says_so(tmp_path):
    folder = save_model(build_mlp([8, 3]), tmp_path / "m")
    message = _device_error("cuda")
    assert message == "device 'cuda' was requested but CUDA is not available here"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_model(folder, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_model_onto_cuda(tmp_path):
    model = build_mlp([8, 4, 3], seed=0)
    loaded = load_model(save_model(model, tmp_path / "m"), device="cuda")
    assert all(t.device.type == "cuda" for t in loaded.state_dict().values())
    _same({k: v.cpu() for k, v in loaded.state_dict().items()}, dict(model.state_dict()))


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
    with pytest.raises(CheckpointError, match=r"format version 3, written by a newer fcnet"):
        load_with(format_version=3)
    with pytest.raises(CheckpointError, match=r"is not an fcnet.model file"):
        load_with(format="something")
    # A model folder of fcnet 0.1 (format 1, a spec without the input record) loads.
    old_spec = {k: v for k, v in good["spec"].items() if k not in ("input_dtype", "input_range")}
    assert load_with(format_version=1, spec=old_spec).spec.input_dtype is None
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


def test_save_model_replaces_a_model_but_never_a_folder_of_other_files(tmp_path,
                                                                       monkeypatch):
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "proj" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"path '.*proj' holds files that are not a saved "
                                         r"model \(notes.txt, sub\); .*e.g. '.*proj/model'"):
        save_model(build_mlp([4, 2]), tmp_path / "proj")
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == ["notes.txt", "sub"]
    # The current folder (and those above it) would be renamed away from under the process.
    monkeypatch.chdir(tmp_path / "proj" / "sub")
    for here in (".", tmp_path / "proj" / "sub", ".."):
        with pytest.raises(ValueError, match=r"is the current folder or one above it"):
            save_model(build_mlp([4, 2]), here)
    assert list((tmp_path / "proj" / "sub").iterdir()) == []
    # An empty folder and a model's folder are written; the new model replaces the old.
    (tmp_path / "empty").mkdir()
    save_model(build_mlp([4, 2], seed=0), tmp_path / "empty")
    save_model(build_mlp([4, 2], seed=1), tmp_path / "empty")
    assert torch.equal(load_model(tmp_path / "empty")[1].weight,
                       build_mlp([4, 2], seed=1)[1].weight)


@pytest.mark.parametrize("failing", ["replace", "rename"])
def test_a_failed_save_keeps_the_existing_model(tmp_path, monkeypatch, failing):
    first = build_mlp([8, 3], seed=0)
    save_model(first, tmp_path / "m")
    real = getattr(os, failing)
    calls, failed = [], []

    def fail_once(src, dst):
        calls.append(dst)
        # replace: the second file of the new folder; rename: the new folder into place,
        # after the old one was moved aside.
        if not failed and ((failing == "replace" and len(calls) == 2)
                           or (failing == "rename" and Path(dst).name == "m")):
            failed.append(dst)
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(os, failing, fail_once)
    with pytest.raises(OSError, match="disk full"):
        save_model(build_mlp([8, 3], seed=1), tmp_path / "m")
    monkeypatch.setattr(os, failing, real)
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
    data["weights"].update(bytes=len(weights), sha256=_sha256(weights))
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
def test_optimizer_and_scheduler_states_round_trip_exactly(tmp_path, make_opt, make_sched):
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
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    back = _round_trip(state, tmp_path)
    _same(back, state)
    # ...and torch accepts them: a fresh pair continues exactly like the original.
    twin = build_mlp([8, 5, 3])
    twin.load_state_dict(model.state_dict())
    opt2 = make_opt(twin.parameters())
    sched2 = make_sched(opt2)
    opt2.load_state_dict(back["optimizer"])
    sched2.load_state_dict(back["scheduler"])
    for m, o in ((model, opt), (twin, opt2)):
        o.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        o.step()
    _same(dict(twin.state_dict()), dict(model.state_dict()))


def test_nested_odd_values_round_trip_with_their_types(tmp_path):
    odd = {
        "int keys": {1: "one", -2: [3]},
        "mixed keys": {(2, "t"): [1.5, float("inf"), float("-inf")], "__x": None, 3.5: True},
        "nan": float("nan"), "inf": float("inf"),
        "tuple": (1, (2.5, "x"), [None]),
        "arr": np.arange(6, dtype=np.uint32).reshape(2, 3),
        "arr2": np.array([[0.5, -1.0]], dtype=">f8"), "empty": np.zeros((0, 2), np.int16),
        "bools": np.array([True, False]),
        "t": torch.tensor([True, False]), "e": torch.zeros(0, 3), "bf": torch.ones(2, 2).bfloat16(),
        "view": torch.arange(10.0)[::3], "same": [torch.ones(2)] * 2,
        "list": [{"a": torch.tensor(1)}, {"a": torch.tensor(2)}],
        "big": 2**62, "neg": -1, "text": "é\n", "empty dict": {}, "empty list": [],
    }
    back = _round_trip(odd, tmp_path / "a")
    _same(back, odd)
    assert back["same"][0] is not back["same"][1]
    # numpy scalars come back as Python numbers, NaN and infinities included.
    scalars = {"f32": np.float32(0.5), "f64": np.float64(0.25), "i": np.int64(3),
               "b": np.bool_(True), "nan64": np.float64("nan"), "nan32": np.float32("nan"),
               "inf64": np.float64("-inf")}
    back = _round_trip(scalars, tmp_path / "b")
    assert back["f32"] == 0.5 and type(back["f32"]) is float
    assert back["f64"] == 0.25 and type(back["f64"]) is float
    assert back["i"] == 3 and type(back["i"]) is int and back["b"] is True
    assert type(back["nan64"]) is float and math.isnan(back["nan64"])
    assert type(back["nan32"]) is float and math.isnan(back["nan32"])
    assert back["inf64"] == -math.inf


def test_what_cannot_be_saved_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(TypeError, match=r"state.f: cannot save a function; checkpoints hold "
                                        r"tensors, numpy arrays and JSON values"):
        save_checkpoint(tmp_path, {"f": lambda: 0}, position=(0, 0))
    with pytest.raises(TypeError, match=r"state.a.0: cannot save a numpy array of dtype object"):
        save_checkpoint(tmp_path, {"a": [np.array([None])]}, position=(0, 0))
    with pytest.raises(TypeError, match=r"cannot save a dict keyed by Tensor"):
        save_checkpoint(tmp_path, {"d": {torch.ones(1): 1}}, position=(0, 0))
    with pytest.raises(TypeError, match=r"state must be a mapping \(a dict\), got list"):
        save_checkpoint(tmp_path, [1], position=(0, 0))
    with pytest.raises(TypeError, match=r"position must be a pair \(epochs done, batches "
                                        r"done\), got 3"):
        save_checkpoint(tmp_path, {}, position=3)
    with pytest.raises(ValueError, match=r"position must hold numbers >= 0, got \(0, -1\)"):
        save_checkpoint(tmp_path, {}, position=(0, -1))
    with pytest.raises(ValueError, match=r"keep_last must be >= 1, got 0"):
        save_checkpoint(tmp_path, {}, position=(0, 0), keep_last=0)
    with pytest.raises(TypeError, match=r"store must be a str or os.PathLike path, got int"):
        save_checkpoint(3, {}, position=(0, 0))
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_is_safetensors_and_json_and_its_state_json_is_documented(tmp_path):
    state = {"w": torch.arange(4.0), "step": 7, "nested": {"t": torch.ones(2, dtype=torch.int64)}}
    folder = save_checkpoint(tmp_path, state, position=(3, 120), run_id="abc")
    assert folder == tmp_path / "epoch0003-batch000120"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch0003-batch000120", "latest.json"]
    assert json.loads((tmp_path / "latest.json").read_text()) == {
        "checkpoint": "epoch0003-batch000120", "run_id": "abc"}
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "state.json",
                                                        "state.safetensors"]
    meta = json.loads((folder / "state.json").read_text())
    assert sorted(meta) == ["fcnet_version", "format", "format_version", "position", "run_id",
                            "state", "torch_version"]
    assert (meta["format"], meta["format_version"]) == ("fcnet.training_state", 2)
    assert meta["fcnet_version"] == fcnet.__version__ and meta["torch_version"] == torch.__version__
    assert meta["run_id"] == "abc" and meta["position"] == {"epoch": 3, "batch": 120}
    assert meta["state"] == {"w": {"__tensor__": "state.w"}, "step": 7,
                             "nested": {"t": {"__tensor__": "state.nested.t"}}}
    tensors = safetensors.torch.load((folder / "state.safetensors").read_bytes())
    assert sorted(tensors) == ["state.nested.t", "state.w"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == {
        name: {"bytes": (folder / name).stat().st_size,
               "sha256": _sha256((folder / name).read_bytes())}
        for name in ("state.safetensors", "state.json")}


def test_truncated_or_corrupted_files_are_named(tmp_path):
    folder = save_checkpoint(tmp_path, {"w": torch.ones(100), "n": 1}, position=(1, 0))
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    cases = [
        ("state.safetensors", lambda b: b[: len(b) // 2],
         r"state.safetensors is truncated or corrupted: \d+ bytes, the manifest says \d+"),
        ("state.safetensors", lambda b: b[:-8] + b"\xff" * 8,
         r"state.safetensors is corrupted: its sha256 does not match the manifest"),
        ("state.json", lambda b: b[:10],
         r"state.json is truncated or corrupted: 10 bytes"),
        ("state.json", lambda b: b.replace(b'"n": 1', b'"n": 2'),
         r"state.json is corrupted: its sha256 does not match the manifest"),
        ("manifest.json", lambda b: b[:20],
         r"manifest.json is not valid JSON \(corrupted or truncated\)"),
        ("manifest.json", lambda b: b"[]", r"manifest.json must hold a JSON object, got list"),
    ]
    for name, damage, message in cases:
        for other, blob in files.items():
            (folder / other).write_bytes(blob)
        (folder / name).write_bytes(damage(files[name]))
        with pytest.raises(CheckpointError, match=re.escape(str(folder)) + ".*" + message):
            load_checkpoint(folder)
    for other, blob in files.items():
        (folder / other).write_bytes(blob)
    assert load_checkpoint(folder)["n"] == 1
    (folder / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"state.json is missing from '.*batch000000'"):
        load_checkpoint(folder)


def _write_v1_checkpoint(folder: Path) -> None:
    """A training checkpoint as fcnet 0.1 wrote it (format version 1)."""
    folder.mkdir(parents=True)
    tensors = safetensors.torch.save({"model.output.weight": torch.zeros(3, 8)})
    state = json.dumps({"format": "fcnet.training_state", "format_version": 1,
                        "fcnet_version": "0.1.0", "run_id": "old",
                        "position": {"epoch": 1, "batch": 0, "global_step": 6}, "seed": 0,
                        "model": {"class": "MLP", "spec": None,
                                  "state": {"output.weight": {"__tensor__":
                                                              "model.output.weight"}}}}).encode()
    (folder / "state.safetensors").write_bytes(tensors)
    (folder / "state.json").write_bytes(state)
    (folder / "manifest.json").write_text(json.dumps({
        "format": "fcnet.training_state", "format_version": 1, "run_id": "old",
        "files": {"state.safetensors": {"bytes": len(tensors), "sha256": _sha256(tensors)},
                  "state.json": {"bytes": len(state), "sha256": _sha256(state)}}}))


def test_version_1_checkpoints_are_refused_with_a_clear_message(tmp_path):
    _write_v1_checkpoint(tmp_path / "store" / "epoch0001-batch000000")
    message = (r"format version 1, written by fcnet 0.1, whose training state this fcnet "
               r"\(" + re.escape(fcnet.__version__) + r"\) cannot resume; load its model "
               r"with fcnet 0.1, or train anew")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "store" / "epoch0001-batch000000")
    # Given the folder, the reason is in the error, not only in a warning.
    with pytest.warns(UserWarning, match="skipping a broken checkpoint"), \
            pytest.raises(CheckpointError, match=r"no usable checkpoint in '.*store': the newest "
                                                 r"one cannot be read: .*" + message):
        Trainer(build_mlp([8, 3]), epochs=1, device="cpu", progress=False).fit(
            _data(), resume_from=tmp_path / "store")
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "store" / "epoch0001-batch000000")


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


class _Steps(Callback):
    """Counts the training steps taken."""

    def __init__(self):
        self.steps = 0

    def on_batch_begin(self, trainer, batch):
        self.steps += 1


def _fails_before_any_step(callback, error=ValueError, match=None, val=True):
    x, y = _data()
    steps = _Steps()
    model = build_mlp([8, 3], seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _trainer(model, callbacks=[steps, callback])
    with pytest.raises(error, match=match):
        trainer.fit((x, y), (x, y) if val else None)
    assert steps.steps == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_model_checkpoint_checks_its_folder_and_monitor_before_any_step(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"dirpath must be a folder, but '.*file' is a file"):
        ModelCheckpoint(tmp_path / "file")
    later = ModelCheckpoint(tmp_path / "later")
    (tmp_path / "later").write_text("now a file")
    _fails_before_any_step(later, match=r"dirpath must be a folder, but '.*later' is a file")
    _fails_before_any_step(ModelCheckpoint(tmp_path / "c"), val=False,
                           match=r"ModelCheckpoint monitors 'val_loss' for save_best but "
                                 r"fit\(\) got no validation data")
    _fails_before_any_step(ModelCheckpoint(tmp_path / "c", monitor="train_acc"),
                           match=r"ModelCheckpoint\(monitor='train_acc'\): this fit's epochs "
                                 r"will have the keys \['epoch', .*did you mean "
                                 r"'train_accuracy'\?")
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())


def test_model_checkpoint_into_a_folder_it_cannot_write_fails_before_any_step(tmp_path):
    # Under a regular file no one can create a folder, root included (root ignores
    # permission bits, so a read-only folder would not do).
    (tmp_path / "afile").write_text("x")
    dirpath = tmp_path / "afile" / "ckpt"
    _fails_before_any_step(ModelCheckpoint(dirpath),
                           match=r"ModelCheckpoint: cannot write into dirpath "
                                 + re.escape(f"'{dirpath}'") + r" \(Not a directory\); choose "
                                 r"a folder you can write to")


def test_model_checkpoint_into_a_read_only_folder_fails_before_any_step(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        try:
            (folder / "probe").write_text("x")
        except PermissionError:
            pass
        else:
            pytest.skip("this user writes into read-only folders (root)")
        _fails_before_any_step(ModelCheckpoint(folder),
                               match=r"ModelCheckpoint: cannot write into dirpath "
                                     + re.escape(f"'{folder}'") + r" \(Permission denied\)")
    finally:
        folder.chmod(0o700)


def test_early_stopping_on_a_misspelt_metric_fails_before_any_step():
    _fails_before_any_step(EarlyStopping(monitor="val_acc"),
                           match=r"EarlyStopping\(monitor='val_acc'\): this fit's epochs will "
                                 r"have the keys .*; did you mean 'val_accuracy'\?")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_layout_pruning_latest_and_best(tmp_path):
    x, y = _data()
    xv, yv = x[:16], y[:16]

    class ValLoss(EarlyStopping):  # a scripted val_loss: best at epoch 2
        def on_epoch_end(self, trainer, epoch, logs):
            logs["val_loss"] = [0.9, 0.5, 0.7, 0.6][epoch - 1]

    ckpt = ModelCheckpoint(tmp_path, keep_last=2)
    trainer = _trainer(build_mlp([8, 3], seed=0), epochs=4, batch_size=16,
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
    assert meta["position"] == {"epoch": 4, "batch": 0}
    state = meta["state"]  # the Trainer's state_dict
    assert state["format"] == "fcnet.trainer"
    assert state["model_spec"] == trainer.model.spec.to_dict()
    train = state["data"]["train"]
    assert (train["inputs"], train["dtype"], train["labels"], train["provenance"]) == (
        [64, 8], "float32", [64], None)
    assert state["config"] == trainer.config.to_dict()
    assert state["history"]["epochs"][-1]["epoch"] == 4
    assert [c["class"] for c in state["callbacks"]] == ["ModelCheckpoint", "ValLoss"]
    best = load_model(tmp_path / "best")
    _same(dict(best.state_dict()), load_checkpoint(tmp_path / "best")["model"])

    # A second, fresh run in the same folder: its checkpoints become the latest, and the
    # first run's are neither pruned nor replaced by it (its epoch 3 takes another name).
    second = ModelCheckpoint(tmp_path, keep_last=1, save_best=False)
    _trainer(build_mlp([8, 3]), epochs=3, batch_size=16, callbacks=[second]).fit((x, y))
    mine = f"epoch0003-batch000000-{second.run_id}"
    assert find_latest_checkpoint(tmp_path).name == mine
    assert _names(tmp_path) == ["best", "epoch0003-batch000000", mine,
                                "epoch0004-batch000000", "latest.json"]
    assert load_checkpoint(tmp_path / "epoch0003-batch000000")["history"]["epochs"][-1][
        "epoch"] == 3 and len(load_checkpoint(tmp_path / "epoch0004-batch000000")[
            "history"]["epochs"]) == 4
    assert load_checkpoint(tmp_path)["history"]["epochs"][-1]["epoch"] == 3  # the new run's


def test_pruning_keeps_keep_last_of_the_same_run_only(tmp_path):
    for position in [(0, 1), (0, 2), (0, 3)]:
        save_checkpoint(tmp_path, {"run": "a"}, position=position, run_id="a", keep_last=2)
    save_checkpoint(tmp_path, {"run": "b"}, position=(0, 5), run_id="b", keep_last=1)
    assert _names(tmp_path) == ["epoch0000-batch000002", "epoch0000-batch000003",
                                "epoch0000-batch000005", "latest.json"]
    for position in [(1, 0), (1, 1)]:
        save_checkpoint(tmp_path, {"run": "b"}, position=position, run_id="b", keep_last=1)
    assert _names(tmp_path) == ["epoch0000-batch000002", "epoch0000-batch000003",
                                "epoch0001-batch000001", "latest.json"]
    # Resumed from an earlier point, the run's checkpoints beyond it are gone.
    save_checkpoint(tmp_path, {"run": "a"}, position=(0, 2), run_id="a", keep_last=2)
    assert _names(tmp_path) == ["epoch0000-batch000002", "epoch0001-batch000001", "latest.json"]
    assert load_checkpoint(tmp_path)["run"] == "a"


def test_latest_json_names_the_checkpoint_else_the_furthest_complete_one(tmp_path):
    for position in [(0, 4), (1, 0), (0, 9)]:  # saved last: not the furthest
        save_checkpoint(tmp_path, {"at": list(position)}, position=position, keep_last=5)
    assert load_checkpoint(tmp_path)["at"] == [0, 9]
    (tmp_path / "latest.json").write_text("{not json")
    assert load_checkpoint(tmp_path)["at"] == [1, 0]
    (tmp_path / "latest.json").unlink()
    assert find_latest_checkpoint(tmp_path).name == "epoch0001-batch000000"
    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": "../elsewhere"}))
    assert load_checkpoint(tmp_path)["at"] == [1, 0]
    # latest.json names a broken checkpoint: the furthest intact one, with a warning.
    (tmp_path / "latest.json").write_text(json.dumps({"checkpoint": "epoch0000-batch000009"}))
    (tmp_path / "epoch0000-batch000009" / "state.safetensors").write_bytes(b"")
    (tmp_path / "epoch0001-batch000000" / "manifest.json").unlink()  # incomplete
    with pytest.warns(UserWarning) as record:
        assert load_checkpoint(tmp_path)["at"] == [0, 4]
    messages = [str(w.message) for w in record]
    assert len(messages) == 2, messages
    assert re.fullmatch(r"skipping a broken checkpoint: .*/epoch0000-batch000009/"
                        r"state.safetensors is truncated or corrupted: 0 bytes, the manifest "
                        r"says \d+", messages[0])
    assert re.fullmatch(r"skipping a broken checkpoint: checkpoint '.*/epoch0001-batch000000' "
                        r"is incomplete: manifest.json is missing \(its save did not finish\)",
                        messages[1])
    assert find_latest_checkpoint(tmp_path / "nothing") is None


def test_every_n_epochs_and_the_final_checkpoint(tmp_path):
    x, y = _data()
    trainer = _trainer(build_mlp([8, 3]), epochs=5,
                       callbacks=[ModelCheckpoint(tmp_path, every_n_epochs=2, keep_last=5,
                                                  save_best=False)])
    trainer.fit((x, y))
    # Epochs 2 and 4, and the end of training (epoch 5) although 5 is not a multiple of 2.
    assert [p.name for p in sorted(tmp_path.glob("epoch*"))] == [
        "epoch0002-batch000000", "epoch0004-batch000000", "epoch0005-batch000000"]


def _assert_safetensors_or_json(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        blob = path.read_bytes()
        assert not blob.startswith((b"\x80", b"PK")), f"{path} looks like a pickle"
        if path.suffix == ".json":
            json.loads(blob)
        else:
            assert path.suffix == ".safetensors", path
            with safetensors.safe_open(str(path), framework="pt") as f:
                assert list(f.keys())


def test_no_pickle_is_used_to_save_or_load(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "dump"),
                         (pickle, "dumps"), (pickle, "Unpickler"), (pickle, "Pickler"),
                         (torch, "load"), (torch, "save")):
        monkeypatch.setattr(module, name, forbidden)
    x, y = _data()
    model = build_mlp([8, 4, 3])
    trainer = _trainer(model, epochs=2,
                       callbacks=[ModelCheckpoint(tmp_path / "c"), EarlyStopping()])
    trainer.fit((x, y), (x, y))
    save_model(model, tmp_path / "m")
    load_model(tmp_path / "m")
    load_model(tmp_path / "c")
    _trainer(build_mlp([8, 4, 3]), epochs=2,
             callbacks=[ModelCheckpoint(tmp_path / "c"), EarlyStopping()]).fit(
        (x, y), (x, y), resume_from=tmp_path / "c")
    _assert_safetensors_or_json(tmp_path / "c")
    _assert_safetensors_or_json(tmp_path / "m")
    source = Path(ck.__file__).read_text()
    assert not re.search(r"(?<!safetensors\.)torch\.(load|save)\b", source)
    assert not re.search(r"\b(import|from) (pickle|marshal|dill)\b|\bpickle\.[a-z]", source)


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory):
    folder = tmp_path_factory.mktemp("c")
    x, y = _data()
    _trainer(build_mlp([8, 4, 3]), callbacks=[ModelCheckpoint(folder), EarlyStopping()]).fit(
        (x, y), (x, y))
    latest = find_latest_checkpoint(folder)
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
        manifest["files"][name] = {"bytes": len(blob), "sha256": _sha256(blob)}
        files["manifest.json"] = json.dumps(manifest).encode()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    for key, value in files.items():
        (folder / key).write_bytes(value)
    with contextlib.suppress(CheckpointError):
        load_checkpoint(folder)


def test_a_state_json_whose_state_is_no_dict_is_refused(tmp_path):
    folder = save_checkpoint(tmp_path, {"t": torch.ones(1)}, position=(0, 1))
    meta = json.loads((folder / "state.json").read_text())
    meta["state"] = {"__tensor__": "state.t"}  # a valid entry, but not a dict of entries
    blob = json.dumps(meta).encode()
    (folder / "state.json").write_bytes(blob)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["state.json"] = {"bytes": len(blob), "sha256": _sha256(blob)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"invalid state.json: its 'state' is a Tensor, "
                                              r"not a dict"):
        load_checkpoint(folder)


_keys = st.one_of(st.text(max_size=4), st.integers(-3, 3), st.booleans(), st.none(),
                  st.tuples(st.integers(0, 2), st.text(max_size=2)))
_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=4),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([torch.float32, torch.int64, torch.bool, torch.bfloat16]).flatmap(
        lambda dtype: st.integers(0, 3).map(lambda n: torch.arange(n).to(dtype))),
    st.sampled_from(["<f4", ">i2", "u1", "?"]).flatmap(
        lambda dtype: st.integers(0, 3).map(lambda n: np.arange(n).astype(dtype))),
)
_states = st.dictionaries(st.text(max_size=4).filter(lambda k: k != "path"), st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12), max_size=4)


@_FUZZ
@given(state=_states)
def test_any_nested_state_round_trips(tmp_path, state):
    files = ck.encode_checkpoint(state, run_id="r", position=(0, 0))
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    back = load_checkpoint(folder)
    del back["path"]
    _same(back, state)
