"""fcnet's own training step (fcnet._mlp_step): when it is taken, that it computes autograd's
gradients, that its dropout is dropout, and that the model and optimizer look as usual."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from fcnet import Trainer, _mlp_step, build_mlp
from fcnet.callbacks import Callback, GradientClipping

CPU = torch.device("cpu")


def _data(n=256, features=784, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, features), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def _trainer(model, **kwargs):
    kwargs.setdefault("epochs", 1)
    kwargs.setdefault("batch_size", 64)
    kwargs.setdefault("seed", 0)
    return Trainer(model, progress=False, **kwargs)


def _plan_of(model, **kwargs):
    trainer = _trainer(model, **kwargs)
    trainer.fit(_data(64, model.spec.in_features))
    return _mlp_step.plan(model, trainer.optimizer, loss=trainer.config.loss,
                          label_smoothing=trainer.config.label_smoothing, device=CPU), trainer


@pytest.mark.parametrize("build, kwargs", [
    (dict(sizes=[784, 32, 16, 10], dropout=0.25), {}),
    (dict(sizes=[784, 32, 10], dropout=0.1, output="log_softmax"), {"loss": "nll"}),
    (dict(sizes=[784, 32, 10], dropout=0.0, input_dropout=0.2), {"weight_decay": 1e-3}),
    (dict(sizes=[784, 10]), {"optimizer": "adamw", "label_smoothing": 0.1}),
])
def test_covered_models_take_the_fused_step(build, kwargs):
    model = build_mlp(seed=0, **build)
    plan, trainer = _plan_of(model, **kwargs)
    assert plan is not None
    assert trainer.history.meta["step"] == "fused"


class _OwnLoss(Trainer):
    def compute_loss(self, outputs, targets, weights=None):
        return F.cross_entropy(outputs, targets)


@pytest.mark.parametrize("case", ["batchnorm", "gelu", "sgd", "callable_loss", "subclass",
                                  "after_backward", "hook", "switched_off"])
def test_everything_else_steps_through_autograd(case):
    build = dict(sizes=[784, 32, 10], dropout=0.1, seed=0)
    kwargs: dict = {}
    cls = Trainer
    if case == "batchnorm":
        build["norm"] = "batch"
    elif case == "gelu":
        build["activation"] = "gelu"
    elif case == "sgd":
        kwargs["optimizer"] = "sgd"
    elif case == "callable_loss":
        kwargs["loss"] = lambda out, y: F.cross_entropy(out, y)
    elif case == "subclass":
        cls = _OwnLoss
    elif case == "after_backward":
        kwargs["callbacks"] = [GradientClipping(1.0)]
    model = build_mlp(**build)
    if case == "hook":
        model.hidden1.register_forward_hook(lambda module, inputs, output: None)
    trainer = cls(model, epochs=1, batch_size=64, seed=0, progress=False, **kwargs)
    if case == "switched_off":
        trainer.fused_step = False
    trainer.fit(_data(128))
    assert trainer.history.meta["step"] == "autograd"


def _reference_grads(model, step, x, y, masks, weights=None, smoothing=0.0, bf16=False):
    """Autograd's gradients of the same function, with the fused step's masks."""
    params = [p.detach().clone().requires_grad_() for p in step.params]
    by_id = {id(p): q for p, q in zip(step.params, params, strict=True)}
    h = model.input(x)
    if masks[0] is not None:
        h = h * masks[0].float()
    layers = step.plan.layers
    for i, layer in enumerate(layers):
        weight, bias = by_id[id(layer.linear.weight)], by_id[id(layer.linear.bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = F.linear(h, weight, bias)
        if i < len(layers) - 1:
            z = torch.relu(z)
            if masks[i + 1] is not None:
                z = z * masks[i + 1]
        h = z
    per = F.cross_entropy(h.float(), y, label_smoothing=smoothing, reduction="none")
    loss = per.mean() if weights is None else (per * weights).sum() / weights.sum()
    loss.backward()
    return loss.detach(), [by_id[id(p)].grad for p in step.params]


@pytest.mark.parametrize("precision, smoothing, weighted, tol", [
    ("fp32", 0.0, False, 1e-5), ("fp32", 0.1, True, 1e-5), ("bf16", 0.1, False, 2e-2)])
def test_gradients_are_autograds(precision, smoothing, weighted, tol):
    model = build_mlp([784, 48, 24, 10], dropout=0.3, input_dropout=0.1, seed=0)
    trainer = _trainer(model, label_smoothing=smoothing, weight_decay=1e-4)
    trainer.fit(_data(64))
    plan = _mlp_step.plan(model, trainer.optimizer, loss="cross_entropy",
                          label_smoothing=smoothing, device=CPU)
    step = _mlp_step.MLPStep(plan, trainer.optimizer, precision=precision,
                             label_smoothing=smoothing, batch_size=64, seed=5)
    x, y = _data(50, seed=1)  # a last, smaller batch
    w = torch.rand(50, generator=torch.Generator().manual_seed(3)) if weighted else None
    loss, outputs, saved = step.forward_loss(x, y, w, None, 2, 3)
    step.backward(saved)
    ref_loss, ref_grads = _reference_grads(model, step, x, y, saved[4], w, smoothing,
                                           bf16=precision == "bf16")
    assert torch.allclose(loss, ref_loss, rtol=tol, atol=tol)
    for p, ref in zip(step.params, ref_grads, strict=True):
        # bf16 products round differently in the two computations: compare as a whole.
        assert float((p.grad - ref).norm() / ref.norm()) < tol
    step.release()


def test_dropout_masks_keep_the_right_share_and_depend_only_on_seed_epoch_batch():
    model = build_mlp([784, 512, 10], dropout=0.3, seed=0)
    plan, trainer = _plan_of(model)
    step = _mlp_step.MLPStep(plan, trainer.optimizer, precision="fp32", label_smoothing=0.0,
                             batch_size=64, seed=11)
    mask = step._masks(64, 4, 9)[1]
    kept = mask > 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01  # 32,768 draws
    assert torch.allclose(mask[kept], torch.tensor(65536 / round(0.7 * 65536)))
    torch.manual_seed(123)  # the global generator plays no part
    again = _mlp_step.MLPStep(plan, trainer.optimizer, precision="fp32", label_smoothing=0.0,
                              batch_size=64, seed=11)
    assert torch.equal(again._masks(64, 4, 9)[1], mask)
    assert not torch.equal(again._masks(64, 4, 10)[1], mask)
    assert not torch.equal(again._masks(64, 5, 9)[1], mask)
    step.release()
    again.release()


def test_after_a_fit_parameters_and_optimizer_state_own_their_memory():
    model = build_mlp([784, 32, 10], dropout=0.2, seed=0)
    trainer = _trainer(model, weight_decay=1e-4)
    trainer.fit(_data())
    assert trainer.history.meta["step"] == "fused"
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert len(storages) == len(list(model.parameters()))
    safetensors.torch.save(model.state_dict())  # refuses tensors that share memory
    for state in trainer.optimizer.state.values():
        assert state["exp_avg"].untyped_storage().nbytes() == state["exp_avg"].nbytes
    assert {float(s["step"]) for s in trainer.optimizer.state.values()} == {4.0}


def test_fused_fits_are_deterministic_and_a_second_fit_continues():
    x, y = _data(300)
    runs = []
    for fits in ([4], [2, 2]):
        model = build_mlp([784, 32, 10], dropout=0.25, seed=0)
        trainer = _trainer(model, epochs=fits[0])
        trainer.fit((x, y))
        for _ in fits[1:]:
            trainer.fit((x, y))
        runs.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
        assert trainer.history.meta["step"] == "fused"
    assert torch.equal(runs[0], runs[1])


def test_fused_and_autograd_training_learn_alike():
    from _separable import separable

    (x, y), (xv, yv) = separable(600, 300)
    accuracy = {}
    for fused in (True, False):
        model = build_mlp([8, 32, 3], dropout=0.1, seed=0)
        trainer = _trainer(model, epochs=5, batch_size=32, precision="fp32")
        trainer.fused_step = fused
        trainer.fit((x, y))
        accuracy[fused] = trainer.evaluate((xv, yv))["accuracy"]
    assert accuracy[True] > 0.9 and abs(accuracy[True] - accuracy[False]) < 0.03


class _Shrink(Callback):
    """Changes the weights in place after every batch, and once drops every gradient."""

    def on_batch_end(self, trainer, batch, logs):
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.mul_(0.5)
        if batch == 1:
            trainer.optimizer.zero_grad(set_to_none=True)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_weights_changed_by_a_callback_are_the_ones_trained(precision):
    model = build_mlp([784, 16, 10], seed=0)
    trainer = _trainer(model, lr=0.0, callbacks=[_Shrink()], precision=precision)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(_data(256))  # 4 batches at lr 0: only the callback changes the weights
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.allclose(p, b / 16)
    assert trainer.history.meta["step"] == "fused"


class _NewGradsThenNaN(Callback):
    """After batch 1: new gradient tensors, and a NaN weight that stops the next step."""

    def on_batch_end(self, trainer, batch, logs):
        if batch == 1:
            for p in trainer.model.parameters():
                p.grad = torch.zeros_like(p)
            with torch.no_grad():
                trainer.model.output.bias[0] = float("nan")


def test_a_fit_stopped_after_the_buffers_were_replaced_leaves_no_shared_state():
    from fcnet.exceptions import NonFiniteLossError

    model = build_mlp([784, 16, 10], seed=0)
    trainer = _trainer(model, callbacks=[_NewGradsThenNaN()])
    with pytest.raises(NonFiniteLossError):
        trainer.fit(_data(256))
    state = trainer.optimizer.state
    assert len(state) == len(list(model.parameters()))
    for entry in state.values():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert not entry[key]._is_view(), key
    # What a caller saving the optimizer's state with safetensors needs: no shared memory.
    safetensors.torch.save({f"{i}.{k}": v for i, e in enumerate(state.values())
                            for k, v in e.items()})
