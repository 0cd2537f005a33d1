"""Smoke tests of the benchmarks: each module imports and its cheapest piece runs.

The benchmarks live outside the package (``benchmarks/``), so nothing else would notice
when an API change breaks them. Everything here runs on tiny fake IDX files in
``tmp_path``; the real data set is never read.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnet.data import ArrayDataset, FashionMNIST, write_idx

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


class _SmallFashionMNIST(ArrayDataset):
    """Fashion-MNIST's interface on 600 random training and 100 test images."""

    split_sizes = FashionMNIST.split_sizes

    def __init__(self, split="train", root=None, download=True):
        n = 600 if split == "train" else 100
        g = torch.Generator().manual_seed(len(split))
        super().__init__(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
                         torch.arange(n) % 10)
        self.folder = Path("fake")


def test_recipe_epochs_times_an_augmented_and_a_clean_epoch(bench, tmp_path, monkeypatch):
    epochs = bench("bench_recipe_epochs")
    monkeypatch.setattr("fcnet.recipes.FashionMNIST", _SmallFashionMNIST)
    monkeypatch.setattr("fcnet.recipes._write_plots", lambda *args: None)
    seen = []
    original = epochs.run_recipe

    def spy(recipe, **kwargs):
        seen.append((recipe.name, recipe.epochs, recipe.clean_epochs))
        return original(recipe, **kwargs)

    monkeypatch.setattr(epochs, "run_recipe", spy)
    aug, clean = epochs.epoch_seconds("best_long", threads=1, seed=0, limit_train=None,
                                      work=tmp_path)
    plain = epochs.epoch_seconds("baseline", threads=1, seed=0, limit_train=None,
                                 work=tmp_path)
    assert aug > 0 and clean > 0 and plain[0] == plain[1] > 0
    assert seen == [("best_long", 2, 1), ("baseline", 2, 0)]


@pytest.mark.parametrize("name", ["bench_vs_notebook", "bench_time_to_accuracy",
                                  "bench_flops", "bench_inference", "bench_memory",
                                  "bench_step_options", "bench_recipe_epochs",
                                  "bench_peers", "bench_step_policy"])
