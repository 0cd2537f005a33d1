"""FastDropout: the same dropout as nn.Dropout with other (faster) random masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnet import FastDropout, MLPSpec, build_mlp


def _train(p: float, **kwargs) -> FastDropout:
    layer = FastDropout(p, **kwargs)
    layer.train()
    return layer


def test_keeps_the_right_share_and_scales_by_the_rounded_keep_probability():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    out = _train(0.3)(x)
    threshold = round(0.7 * 65536)
    kept = out != 0
    # 1e6 Bernoulli(0.7) draws: standard error 0.00046, so 0.003 is > 6 of them.
    assert abs(kept.float().mean().item() - 0.7) < 0.003
    assert torch.equal(out[kept].unique(), torch.tensor([65536 / threshold]))
    assert abs(out.mean().item() - 1.0) < 0.005  # the expected output equals the input


def test_zeroes_and_scales_like_its_mask_in_the_backward_pass():
    torch.manual_seed(1)
    x = torch.randn(64, 300, requires_grad=True)
    out = _train(0.5)(x)
    out.sum().backward()
    mask = torch.where(out != 0, torch.tensor(2.0), torch.tensor(0.0))
    torch.testing.assert_close(out, x.detach() * mask)
    torch.testing.assert_close(x.grad, mask)


def test_masks_follow_torch_manual_seed_and_change_between_calls():
    layer = _train(0.25)
    x = torch.ones(8, 512)
    torch.manual_seed(3)
    first, second = layer(x), layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)
    assert not torch.equal(first, second)
    torch.manual_seed(4)
    assert not torch.equal(layer(x), first)


def test_inplace_gives_the_same_result_in_the_input_tensor():
    x = torch.randn(32, 100)
    torch.manual_seed(5)
    expected = _train(0.4)(x)
    torch.manual_seed(5)
    y = x.clone()
    out = _train(0.4, inplace=True)(y)
    assert out.data_ptr() == y.data_ptr()
    assert torch.equal(out, expected)


def test_evaluation_mode_and_zero_probability_return_the_input():
    x = torch.randn(16, 10)
    layer = FastDropout(0.5).eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(_train(0.0)(x), x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_float_dtypes_keep_their_dtype(dtype):
    torch.manual_seed(0)
    out = _train(0.5)(torch.ones(4, 1000, dtype=dtype))
    assert out.dtype == dtype
    assert set(out.unique().tolist()) == {0.0, 2.0}


def test_a_keep_probability_that_rounds_to_zero_drops_everything():
    out = _train(1.0 - 1e-6)(torch.ones(3, 5))
    assert torch.equal(out, torch.zeros(3, 5))


def test_build_mlp_uses_it_for_every_dropout_layer_and_saves_the_choice():
    model = build_mlp([20, 16, 8, 3], dropout=0.2, input_dropout=0.1, fast_dropout=True)
    drops = [m for m in model if isinstance(m, nn.Dropout)]
    assert [type(m) for m in drops] == [FastDropout] * 3
    assert [m.p for m in drops] == [0.1, 0.2, 0.2]
    assert MLPSpec.from_dict(model.spec.to_dict()) == model.spec
    plain = build_mlp([20, 16, 8, 3], dropout=0.2)
    assert all(type(m) is nn.Dropout for m in plain if isinstance(m, nn.Dropout))
    old = {k: v for k, v in plain.spec.to_dict().items() if k != "fast_dropout"}
    assert MLPSpec.from_dict(old).fast_dropout is False


def test_spec_rejects_a_non_bool_choice():
    with pytest.raises(TypeError, match="fast_dropout must be True or False, got 1"):
        MLPSpec(sizes=(4, 2), dropout=(), fast_dropout=1)


def test_a_network_with_it_learns_a_batch():
    torch.manual_seed(0)
    model = build_mlp([20, 64, 3], dropout=0.3, fast_dropout=True)
    x, y = torch.randn(128, 20), torch.randint(0, 3, (128,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
