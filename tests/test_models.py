"""build_mlp and MLPSpec: shapes, layer names, validation, rebuilding from the spec."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fcnet import MLPSpec, build_mlp
from fcnet.models import ACTIVATIONS, GEGLU


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=2, max_size=5),
    batch=st.integers(1, 9),
    dropout=st.floats(0.0, 0.9),
    norm=st.sampled_from([None, "batch", "layer"]),
    output=st.sampled_from(["logits", "log_softmax"]),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
)
def test_output_shape_for_any_sizes(sizes, batch, dropout, norm, output, activation):
    if len(sizes) == 2:
        dropout = 0.0  # no hidden layer: a dropout would apply to nothing (and is refused)
    model = build_mlp(sizes, dropout, norm=norm, output=output, activation=activation)
    model.eval()  # batch norm in train mode refuses a batch of one
    out = model(torch.randn(batch, sizes[0]))
    assert out.shape == (batch, sizes[-1])
    if output == "log_softmax":
        torch.testing.assert_close(out.exp().sum(1), torch.ones(batch))


@settings(max_examples=25, deadline=None)
@given(
    shape=st.sampled_from([(784,), (1, 28, 28), (28, 28), (4, 14, 14)]),
    batch=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.uint8]),
)
def test_flattens_any_input_shape_with_784_features(shape, batch, dtype):
    model = build_mlp([784, 16, 10])
    x = (torch.rand(batch, *shape) * 255).to(dtype)
    assert model(x).shape == (batch, 10)


def test_layer_names_are_unique_and_meaningful():
    model = build_mlp([784, 128, 64, 10], dropout=0.25)
    names = [name for name, _ in model.named_children()]
    assert names == ["input", "hidden1", "act1", "drop1", "hidden2", "act2", "drop2", "output"]
    # The notebook's bug: a repeated key kept one dropout layer. Here each hidden layer has its own.
    assert sum(isinstance(m, nn.Dropout) for m in model) == 2


def test_per_layer_dropout_norm_and_log_softmax():
    model = build_mlp([784, 392, 196, 98, 49, 10], dropout=[0.25, 0.25, 0.25, 0.0],
                      norm="batch", activation="gelu", output="log_softmax")
    names = [name for name, _ in model.named_children()]
    assert names.count("drop4") == 0 and names[-1] == "log_softmax"
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.25, 0.25, 0.25]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model) == 4
    assert all(isinstance(getattr(model, f"act{i}"), nn.GELU) for i in range(1, 5))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_builds(name):
    model = build_mlp([5, 7, 3], activation=name)
    assert isinstance(model.act1, ACTIVATIONS[name])


def test_geglu_gates_half_of_a_doubled_layer():
    x = torch.randn(4, 6)
    torch.testing.assert_close(GEGLU()(x), x[:, :3] * torch.nn.functional.gelu(x[:, 3:]))
    model = build_mlp([5, 7, 4, 3], activation="geglu", norm="batch")
    # Each hidden Linear (and its BatchNorm) is twice as wide; the unit halves it again.
    assert (model.hidden1.out_features, model.norm1.num_features) == (14, 14)
    assert (model.hidden2.in_features, model.hidden2.out_features) == (7, 8)
    assert model.output.in_features == 4
    assert model.num_parameters == (5 * 14 + 14) + 28 + (7 * 8 + 8) + 16 + (4 * 3 + 3)
    rebuilt = model.spec.build()
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    x = torch.randn(2, 5)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_uint8_input_is_scaled_and_normalised():
    model = build_mlp([4, 2], input_norm=(0.5, 0.5))
    raw = torch.tensor([[0, 255, 51, 204]], dtype=torch.uint8)
    torch.testing.assert_close(model.input(raw), torch.tensor([[-1.0, 1.0, -0.6, 0.6]]))
    # Float input is taken as already scaled to [0, 1].
    torch.testing.assert_close(model.input(raw.float() / 255), model.input(raw))


def test_spec_rebuilds_same_architecture_and_round_trips_json():
    model = build_mlp([20, 8, 8, 3], dropout=[0.1, 0.2], norm="layer", activation="silu",
                      input_norm=(0.5, 0.25))
    data = json.loads(json.dumps(model.spec.to_dict()))
    spec = MLPSpec.from_dict(data)
    assert spec == model.spec
    clone = spec.build()
    clone.load_state_dict(model.state_dict())
    x = torch.randn(5, 20)
    model.eval()
    clone.eval()
    torch.testing.assert_close(clone(x), model(x))


def test_wrong_feature_count_names_both_shapes():
    model = build_mlp([784, 10])
    with pytest.raises(ValueError, match=r"expects 784 input features per sample, got 100"):
        model(torch.zeros(2, 10, 10))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": [784]}, ValueError, r"at least 2 layer widths.*\[784\]"),
        ({"sizes": []}, ValueError, r"at least 2"),
        ({"sizes": "784,10"}, TypeError, r"sizes must be a sequence"),
        ({"sizes": 784}, TypeError, r"sizes must be a sequence.*int 784"),
        ({"sizes": [784, 12.5, 10]}, TypeError, r"sizes must hold integers, got 12.5"),
        ({"sizes": [784, True, 10]}, TypeError, r"sizes must hold integers, got True"),
        ({"sizes": [784, 0, 10]}, ValueError, r"positive integers, got 0 at position 1"),
        ({"sizes": [784, -5, 10]}, ValueError, r"positive integers, got -5"),
        ({"sizes": [784, 64, 10], "dropout": 1.5}, ValueError,
         r"dropout must be in \[0, 1\), got 1.5"),
        ({"sizes": [784, 64, 10], "dropout": 1.0}, ValueError,
         r"dropout must be in \[0, 1\), got 1.0"),
        ({"sizes": [784, 64, 10], "dropout": -0.1}, ValueError, r"got -0.1"),
        ({"sizes": [784, 64, 10], "dropout": float("nan")}, ValueError, r"dropout must be in"),
        ({"sizes": [784, 64, 10], "dropout": "0.2"}, TypeError, r"dropout must be a float"),
        ({"sizes": [784, 64, 32, 10], "dropout": [0.1]}, ValueError,
         r"one value per hidden layer \(2\), got 1 values \[0.1\]"),
        ({"sizes": [784, 64, 10], "dropout": [None]}, TypeError, r"dropout values must be floats"),
        ({"sizes": [784, 10], "activation": "sigmoidish"}, ValueError,
         r"activation must be one of 'relu'.*got 'sigmoidish'"),
        ({"sizes": [784, 10], "norm": "group"}, ValueError, r"norm must be one of None.*'group'"),
        ({"sizes": [784, 10], "output": "softmax"}, ValueError,
         r"output must be one of.*'softmax'"),
        ({"sizes": [784, 10], "input_norm": (0.5, 0.0)}, ValueError, r"std must be finite and > 0"),
        ({"sizes": [784, 10], "input_norm": 0.5}, TypeError, r"input_norm must be None or a pair"),
        ({"sizes": [784, 10], "input_dropout": 1.0}, ValueError,
         r"input_dropout must be in \[0, 1\), got 1.0"),
        ({"sizes": [784, 10], "input_dropout": "0.1"}, TypeError,
         r"input_dropout must be a float, got str"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_mlp(**kwargs)


def test_spec_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown fields \['kernel'\]"):
        MLPSpec.from_dict({"sizes": [4, 2], "dropout": [], "kernel": 3})
    with pytest.raises(ValueError, match=r"missing the fields \['dropout'\]"):
        MLPSpec.from_dict({"sizes": [4, 2]})


def test_input_dropout_comes_right_after_the_input_layer():
    model = build_mlp([16, 8, 3], dropout=0.0, input_dropout=0.5)
    assert [name for name, _ in model.named_children()] == ["input", "drop0", "hidden1",
                                                             "act1", "output"]
    assert model.drop0.p == 0.5 and model.spec.input_dropout == 0.5
    assert MLPSpec.from_dict(model.spec.to_dict()) == model.spec
    # Specs saved before the field existed still load, with no input dropout.
    old = {k: v for k, v in model.spec.to_dict().items() if k != "input_dropout"}
    assert MLPSpec.from_dict(old).input_dropout == 0.0
    x = torch.ones(1000, 16)
    model.train()
    assert (model.drop0(model.input(x)) == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    model.eval()
    assert torch.equal(model.drop0(x), x)


def test_export_goes_through_torch_export():
    # TorchScript cannot compile the input layer's checks; torch.export can.
    model = build_mlp([784, 32, 10], dropout=0.2, norm="batch", seed=0).eval()
    x = torch.randint(0, 256, (4, 784), dtype=torch.uint8).float()
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), model(x))
