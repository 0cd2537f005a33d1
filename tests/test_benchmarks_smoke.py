"""Smoke tests of the benchmarks: each module imports and its cheapest piece runs.

The benchmarks live outside the package (``benchmarks/``), so nothing else would notice
when an API change breaks them. Everything here runs on tiny fake IDX files in
``tmp_path``; the real data set is never read.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnet.data import write_idx

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench(monkeypatch):
    """Import a benchmark module by name, with ``benchmarks/`` on ``sys.path``."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads = torch.get_num_threads()
    yield importlib.import_module
    torch.set_num_threads(threads)  # the benchmarks set the thread count


@pytest.fixture()
def fake_idx(tmp_path):
    """A folder with the four Fashion-MNIST .gz files, 200 train and 50 test images."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 200), ("t10k", 50)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_common_table_json_and_machine_facts(bench, tmp_path):
    common = bench("_common")
    table = common.format_table([{"a": 1.23456, "b": None}], [("a", "alpha", ".2f"),
                                                               ("b", "beta", "d")])
    assert table.splitlines()[0].split() == ["alpha", "beta"]
    assert table.splitlines()[2].split() == ["1.23", "-"]
    path = common.write_result("x", {"value": float("nan"), "t": (1, 2)},
                               out=tmp_path / "x.json")
    data = json.loads(path.read_text())
    assert data["results"] == {"value": "nan", "t": [1, 2]}
    assert data["machine"]["torch"] == torch.__version__
    assert len(data["load_average_at_end"]) == 3
    assert common.summarize([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0,
                                                 "n": 3}
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        common.set_threads(0)


def test_notebook_model_reproduces_the_duplicated_key(bench):
    common = bench("_common")
    as_run = common.notebook_model(as_run=True)
    intended = common.notebook_model(as_run=False)
    assert sum(isinstance(m, torch.nn.Dropout) for m in as_run) == 1
    assert sum(isinstance(m, torch.nn.Dropout) for m in intended) == 2
    assert as_run(torch.zeros(3, 784)).shape == (3, 10)


def test_torchvision_root_needs_all_files(bench, tmp_path):
    common = bench("_common")
    with (pytest.raises(FileNotFoundError, match="lacks train-images-idx3-ubyte.gz"),
          common.torchvision_root(tmp_path)):
        pass


def test_vs_notebook_alternates_epochs(bench, fake_idx):
    result = bench("bench_vs_notebook").compare(fake_idx, rounds=1, seed=0)
    (row,) = result["rounds"]
    assert result["train_samples"] == 160 and result["val_samples"] == 40
    assert row["notebook_wall"] > 0 and row["fcnet_wall"] > 0
    assert row["speedup_wall"] == pytest.approx(row["notebook_wall"] / row["fcnet_wall"])
    assert 0 <= row["notebook_val_accuracy"] <= 1 and 0 <= row["fcnet_val_accuracy"] <= 1


def test_time_to_accuracy_stops_at_the_target(bench, fake_idx):
    common, tta = bench("_common"), bench("bench_time_to_accuracy")
    train, _, test = common.fcnet_data(fake_idx)
    config = {"batch_size": 32, "lr": 1e-2, "epochs": 3, "scheduler": "onecycle"}
    hit = tta.fcnet_time_to_accuracy(train, test, config, seed=0, target=0.0)
    assert hit["reached"] and hit["epoch"] == 1 and hit["epochs_run"] == 1
    miss = tta.fcnet_time_to_accuracy(train, test, config, seed=0, target=1.01)
    assert not miss["reached"] and miss["seconds"] is None and miss["epochs_run"] == 3
    with common.torchvision_root(fake_idx) as root:
        pipe = common.notebook_pipeline(root, seed=0)
        nb = tta.notebook_time_to_accuracy(pipe, max_epochs=1, seed=0, target=1.01)
    assert not nb["reached"] and 0 <= nb["test_accuracy"] <= 1


def test_flops_rate_and_peak(bench):
    flops = bench("bench_flops")
    row = flops.train_rate(width=16, batch=8, steps=3)
    assert row["steps_timed"] == 3 and row["parameters"] == 784 * 16 + 16 + 16 * 16 + 16 + 170
    assert row["flops"] == pytest.approx(6 * row["parameters"] * row["samples_per_second"])
    assert flops.matmul_peak(64, seconds=0.01) > 0
    assert flops._steps_for(4096, 4096, 1e9, 1.0) == 3
    assert flops._steps_for(16, 8, 1e12, 1.0) == 30


def test_inference_measures_both_thread_counts(bench, fake_idx):
    inference = bench("bench_inference")
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    rows = inference.measure([784, 16, 10], images, [1, 2], rounds=1, repeats=1, calls=5)
    assert [r["threads"] for r in rows] == [1, 2]
    assert all(r["images_per_second_median"] > 0 and r["latency_calls"] == 5 for r in rows)


def test_memory_child_reports_peak_rss(bench, fake_idx):
    memory = bench("bench_memory")
    info = memory.child("fcnet", epochs=1, threads=1, source=fake_idx)
    assert info["peak_rss_bytes"] > 10 * 2**20  # torch alone takes more than that
    assert 0 <= info["test_accuracy"] <= 1
    with pytest.raises(ValueError, match="kind must be one of import, fcnet, notebook"):
        memory.child("gpu", epochs=1, threads=1)


def test_step_options_compares_variants(bench):
    options = bench("bench_step_options")
    variants = {name: options.VARIANTS[name] for name in ("fused", "single-tensor")}
    rows = options.compare(variants, batch_size=8, steps=3, rounds=2)
    assert [r["variant"] for r in rows] == ["fused", "single-tensor"]
    assert rows[0]["relative_to_fused"] == 1.0 and rows[1]["ms_per_step_median"] > 0
    assert all(r["rounds"] == 2 for r in rows)


@pytest.mark.integration
def test_recipe_epochs_times_an_augmented_and_a_clean_epoch(bench, tmp_path, monkeypatch):
    epochs = bench("bench_recipe_epochs")
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    seen = []
    original = epochs.run_recipe

    def spy(recipe, **kwargs):
        seen.append((recipe.name, recipe.epochs, recipe.no_augment_epochs))
        return original(recipe, **kwargs)

    monkeypatch.setattr(epochs, "run_recipe", spy)
    aug, clean = epochs.epoch_seconds("best_long", threads=1, seed=0, limit_train=600,
                                      work=tmp_path)
    plain = epochs.epoch_seconds("baseline", threads=1, seed=0, limit_train=600,
                                 work=tmp_path)
    assert aug > 0 and clean > 0 and plain[0] == plain[1] > 0
    assert seen == [("best_long", 2, 1), ("baseline", 2, 0)]


@pytest.mark.parametrize("name", ["bench_vs_notebook", "bench_time_to_accuracy",
                                  "bench_flops", "bench_inference", "bench_memory",
                                  "bench_step_options", "bench_recipe_epochs"])
def test_every_benchmark_has_a_quick_option(bench, monkeypatch, capsys, name):
    module = bench(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_ensemble_of_recipe_runs(bench, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fcnet import build_mlp, save_model

    g = torch.Generator().manual_seed(0)
    test = SimpleNamespace(images=torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8,
                                                generator=g),
                           labels=torch.arange(50) % 10)
    ens = bench("ensemble_runs")
    monkeypatch.setattr(ens, "FashionMNIST", lambda split, root=None: test)
    probas = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_mlp([784, 16, 10]).eval()
        with torch.no_grad():
            probas.append(torch.softmax(model(test.images).double(), 1))
        run = tmp_path / f"s{seed}"
        save_model(model, run / "model")
        (run / "metrics.json").write_text(json.dumps({
            "recipe": {"name": "tiny"}, "seed": seed, "test_accuracy": 0.5,
            "train_seconds": 10.0 + seed, "wall_seconds": 12.0 + seed}))
    result = ens.ensemble([tmp_path / "s0", tmp_path / "s1"])
    for row, proba in zip(result["runs"], probas, strict=True):
        assert row["test_accuracy"] == (proba.argmax(1) == test.labels).double().mean().item()
    expected = ((probas[0] + probas[1]).argmax(1) == test.labels).double().mean().item()
    assert result["ensemble_test_accuracy"] == expected
    assert result["ensemble_train_seconds"] == 21.0
    with pytest.raises(FileNotFoundError, match="not a finished recipe run: no model"):
        ens.ensemble([tmp_path])


def test_collect_runs_summarises_seeds(bench, tmp_path):
    collect = bench("collect_runs")
    for seed, acc in ((0, 0.91), (1, 0.92)):
        run = tmp_path / f"s{seed}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({
            "recipe": {"name": "best"}, "seed": seed, "test_accuracy": acc,
            "val_accuracy": None, "epochs_run": 48, "train_samples": 60000,
            "wall_seconds": 700.0 + seed, "train_seconds": 690.0, "threads": 1,
            "torch_version": torch.__version__, "created": "now"}))
    result = collect.collect([tmp_path / "s0", tmp_path / "s1"])
    assert result["recipe"] == "best" and [r["seed"] for r in result["runs"]] == [0, 1]
    assert result["test_accuracy_mean"] == pytest.approx(0.915)
    assert result["test_accuracy_std"] == pytest.approx(0.00707, abs=1e-5)
    assert result["wall_seconds_min_max"] == [700.0, 701.0]
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        collect.collect([tmp_path])


def test_mc_dropout_val_rebuilds_the_split_and_averages_passes(bench, tmp_path):
    from fcnet import build_mlp, save_model
    from fcnet.data import ArrayDataset, to_tensors, train_val_split

    mc = bench("mc_dropout_val")
    g = torch.Generator().manual_seed(0)
    full = ArrayDataset(torch.randint(0, 256, (100, 28, 28), dtype=torch.uint8, generator=g),
                        torch.arange(100) % 10)
    torch.manual_seed(0)
    model = build_mlp([784, 32, 10], dropout=0.5).eval()
    run = tmp_path / "run"
    save_model(model, run / "model")
    (run / "metrics.json").write_text(json.dumps(
        {"recipe": {"val_fraction": 0.2}, "seed": 3, "val_accuracy": 0.1}))
    result = mc.mc_dropout(run, full, passes=(1, 2))
    _, val = train_val_split(full, val_fraction=0.2, seed=3)
    x, y = to_tensors(val)[:2]
    with torch.no_grad():
        assert result["eval_mode"] == (model(x).argmax(1) == y).float().mean().item()
    assert set(result) >= {"dropout_1_passes", "dropout_2_passes"}
    (run / "metrics.json").write_text(json.dumps(
        {"recipe": {"val_fraction": 0.0}, "seed": 3, "val_accuracy": None}))
    with pytest.raises(ValueError, match="without a validation split"):
        mc.mc_dropout(run, full)


def test_explore_losses_and_sam_pass(bench):
    import torch.nn.functional as F
    from torch import nn

    ex = bench("explore_best_mlp")
    torch.manual_seed(0)
    model = ex.build([8, 8], "batch", "gelu", 0.3, 0.1)
    model.train()
    xb, yb = torch.rand(16, 28, 28), torch.randint(0, 10, (16,))
    # R-Drop: mean cross-entropy of two passes plus a KL term that is never negative.
    torch.manual_seed(1)
    rd = ex.rdrop_loss(model, xb, yb, 0.0, 1.0)
    torch.manual_seed(1)
    o1, o2 = model(torch.cat([xb, xb])).chunk(2)
    ce = 0.5 * (F.cross_entropy(o1, yb) + F.cross_entropy(o2, yb))
    assert rd.item() >= ce.item() - 1e-6 and not torch.equal(o1, o2)
    # Self-distillation with weight 0 is the plain loss; the teacher is left in eval mode.
    teacher = ex.build([8, 8], "batch", "gelu", 0.3, 0.1)
    torch.manual_seed(2)
    sd = ex.self_distill_loss(model, teacher, xb, yb, 0.1, 0.0)
    torch.manual_seed(2)
    assert sd.item() == pytest.approx(F.cross_entropy(model(xb), yb, label_smoothing=0.1).item())
    ex.self_distill_loss(model, teacher, xb, yb, 0.1, 0.5)
    assert not teacher.training
    # SAM: the weights and BatchNorm settings come back; the gradients change.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = ex.mixed_loss(model, xb, yb, None, 1.0, 0.1)
    model.zero_grad()
    loss.backward()
    first = [p.grad.clone() for p in model.parameters()]
    running = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    ex.sam_second_pass(model, lambda: ex.mixed_loss(model, xb, yb, None, 1.0, 0.1), 0.5)
    for k, v in model.state_dict().items():
        if "running" in k:
            assert torch.equal(v, running[k]), k
        elif "num_batches" not in k:
            torch.testing.assert_close(v, before[k], msg=k)
    assert any(not torch.equal(p.grad, g) for p, g in zip(model.parameters(), first,
                                                          strict=True))
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm1d))


def test_explore_whitening_and_mutual_learning(bench):
    import torch.nn.functional as F

    ex = bench("explore_best_mlp")
    torch.manual_seed(0)
    # ZCA whitening with a tiny eps: the whitened training pixels have ~identity covariance.
    x = torch.rand(4000, 4, 4) * torch.linspace(0.1, 1.0, 16).reshape(4, 4)
    z = ex.Whiten(x, 1e-6)(x)
    cov = (z - z.mean(0)).T @ (z - z.mean(0)) / len(z)
    torch.testing.assert_close(cov, torch.eye(16), atol=2e-3, rtol=0)
    assert not list(ex.Whiten(x, 0.1).parameters())  # fixed: nothing for the optimiser
    # Colouring (power -0.25): principal variances lambda become c * lambda ** 1.5 with
    # unit mean variance per pixel.
    xd = x.reshape(len(x), -1).double()
    lam = torch.linalg.eigvalsh(torch.cov(xd.T, correction=0))
    z = ex.Whiten(x, 1e-12, -0.25)(x).double()
    lz = torch.linalg.eigvalsh(torch.cov(z.T, correction=0))
    assert lz.mean().item() == pytest.approx(1.0, rel=1e-3)
    torch.testing.assert_close(lz, lam**1.5 / (lam**1.5).mean(), rtol=1e-3, atol=1e-6)
    # Mutual learning: each loss is its own cross-entropy plus a KL term >= 0, and the
    # peer's gradients come from its own loss only.
    model = ex.build([8], "batch", "gelu", 0.0, 0.0)
    peer = ex.build([8], "batch", "gelu", 0.0, 0.0)
    xb, yb = torch.rand(16, 28, 28), torch.randint(0, 10, (16,))
    la, lb = ex.mutual_loss(model, peer, xb, yb, 0.0, 1.0)
    assert la.item() >= F.cross_entropy(model(xb), yb).item() - 1e-6
    assert lb.item() >= F.cross_entropy(peer(xb), yb).item() - 1e-6
    lb.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in peer.parameters())
    # EMA update: decay 0 copies the model, decay 1 keeps the average.
    avg = ex.build([8], "batch", "gelu", 0.0, 0.0)
    keep = {k: v.clone() for k, v in avg.state_dict().items()}
    ex.ema_update(avg, model, 1.0)
    for k, v in avg.state_dict().items():
        assert torch.equal(v, keep[k]) or "num_batches" in k, k
    ex.ema_update(avg, model, 0.0)
    for k, v in avg.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_explore_swa_schedule_anneals_to_its_rate_and_holds_it(bench):
    ex = bench("explore_best_mlp")
    args = ex.parse_args(["--lr", "3e-3", "--swa-start", "0.75", "--swa-lr", "5e-4"])
    total = 1000
    lrs = [ex.lr_at(s, total, args) for s in range(total)]
    assert ex.swa_first_step(total, args) == 750
    assert max(lrs) == pytest.approx(3e-3)
    assert lrs[749] == pytest.approx(5e-4, rel=1e-3)  # the cosine ends at the SWA rate
    assert all(lr == 5e-4 for lr in lrs[750:])
    plain = ex.parse_args(["--lr", "3e-3"])
    assert ex.lr_at(999, total, plain) < 1e-4  # without SWA the decay goes on to lr / 100


def test_explore_adversarial_and_virtual_adversarial_passes(bench):
    import torch.nn.functional as F
    from torch import nn

    ex = bench("explore_best_mlp")
    torch.manual_seed(0)
    model = ex.build([8, 8], "batch", "gelu", 0.0, 0.0)
    xb, yb = torch.rand(32, 28, 28), torch.randint(0, 10, (32,))
    # FGSM in evaluation mode (deterministic): the step along the gradient's sign raises
    # the loss, and the gradients are the weighted sum of those of the two batches.
    model.eval()
    model.zero_grad()
    loss = ex.adversarial_backward(model, xb.detach(), yb, 0.0, 0.05, 0.5, "linf")
    got = [p.grad.clone() for p in model.parameters()]
    xr = xb.detach().clone().requires_grad_(True)
    ce = F.cross_entropy(model(xr), yb)
    (gx,) = torch.autograd.grad(ce, xr, retain_graph=True)
    adv = F.cross_entropy(model(xb.detach() + 0.05 * gx.sign()), yb)
    assert adv.item() > ce.item()
    assert loss.item() == pytest.approx(0.5 * (ce.item() + adv.item()), rel=1e-5)
    model.zero_grad()
    (0.5 * ce + 0.5 * F.cross_entropy(model(xb.detach() + 0.05 * gx.sign()), yb)).backward()
    for p, g in zip(model.parameters(), got, strict=True):
        torch.testing.assert_close(p.grad, g)
    # The L2 step is the input gradient scaled to length eps per image.
    step = 0.5 * gx / gx.flatten(1).norm(dim=1).view(-1, 1, 1)
    loss = ex.adversarial_backward(model, xb.detach(), yb, 0.0, 0.5, 1.0, "l2")
    assert loss.item() == pytest.approx(F.cross_entropy(model(xb.detach() + step), yb).item(),
                                        rel=1e-5)
    # VAT in training mode: the loss is the cross-entropy plus a KL term >= 0, the
    # BatchNorm statistics are those of the clean pass alone and its momentum comes back.
    model.train()
    gen = torch.Generator().manual_seed(0)
    model.zero_grad()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss = ex.vat_backward(model, xb.detach(), yb, 0.0, 1.0, 1.0, 0.1, gen)
    after_vat = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.load_state_dict(state)
    ce = F.cross_entropy(model(xb.detach()), yb)
    assert loss.item() >= ce.item() - 1e-6
    for k, v in model.state_dict().items():
        if "running" in k:
            torch.testing.assert_close(after_vat[k], v, msg=k)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    # Weight 0 leaves only the cross-entropy's gradients.
    model.load_state_dict(state)
    model.zero_grad()
    ex.vat_backward(model, xb.detach(), yb, 0.0, 1.0, 0.0, 0.1, gen)
    got = [p.grad.clone() for p in model.parameters()]
    model.load_state_dict(state)
    model.zero_grad()
    F.cross_entropy(model(xb.detach()), yb).backward()
    for p, g in zip(model.parameters(), got, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_explore_optimizer_choice_and_exclusive_options(bench):
    ex = bench("explore_best_mlp")
    model = ex.build([8], "batch", "gelu", 0.0, 0.0)
    sgd = ex.make_optimizer(model, ex.parse_args(["--opt", "sgd", "--lr", "0.2", "--wd", "5e-4"]))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    assert [g["weight_decay"] for g in sgd.param_groups] == [5e-4, 0.0]
    assert isinstance(ex.make_optimizer(model, ex.parse_args([])), torch.optim.AdamW)
    for bad in (["--adv", "0.02", "--mixup", "0.2"], ["--vat", "1", "--adv", "0.02"]):
        with pytest.raises(SystemExit):
            ex.parse_args(bad)


def test_explore_two_piece_units(bench):
    import torch.nn.functional as F

    ex = bench("explore_best_mlp")
    x = torch.randn(5, 8)
    torch.testing.assert_close(ex.GEGLU()(x), x[:, :4] * F.gelu(x[:, 4:]))
    torch.testing.assert_close(ex.Maxout()(x), torch.maximum(x[:, 0::2], x[:, 1::2]))
    for act in ("glu", "maxout"):
        model = ex.build([6, 6], "batch", act, 0.0, 0.0).eval()
        assert model[1].out_features == 12 and model(torch.rand(3, 28, 28)).shape == (3, 10)


def test_explore_distillation_from_saved_teachers(bench, tmp_path):
    import torch.nn.functional as F

    ex = bench("explore_best_mlp")
    torch.manual_seed(0)
    targs = ex.parse_args(["--widths", "8", "8", "--split-seed", "3", "--dropout", "0.3"])
    teacher = ex.build(targs.widths, targs.norm, targs.act, targs.dropout, targs.in_drop)
    teacher.train()
    torch.save({"args": vars(targs), "state": teacher.state_dict()}, tmp_path / "t.pt")
    xb = torch.rand(16, 28, 28)
    # The saved network comes back with its weights, in evaluation mode, on its own split.
    (loaded,) = ex.load_teachers([tmp_path / "t.pt"], targs, xb)
    torch.testing.assert_close(loaded(xb), teacher.eval()(xb))
    with pytest.raises(SystemExit, match="split 3"):
        ex.load_teachers([tmp_path / "t.pt"], ex.parse_args(["--split-seed", "4"]), xb)
    # Two teachers: the mean of their probabilities at the temperature; they stay in eval.
    other = ex.build([8], "batch", "gelu", 0.3, 0.0)
    other.train()
    probs = ex.teacher_probs([loaded, other], xb, 4.0)
    want = 0.5 * (F.softmax(loaded(xb) / 4, 1) + F.softmax(other.eval()(xb) / 4, 1))
    torch.testing.assert_close(probs, want)
    assert not other.training
    # The loss: weight 0 is the label loss; a student that already matches the teacher
    # pays only (1 - alpha) of it; otherwise the KL term adds temp**2 * KL >= 0.
    out = torch.randn(16, 10)
    hard = torch.tensor(1.5)
    assert ex.distill_loss(hard, out, probs, 0.0, 4.0) is hard
    same = F.softmax(out / 4, 1)
    assert ex.distill_loss(hard, out, same, 0.7, 4.0).item() == pytest.approx(0.3 * 1.5)
    kl = F.kl_div(F.log_softmax(out / 4, 1), probs, reduction="batchmean").item()
    assert kl > 0
    assert ex.distill_loss(hard, out, probs, 0.7, 4.0).item() == pytest.approx(
        0.3 * 1.5 + 0.7 * 16 * kl, rel=1e-5)
    with pytest.raises(SystemExit):
        ex.parse_args(["--kd-teacher", "t.pt", "--sam", "0.05"])
    with pytest.raises(SystemExit):
        ex.parse_args(["--teachers-only"])


def test_explore_reports_teachers_and_their_ensemble(bench, capsys):
    ex = bench("explore_best_mlp")
    torch.manual_seed(0)
    teachers = [ex.build([8], "batch", "gelu", 0.0, 0.0).eval() for _ in range(2)]
    x, y = torch.rand(64, 28, 28), torch.randint(0, 10, (64,))
    ex.report_teachers(teachers, x, y, 0.5, 0.25)
    lines = capsys.readouterr().out.splitlines()
    with torch.no_grad():
        probs = [torch.softmax(t((x - 0.5) / 0.25), 1) for t in teachers]
    accs = [(p.argmax(1) == y).float().mean().item() for p in probs]
    ens = ((probs[0] + probs[1]).argmax(1) == y).float().mean().item()
    assert lines == [f"teacher 0 val_acc {accs[0]:.4f}", f"teacher 1 val_acc {accs[1]:.4f}",
                     f"ENSEMBLE of 2 val_acc {ens:.4f}"]


def test_cnn_teacher_trains_saves_and_teaches_a_refit_student(bench, fake_idx, tmp_path,
                                                               monkeypatch, capsys):
    ex = bench("explore_best_mlp")
    cnn = bench("cnn_teacher")
    monkeypatch.setattr(ex, "DATA_DIR", fake_idx)
    # --refit trains on every training image and holds none out.
    split, refit = ex.load_data(0), ex.load_data(0, refit=True)
    assert (len(split["train"][0]), len(split["val"][0])) == (160, 40)
    assert len(refit["train"][0]) == 200 and "val" not in refit
    # The teacher is convolutional and reads the MLPs' (N, 28, 28) standardised images.
    net = cnn.SmallCNN(4)
    assert net(torch.randn(3, 28, 28)).shape == (3, 10)
    assert any(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    with pytest.raises(SystemExit):
        cnn.parse_args(["--channels", "0"])
    with pytest.raises(SystemExit):
        cnn.parse_args(["--save", str(tmp_path / "missing" / "t.pt")])
    path = tmp_path / "cnn.pt"
    cnn.train(cnn.parse_args(["--channels", "4", "--epochs", "1", "--batch-size", "32",
                              "--refit", "--save", str(path)]))
    assert "FINAL teacher test_acc" in capsys.readouterr().out
    saved = torch.load(path, weights_only=False)
    assert saved["kind"] == "cnn" and saved["train_seconds"] > 0
    # explore_best_mlp rebuilds it as a teacher, and only for a run on the same images.
    args = ex.parse_args(["--refit", "--widths", "8", "--epochs", "1", "--batch-size", "32",
                          "--kd-teacher", str(path), "--kd-weight", "0.7", "--kd-temp", "4"])
    (teacher,) = ex.load_teachers([path], args, refit["train"][0])
    assert isinstance(teacher, cnn.SmallCNN) and not teacher.training
    with pytest.raises(SystemExit, match="refit True"):
        ex.load_teachers([path], ex.parse_args([]), refit["train"][0])
    # A refit student trains without a validation split and reads the test set once.
    ex.train(args)
    out = capsys.readouterr().out
    assert "val_acc" not in out and " val " not in out and "ema_val" not in out
    assert "best_val" not in out and "FINAL model wall" in out
    assert out.count("TEST acc") == 1 and "(model weights)" in out
    with pytest.raises(SystemExit):
        ex.parse_args(["--refit", "--teachers-only", "--kd-teacher", str(path)])


def test_explore_refit_with_swa_tests_the_average_once(bench, fake_idx, monkeypatch, capsys):
    # Without a validation split nothing chooses between the EMA and the SWA weights: the
    # average that was asked for is the one tested, and the test set is read once.
    ex = bench("explore_best_mlp")
    monkeypatch.setattr(ex, "DATA_DIR", fake_idx)
    ex.train(ex.parse_args(["--refit", "--widths", "8", "--epochs", "3", "--batch-size", "32",
                            "--ema", "0.9", "--swa-start", "0.3"]))
    out = capsys.readouterr().out
    assert out.count("TEST acc") == 1 and "(SWA weights)" in out
    assert "FINAL ema wall" in out and "val_acc" not in out


@pytest.mark.parametrize("flags", [[], ["--flip"], ["--shift", "1"], ["--scale", "0.2"],
                                   ["--erase", "1.0"]])
def test_explore_augment_hands_back_its_input_only_when_nothing_is_on(bench, flags):
    # The distillation path relies on this to know whether the teacher's cached
    # probabilities still describe the batch.
    ex = bench("explore_best_mlp")
    x = torch.rand(8, 28, 28)
    out = ex.augment(x, ex.parse_args(flags), torch.Generator().manual_seed(0))
    assert (out is x) == (not flags)
    assert out.shape == x.shape


def test_explore_mimo_network_batches_and_run(bench, fake_idx, monkeypatch, capsys):
    ex = bench("explore_best_mlp")
    torch.manual_seed(0)
    net = ex.make_model(ex.parse_args(["--widths", "16", "--mimo", "3"]), torch.rand(4, 28, 28))
    assert isinstance(net, ex.Mimo) and net.net[1].in_features == 3 * 784
    x = torch.rand(5, 28, 28)
    net.train()
    assert net(torch.rand(5, 3, 28, 28)).shape == (5, 3, 10)
    # Evaluation: the image in every slot, the heads' probabilities averaged.
    net.eval()
    with torch.no_grad():
        heads = net.net(x.repeat(1, 3, 1).reshape(5, -1)).view(5, 3, 10)
        want = torch.softmax(heads, 2).mean(1)
        assert torch.allclose(torch.exp(net(x)), want, atol=1e-6)
    # Slot 0 is the batch itself; the other slots repeat it for about `repeat` of the rows
    # and otherwise hold other images of the batch, with their own labels.
    n = 4000
    xb = torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 28, 28)  # image i is i
    yb = torch.randint(0, 10, (n,))
    xm, ym = ex.mimo_batch(xb, yb, 2, 0.25, torch.Generator().manual_seed(0))
    assert xm.shape == (n, 2, 28, 28) and ym.shape == (n, 2)
    assert torch.equal(xm[:, 0], xb) and torch.equal(ym[:, 0], yb)
    which = xm[:, 1, 0, 0].long()  # the image in slot 1
    assert torch.equal(xm[:, 1], xb[which]) and torch.equal(ym[:, 1], yb[which])
    assert 0.22 < (which == torch.arange(n)).float().mean() < 0.29  # 0.25, plus chance
    # A short run trains and evaluates through the same code as every other network.
    monkeypatch.setattr(ex, "DATA_DIR", fake_idx)
    ex.train(ex.parse_args(["--widths", "8", "--epochs", "2", "--batch-size", "32",
                            "--mimo", "2", "--ema", "0.9", "--flip", "--tta"]))
    out = capsys.readouterr().out
    assert "FINAL ema val_acc" in out
    for bad in (["--mimo", "0"], ["--mimo", "2", "--mimo-repeat", "1.5"],
                ["--mimo", "2", "--mixup", "0.2"], ["--mimo", "2", "--swa-start", "0.5"],
                ["--mimo", "2", "--rdrop", "1"]):
        with pytest.raises(SystemExit):
            ex.parse_args(bad)
