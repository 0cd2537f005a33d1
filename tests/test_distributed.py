"""Data-parallel training under torchrun on the CPU (gloo): the same script, two processes.

Each test launches ``torchrun --standalone --nproc_per_node=2 tests/_ddp_worker.py`` as a
user would; the worker writes its final weights and history per rank.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from fcnet import Trainer, build_mlp
from fcnet import distributed as fdist

WORKER = Path(__file__).with_name("_ddp_worker.py")


def _torchrun(out: Path, *args: str, restarts: int = 0, timeout: float = 240) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           f"--max-restarts={restarts}", str(WORKER), str(out), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _result(out: Path, rank: int) -> tuple[dict, dict]:
    weights = safetensors.torch.load_file(str(out / f"result-rank{rank}.safetensors"))
    return weights, json.loads((out / f"result-rank{rank}.json").read_text())


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """An uninterrupted 2-rank run, fcnet's files at rank-named paths."""
    out = tmp_path_factory.mktemp("two_ranks")
    done = _torchrun(out, "--rank-paths")
    return out, done


def test_two_ranks_end_identical_and_match_one_process(two_ranks, tmp_path):
    out, _ = two_ranks
    (w0, r0), (w1, r1) = _result(out, 0), _result(out, 1)
    assert r0["world_size"] == 2
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    assert r0["history"] == r1["history"]  # metrics are all-reduced: one history
    # The same script in one process, with the same global batch: the same steps.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    subprocess.run([sys.executable, str(WORKER), str(tmp_path)], env=env, check=True,
                   timeout=120, capture_output=True)
    ws, rs = _result(tmp_path, 0)
    assert rs["world_size"] == 1
    for key in ws:
        torch.testing.assert_close(w0[key], ws[key], rtol=0, atol=1e-5)
    assert abs(r0["accuracy"] - rs["accuracy"]) <= 0.01
    for a, b in zip(r0["history"], rs["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def test_only_rank_zero_writes_and_prints(two_ranks):
    out, done = two_ranks
    assert (out / "history-rank0.json").is_file()
    assert any((out / "ckpt-rank0").glob("epoch*"))
    assert not (out / "history-rank1.json").exists()
    assert not (out / "ckpt-rank1").exists()
    lines = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 4 and lines[-1].startswith("epoch 4/4")  # EpochLogger, rank 0 only


def test_a_rank_killed_mid_epoch_restarts_and_ends_bit_identical(two_ranks, tmp_path):
    reference, _ = two_ranks
    # Rank 1 SIGKILLs itself at step 7 (checkpoints every 2 steps); torchrun restarts
    # both workers, which resume from the last checkpoint.
    _torchrun(tmp_path, "--kill-at", "7", restarts=1)
    for rank in (0, 1):
        w, r = _result(tmp_path, rank)
        ref_w, ref_r = _result(reference, rank)
        assert r["resumed"], "the restarted workers did not resume"
        for key in w:
            assert torch.equal(w[key], ref_w[key]), (rank, key)
        assert r["history"] == ref_r["history"]
    assert not list((tmp_path / "ckpt").glob(".tmp-*"))  # nothing left half-written


def test_bad_setups_are_refused_on_every_rank_and_a_stop_reaches_all(tmp_path):
    _torchrun(tmp_path, "--bad-setups")
    seen = [json.loads((tmp_path / f"bad-rank{r}.json").read_text()) for r in (0, 1)]
    assert seen[0].keys() == seen[1].keys()
    for s in seen:
        assert "batch_size=33 is the global batch and must be divisible by the world size 2" \
            in s["batch"]["error"]
        assert "rank 1's initial weights differs from rank 0's" in s["weights"]["error"]
        assert "seed the model on every rank" in s["weights"]["error"]
        assert "rank 1's data differs from rank 0's" in s["data"]["error"]
        assert "rank 1's settings differs from rank 0's" in s["lr"]["error"]
        assert s["stop"] == {"epochs": 2}  # should_stop set on rank 1 stopped both


def test_unseeded_batch_norm_and_weighted_fits_agree_across_ranks(tmp_path):
    _torchrun(tmp_path, "--variants")
    alone = tmp_path / "alone"
    alone.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    subprocess.run([sys.executable, str(WORKER), str(alone), "--variants"], env=env,
                   check=True, timeout=240, capture_output=True)
    seen = [json.loads((tmp_path / f"variants-rank{r}.json").read_text()) for r in (0, 1)]
    weights = [safetensors.torch.load_file(str(tmp_path / f"variants-rank{r}.safetensors"))
               for r in (0, 1)]
    one = safetensors.torch.load_file(str(alone / "variants-rank0.safetensors"))
    one_seen = json.loads((alone / "variants-rank0.json").read_text())
    # A seed drawn at random is rank 0's everywhere: one data order, one dropout stream.
    assert seen[0]["unseeded_seed"] == seen[1]["unseeded_seed"]
    # BatchNorm's running statistics (and so validation) are rank 0's on every rank.
    assert seen[0]["batch_norm_val_loss"] == seen[1]["batch_norm_val_loss"]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    # Weighted means over the ranks are the whole batch's weighted mean.
    for name in ("sample", "class"):
        np.testing.assert_allclose(seen[0][f"{name}_train_loss"],
                                   one_seen[f"{name}_train_loss"], rtol=1e-5)
        for key in (k for k in one if k.startswith(f"{name}.")):
            torch.testing.assert_close(weights[0][key], one[key], atol=1e-5, rtol=0)


def test_an_unavailable_backend_is_refused_before_training(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(fdist.DistributedError, match=r"runs on CPU \(gloo\) or CUDA \(nccl\)"):
        fdist.join(torch.device("mps"), 32)


def test_shards_cover_a_batch_once():
    for n in (1, 7, 32, 33):
        parts = [fdist.shard(n, 3, r) for r in range(3)]
        covered = [i for p in parts for i in range(n)[p]]
        assert covered == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_one_process_is_not_distributed(blobs):
    x, y = blobs
    trainer = Trainer(build_mlp([8, 3], seed=0), epochs=1, progress=False)
    trainer.fit((x, y))
    assert trainer.world_size == 1 and trainer.rank == 0 and trainer.is_global_zero