def test_every_benchmark_has_a_quick_option(bench, monkeypatch, capsys, name):
    module = bench(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


@pytest.mark.parametrize("contender", ["fcnet", "torch"])
def test_peers_worker_times_every_epoch(bench, fake_idx, contender):
    peers = bench("bench_peers")
    data = peers.load_data(fake_idx)
    assert (len(data.y_train), len(data.y_val)) == (160, 40)
    assert data.x_train.dtype == np.uint8
    out = peers.run_contender(contender, "seed", data, epochs=2, threads=1)
    assert len(out["epoch_seconds"]) == 2 and all(s > 0 for s in out["epoch_seconds"])
    assert out["figure"] == out["epoch_seconds"][1]  # epoch 1 is warm-up
    assert len(out["val_accuracy"]) == 2 and 0 <= out["val_accuracy"][-1] <= 1
    assert out["threads_used"] == 1 and out["val_samples"] == 40
    with pytest.raises(ValueError, match="epochs must be >= 2"):
        peers.run_contender(contender, "seed", data, epochs=1, threads=1)


def test_peers_flops_and_missing_peers(bench, monkeypatch):
    peers = bench("bench_peers")
    # 4-3-2: sum(in*out) = 12 + 6 = 18, all but the first layer: 6. Per training sample
    # 2*18 forward + 2*18 weight gradients + 2*6 input gradients = 84, per validation
    # sample 2*18 = 36: 10 * 84 + 5 * 36 = 1020.
    assert peers.flops_per_epoch([4, 3, 2], train=10, val=5) == 1020
    assert peers.missing_reason("fcnet") is None and peers.missing_reason("torch") is None
    monkeypatch.setitem(peers.CONTENDERS, "skorch", dataclasses.replace(
        peers.CONTENDERS["skorch"], module="no_such_module_here"))
    assert peers.missing_reason("skorch") == "no_such_module_here is not installed"


def _peers_payload(peers):
    def run(figure):
        return {"figure": figure, "epoch_seconds": [9.0, figure], "val_accuracy": [0.5, 0.8],
                "threads_used": 2, "version": "x", "precision": "fp32"}

    workloads = {w: peers.summarize_workload(
        w, {"fcnet": [run(1.0), run(1.2)], "torch": [run(3.0), run(2.0)],
            "torch-bf16": [run(1.5), run(1.5)], "sklearn": [{"error": "boom"}]},
        {"fp32": 100.0, "bf16": 50.0}, train=48000, val=12000) for w in ("seed", "wide")}
    return {"benchmark": "peers", "command": "python bench_peers.py", "quick": False,
            "finished_utc": "2030-01-01T00:00:00Z",
            "machine": {"cpu_model": "Test CPU 9000", "torch": "2.0",
                        "cpu_flags": {"avx512_bf16": True, "amx_bf16": False}},
            "results": {"settings": {"threads": 2, "epochs": 4, "rounds": 2},
                        "workloads": workloads, "skipped": {"keras": "keras is not installed"}}}


def test_peers_summary_and_render(bench):
    peers = bench("bench_peers")
    payload = _peers_payload(peers)
    seed = payload["results"]["workloads"]["seed"]
    rows = {r["contender"]: r for r in seed["rows"]}
    assert rows["fcnet"]["s_per_epoch"] == pytest.approx(1.1)
    assert rows["torch"]["fcnet_speedup"] == pytest.approx(2.5 / 1.1)
    flops = peers.flops_per_epoch([784, 128, 64, 10], 48000, 12000)
    assert rows["torch-bf16"]["gflops"] == pytest.approx(flops / 1.5 / 1e9)
    assert rows["torch-bf16"]["pct_peak"] == pytest.approx(100 * flops / 1.5 / 1e9 / 50)
    assert "error" in rows["sklearn"] and rows["sklearn"]["fcnet_speedup"] is None
    assert seed["fastest_peer_at_defaults"]["contender"] == "torch"
    assert seed["fastest_peer_any_setting"]["contender"] == "torch-bf16"
    assert "fastest peer at any setting: torch-bf16" in peers.workload_markdown("seed", seed)
    md = peers.render_markdown(payload)
    assert "Test CPU 9000 (AVX512-BF16), 2 threads" in md
    assert "| PyTorch loop | bf16 autocast | 1.500 | 1.36x |" in md
    assert "| fcnet | defaults (fp32) | 1.100 | 1.00x |" in md
    assert "skipped: keras is not installed" in md
    rst = peers.render_rst(payload)
    assert ".. list-table::" in rst and "Test CPU 9000" in rst
    assert "   * - fcnet\n     - defaults (fp32)\n     - 1.100\n     - 1.00x" in rst


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


def test_data_load_benchmark_imports_and_parses(bench, capsys):
    # It times the real files only (fake ones fail their digests), so only its
    # command line is checked here.
    with pytest.raises(SystemExit) as exit_info:
        bench("bench_data_load").main(["--help"])
    assert exit_info.value.code == 0
    assert "--repeat" in capsys.readouterr().out


def test_step_policy_times_a_pinned_thread_count(bench):
    policy = bench("bench_step_policy")
    assert policy.step_flops([784, 128, 64, 10], 64) == 6 * 64 * (784 * 128 + 128 * 64 + 640)
    ms = policy.worker([784, 16, 10], 32, 1, "fp32", 256)
    assert 0 < ms < 1000


def test_step_floor_times_each_part_of_an_epoch(bench):
    out = bench("bench_step_policy").floor([784, 16, 10], 32, 256, 64, eval_batch=32,
                                            repeats=1)
    parts = [out[f"{k}_seconds"] for k in ("products", "adam", "validation")]
    assert all(t > 0 for t in parts) and out["sum_seconds"] == sum(parts)


def test_step_policy_busy_core_spins_a_process_for_the_block_only(bench, monkeypatch):
    policy = bench("bench_step_policy")
    started = []
    real = policy.subprocess.Popen

    def spy(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(policy.subprocess, "Popen", spy)
    with policy.busy_core(False):
        assert started == []
    with policy.busy_core(True):
        assert len(started) == 1 and started[0].poll() is None  # spinning
    assert started[0].poll() is not None  # killed on the way out


def test_step_compile_times_the_steps_arithmetic_which_is_autograds(bench):
    import torch.nn.functional as F

    policy = bench("bench_step_policy")
    sizes = [12, 8, 6, 3]
    g = torch.Generator().manual_seed(0)
    params = []
    for i, o in zip(sizes[:-1], sizes[1:], strict=False):
        params += [torch.randn(o, i, generator=g), torch.randn(o, generator=g)]
    x = torch.randint(0, 256, (5, 12), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 3, (5,), generator=g)
    masks = [(torch.rand(5, o, generator=g) < 0.75).float() / 0.75 for o in sizes[1:-1]]
    loss, grads = policy.step_function(sizes)(x, y, masks, *params)
    leaves = [p.clone().requires_grad_() for p in params]
    h = x.float() / 255
    for k in range(3):
        h = F.linear(h, leaves[2 * k], leaves[2 * k + 1])
        if k < 2:
            h = h.relu() * masks[k]
    reference = F.cross_entropy(h, y)
    reference.backward()
    assert torch.allclose(loss, reference)
    by_layer = [grads[2 * (2 - k) + j] for k in range(3) for j in range(2)]
    for got, leaf in zip(by_layer, leaves, strict=True):
        assert torch.allclose(got, leaf.grad, atol=1e-5)
    before = torch.get_num_threads()
    out = policy.compiled(sizes, 5, 4, repeats=1, modes=("eager",))
    assert out["eager_seconds"] > 0 and out["steps"] == 4 and "compiled_seconds" not in out
    assert torch.get_num_threads() == before
