"""The direct fused optimizer step equals torch's own step, bit for bit, or is not taken."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnet import Trainer, _fused, build_mlp


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 3))


def _groups(model: nn.Module) -> list[dict]:
    params = list(model.parameters())
    return [{"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def _train(step, make_opt, steps: int = 12, scheduler: bool = False):
    """Train a small model for ``steps`` with ``step(opt)``; return params and state."""
    model = _model()
    opt = make_opt(model)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps) \
        if scheduler else None
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 12, generator=gen)
        y = torch.randint(0, 3, (8,), generator=gen)
        _fused.clear_grads(opt)
        nn.functional.cross_entropy(model(x), y).backward()
        step(opt)
        if sched is not None:
            sched.step()
    params = [p.detach().clone() for p in model.parameters()]
    state = [{k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()]
    return params, state


OPTIMIZERS = {
    "adam": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, fused=True),
    "adam-l2": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, weight_decay=0.1,
                                          fused=True),
    "adamw-groups": lambda m: torch.optim.AdamW(_groups(m), lr=0.01, weight_decay=0.05,
                                                betas=(0.8, 0.99), fused=True),
}


@pytest.mark.parametrize("scheduler", [False, True])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_direct_step_equals_torchs_step_bit_for_bit(name, scheduler, monkeypatch):
    calls = []

    def counting(kernel):
        def call(*args, **kwargs):
            calls.append(1)
            return kernel(*args, **kwargs)
        return call

    monkeypatch.setattr(_fused, "_KERNELS", {k: counting(f) for k, f in _fused._KERNELS.items()})
    ours = _train(_fused.optimizer_step, OPTIMIZERS[name], scheduler=scheduler)
    torchs = _train(lambda opt: opt.step(), OPTIMIZERS[name], scheduler=scheduler)
    # Every step but the first (which creates the state) took the direct path.
    groups = 2 if name == "adamw-groups" else 1
    assert len(calls) == 11 * groups
    for a, b in zip(ours[0], torchs[0], strict=True):
        assert torch.equal(a, b)
    for sa, sb in zip(ours[1], torchs[1], strict=True):
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key


def _spy(monkeypatch) -> list[int]:
    calls: list[int] = []

    def fail(*args, **kwargs):
        calls.append(1)
        raise AssertionError("the direct kernel must not be called here")

    monkeypatch.setattr(_fused, "_KERNELS", {False: fail, True: fail})
    return calls


@pytest.mark.parametrize("make_opt", [
    lambda m: torch.optim.Adam(m.parameters(), lr=0.01, fused=True, amsgrad=True),
    lambda m: torch.optim.Adam(m.parameters(), lr=0.01, fused=True, maximize=True),
    lambda m: torch.optim.Adam(m.parameters(), lr=0.01),  # not fused
    lambda m: torch.optim.Adam(m.parameters(), lr=torch.tensor(0.01), fused=True),
    lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9),
], ids=["amsgrad", "maximize", "unfused", "tensor-lr", "sgd"])
def test_other_optimizers_take_torchs_step(make_opt, monkeypatch):
    calls = _spy(monkeypatch)
    model = _model()
    opt = make_opt(model)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        _fused.clear_grads(opt)
        model(torch.randn(8, 12)).sum().backward()
        _fused.optimizer_step(opt)
    assert calls == []
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_hooks_and_subclasses_take_torchs_step(monkeypatch):
    calls = _spy(monkeypatch)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(1))
    for _ in range(3):
        model(torch.randn(8, 12)).sum().backward()
        _fused.optimizer_step(opt)
    assert seen == [1, 1, 1] and calls == []

    class MyAdam(torch.optim.Adam):
        pass

    opt = MyAdam(model.parameters(), lr=0.01, fused=True)
    for _ in range(2):
        model(torch.randn(8, 12)).sum().backward()
        _fused.optimizer_step(opt)
    assert calls == []


def test_clear_grads_sets_none_and_respects_an_overridden_zero_grad():
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 12)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    _fused.clear_grads(opt)
    assert all(p.grad is None for p in model.parameters())

    class Zeroing(torch.optim.SGD):
        def zero_grad(self, set_to_none: bool = True) -> None:
            self.called = set_to_none

    opt = Zeroing(model.parameters(), lr=0.1)
    _fused.clear_grads(opt)
    assert opt.called is True


@pytest.mark.parametrize("optimizer,weight_decay", [("adam", 0.0), ("adamw", 0.05)])
def test_trainer_results_equal_with_torchs_step(optimizer, weight_decay, monkeypatch):
    """A whole fit gives the same history with the direct step as with torch's step."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (200, 784), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (200,), generator=gen)

    def fit():
        torch.manual_seed(0)
        model = build_mlp([784, 32, 16, 10], dropout=0.2, norm="batch")
        trainer = Trainer(model, optimizer=optimizer, lr=3e-3, weight_decay=weight_decay,
                          epochs=3, batch_size=32, seed=0, device="cpu", progress=False,
                          scheduler="onecycle")
        history = trainer.fit((x[:160], y[:160]), (x[160:], y[160:]))
        return [(e["train_loss"], e["val_loss"], e["val_accuracy"]) for e in history], \
            [p.detach().clone() for p in model.parameters()]

    direct = fit()
    monkeypatch.setattr(_fused, "_calls", lambda opt: None)  # torch's own step every time
    plain = fit()
    assert direct[0] == plain[0]
    for a, b in zip(direct[1], plain[1], strict=True):
        assert torch.equal(a, b)
