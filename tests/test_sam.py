"""Trainer(sam=rho): sharpness-aware minimisation's step, its BatchNorm statistics, its checks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnet import Trainer, build_mlp


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1)


def test_sam_steps_with_the_gradient_at_the_perturbed_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    rho = 0.3

    # SAM by hand: g at w, e = rho * g / ||g||, step with the gradient at w + e.
    ref = copy.deepcopy(model)
    ref.zero_grad()
    F.cross_entropy(ref(x), y).backward()
    grads = [p.grad.clone() for p in ref.parameters()]
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    start = [p.detach().clone() for p in ref.parameters()]
    with torch.no_grad():
        for p, g in zip(ref.parameters(), grads, strict=True):
            p.add_(g, alpha=rho / norm.item())
    ref.zero_grad()
    F.cross_entropy(ref(x), y).backward()
    expected = [w - 0.1 * p.grad for w, p in zip(start, ref.parameters(), strict=True)]

    trainer = Trainer(model, optimizer=_sgd, sam=rho, epochs=1, batch_size=8, seed=0,
                      progress=False)
    history = trainer.fit((x, y))
    for got, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(got.detach(), want)
    # The reported loss is the first pass's, at the unperturbed weights.
    plain = copy.deepcopy(ref)
    with torch.no_grad():
        for p, w in zip(plain.parameters(), start, strict=True):
            p.copy_(w)
    assert history[0]["train_loss"] == pytest.approx(F.cross_entropy(plain(x), y).item(),
                                                     rel=1e-6)


def test_sam_zero_is_the_plain_step():
    torch.manual_seed(1)
    start = build_mlp([6, 8, 3], dropout=0.2, norm="batch")
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    runs = []
    for extra in ({}, {"sam": 0.0}):  # the Trainer without the option, then sam=0
        model = copy.deepcopy(start)
        Trainer(model, epochs=2, batch_size=8, seed=4, progress=False, **extra).fit((x, y))
        runs.append(model.state_dict())
    with_sam = copy.deepcopy(start)
    Trainer(with_sam, sam=0.05, epochs=2, batch_size=8, seed=4, progress=False).fit((x, y))
    for key, value in runs[0].items():
        assert torch.equal(value, runs[1][key]), key
    assert not torch.equal(with_sam.state_dict()["hidden1.weight"], runs[0]["hidden1.weight"])


def test_sam_updates_batchnorm_running_statistics_once_per_step():
    torch.manual_seed(2)
    start = build_mlp([6, 8, 3], norm="batch")
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    states = []
    for sam in (0.0, 0.5):
        model = copy.deepcopy(start)
        # lr 0: the weights stay put, so both first passes see the same network.
        Trainer(model, sam=sam, lr=0.0, epochs=3, batch_size=16, seed=0,
                progress=False).fit((x, y))
        states.append({k: v for k, v in model.state_dict().items() if "running" in k
                       or "num_batches" in k})
    assert states[0] and states[0].keys() == states[1].keys()
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value)
    assert all(m.track_running_stats for m in model.modules()
               if isinstance(m, nn.BatchNorm1d))


def test_sam_with_mixup_and_label_smoothing_lowers_the_loss(tiny_images):
    x, y = tiny_images
    xb, yb = x[:64], y[:64]
    model = build_mlp([784, 64, 10], norm="batch", input_norm=(0.5, 0.5))
    trainer = Trainer(model, sam=0.05, mixup=0.2, label_smoothing=0.1, optimizer="adamw",
                      lr=3e-3, epochs=40, batch_size=32, seed=0, progress=False)
    before = trainer.evaluate((xb, yb))["loss"]
    trainer.fit((xb, yb))
    assert trainer.evaluate((xb, yb))["loss"] < 0.5 * before


def test_sam_restores_the_weights_when_the_second_pass_fails():
    torch.manual_seed(3)
    calls = []

    class FailsSecond(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("second pass")
            return self.linear(x)

    model = FailsSecond()
    before = copy.deepcopy(model.state_dict())
    trainer = Trainer(model, sam=1.0, epochs=1, batch_size=4, seed=0, progress=False)
    with pytest.raises(RuntimeError, match="second pass"):
        trainer.fit((torch.randn(4, 4), torch.tensor([0, 1, 2, 0])))
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.05", True])
def test_sam_rejects_bad_radii(bad):
    with pytest.raises((TypeError, ValueError), match="sam"):
        Trainer(build_mlp([4, 3]), sam=bad, progress=False)
