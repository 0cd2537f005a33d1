"""fcnet's best pure MLP on Fashion-MNIST within 15 minutes, the recipe ``best_lean``.

Only fully-connected layers: 784 -> 1024 -> 1024 -> 10; dropout 0.1 on the input
pixels, and each hidden layer is Linear -> BatchNorm1d -> GELU -> Dropout 0.3
(``fcnet.FastDropout``: the same dropout with masks drawn from NumPy, faster on the
CPU). Pixels standardised with the training mean and std (0.2860, 0.3530),
cross-entropy with label smoothing 0.1, AdamW (peak lr 3e-3, weight decay 0.05 on the
weight matrices) with a one-cycle schedule (``fcnet.schedules.OneCycle``: 10% warm-up,
cosine down to 3e-5), batches of 512, and an exponential moving average of the weights
(``WeightAveraging(decay=0.999)``) that replaces them at the end. Random horizontal
flips and random shifts of up to one pixel for the first 72 of 96 epochs; the last 24
train on the images as they are (``DisableAugmentation(24)``), so the network fits the
centred images again at the schedule's low rates. No convolution, attention or patches.

Every setting was chosen on the 12,000-image validation split (docs/results.rst, tenth
and eleventh studies: 120 epochs of the 48,000 other images, the last 30 clean, 0.9202 /
0.9232 on two seeds, level with three hidden layers' 0.9196 / 0.9233 at 0.63x the cost
of an epoch). This script runs those settings refit on all 60,000 training images for
96 epochs, as many samples. The test set is read once per run.

Measured with the recipe's settings, seeds 0, 1, 2, each run alone with its two threads
(``--seed N``), fcnet 0.1 on an Intel Xeon @ 2.50GHz (benchmarks/results/best_lean_seeds.json;
fcnet 0.2 on an AMD EPYC, seed 0: 0.9159 in 523 s, best_lean_seed0_epyc.json):
    test accuracy  0.9156 +- 0.0007 (mean +- sample std; seeds: 0.9159, 0.9161, 0.9148):
                   the 91.5% goal for a single model, on the mean (seed 2 alone is 0.02
                   points short)
    wall time      698-749 s per run (host steal 0.2-3.0%), under the 15 minutes; the
                   machine's speed varied by up to ~1.7x between hours, so the margin
                   depends on the hour (docs/results.rst)
    best_long      three hidden layers on the same schedule: 0.9155 +- 0.0010, but
                   1,098 s and 1,177 s alone on the same machine
    best_budget    three hidden layers on 64 epochs: 0.9136 +- 0.0011 in 704-818 s
    best           48 epochs without flips and shifts: 0.9127 +- 0.0007
                   (0.9135 +- 0.0015 over five seeds) in 344-346 s in a fast hour
    hardware       Intel(R) Xeon(R) Processor @ 2.50GHz, 2 cores, CPU only
    torch          2.14.1+cu130 (CPU), Python 3.11
Two threads run an epoch faster than one on an idle machine but collapse when another
process uses the cores; pass ``--threads 1`` on a busy machine.

Usage::

    python examples/fashion_mnist_best.py                  # seed 0, into runs/
    python examples/fashion_mnist_best.py --seeds 0 1 2 --out runs/best_lean
"""

import sys

from fcnet.recipes import main

if __name__ == "__main__":
    sys.exit(main(["best_lean", *sys.argv[1:]]))
