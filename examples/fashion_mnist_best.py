"""fcnet's best pure MLP on Fashion-MNIST: only fully-connected layers.

784 -> 1024 -> 1024 -> 1024 -> 10; dropout 0.1 on the input pixels, and each hidden layer
is Linear -> BatchNorm1d -> GELU -> Dropout 0.3 (``fcnet.FastDropout``: torch's dropout
with masks drawn from NumPy, ~4x faster on the CPU). Pixels standardised with the
training mean and std (0.2860, 0.3530), cross-entropy with label smoothing 0.1, AdamW
(peak lr 3e-3, weight decay 0.05 on the weight matrices) with a one-cycle schedule (10%
warm-up, cosine down to 3e-5), batches of 512, and an exponential moving average of the
weights (decay 0.999) that replaces them at the end. No convolution, attention or patches.

Every setting was chosen on the 12,000-image validation split (recipe ``best_split``,
60 epochs of the 48,000 other images; benchmarks/results/best_mlp_exploration.md). This
script runs ``best``: the same settings refit on all 60,000 training images for 48
epochs, as many samples as the selected run. The test set is read once per run.

Measured with the recipe's defaults (2 CPU threads, one run at a time), seeds 0, 1, 2:
    test accuracy  0.9127 +- 0.0007 (mean +- sample std; seeds: 0.9119, 0.9133, 0.9128);
                   the issue's 91.5% goal for a single model is missed by 0.23 points
    wall time      346, 346 and 344 s per run (48 epochs, data loading and figures
                   included); host steal 0.1%
    nn.Dropout     the same recipe before FastDropout: 0.9143 +- 0.0005 in 651-787 s
                   (benchmarks/results/best_nn_dropout_seeds.json); on the validation
                   split the two are level (-0.16 / +0.06 points on two seeds)
    five seeds     seeds 3 and 4 added (one thread, beside other runs): 0.9135 +- 0.0015
                   with FastDropout, 0.9141 +- 0.0005 with nn.Dropout
                   (benchmarks/results/best_five_seeds.json, best_nn_dropout_five_seeds.json)
    one thread     (nn.Dropout) 0.9144 +- 0.0010, 765-812 s beside another run
                   (benchmarks/results/best_one_thread_seeds.json)
    best_split     0.9099 +- 0.0008 test, 0.9168 validation (EMA weights), 856-926 s
    ensemble       the three models' averaged probabilities: 0.9147 (1,027 s of
                   training); of the three nn.Dropout models: 0.9166 (2,210 s)
    hardware       Intel Xeon @ 2.50GHz, 2 cores, CPU only
    torch          2.14.1+cu130 (CPU), Python 3.11
Per-seed numbers: benchmarks/results/best_seeds.json. Two threads run an epoch ~1.27x
faster than one on an idle machine but collapse when another process uses the cores;
pass ``--threads 1`` on a busy machine.

Usage::

    python examples/fashion_mnist_best.py                  # seed 0, into runs/
    python examples/fashion_mnist_best.py --seeds 0 1 2 --out runs/best
"""

import sys

from fcnet.recipes import main

if __name__ == "__main__":
    sys.exit(main(["best", *sys.argv[1:]]))
