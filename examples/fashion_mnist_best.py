"""fcnet's best pure MLP on Fashion-MNIST within 15 minutes: only fully-connected layers.

784 -> 1024 -> 1024 -> 1024 -> 10; dropout 0.1 on the input pixels, and each hidden layer
is Linear -> BatchNorm1d -> GELU -> Dropout 0.3 (``fcnet.FastDropout``: torch's dropout
with masks drawn from NumPy, ~4x faster on the CPU). Pixels standardised with the
training mean and std (0.2860, 0.3530), cross-entropy with label smoothing 0.1, AdamW
(peak lr 3e-3, weight decay 0.05 on the weight matrices) with a one-cycle schedule (10%
warm-up, cosine down to 3e-5), batches of 512, and an exponential moving average of the
weights (decay 0.999) that replaces them at the end. Random horizontal flips and random
shifts of up to one pixel for the first 48 of 64 epochs; the last 16 train on the images
as they are, so the network fits the centred images again at the schedule's low rates.
No convolution, attention or patches.

Every setting was chosen on the 12,000-image validation split (benchmarks/results/
best_mlp_exploration.md, tenth and eleventh studies). This script runs ``best_budget``,
the best validated settings that fit the 15-minute budget when this machine runs slowly
(80 epochs of the 48,000 other images, the last 20 clean: +0.15 / +0.36 points over
``best_split``'s settings on two seeds), refit on all 60,000 training images for 64
epochs, as many samples. The test set is read once per run.

Measured with the recipe's settings, seeds 0, 1, 2, each run alone with its two threads
(``--seed N``; benchmarks/results/best_budget_seeds.json):
    test accuracy  0.9136 +- 0.0011 (mean +- sample std; seeds: 0.9130, 0.9129, 0.9149);
                   0.14 points short of the issue's 91.5% goal for a single model
    wall time      704-818 s per run (host steal 0.6-6.8%), in hours when best ran
                   ~11.5 s an epoch; under the 15 minutes
    best_long      the same settings on 96 epochs (the last 24 clean) reach the goal,
                   0.9155 +- 0.0010, but took 1,098 s and 1,177 s alone at this speed
                   (~690 s at the speed best was timed at, 7.1 s an epoch):
                   ``python -m fcnet.recipes best_long``
    best           48 epochs without flips and shifts: 0.9127 +- 0.0007
                   (0.9135 +- 0.0015 over five seeds) in 344-346 s in a fast hour
    hardware       Intel Xeon @ 2.50GHz, 2 cores, CPU only
    torch          2.14.1+cu130 (CPU), Python 3.11
Two threads run an epoch ~1.27x faster than one on an idle machine but collapse when
another process uses the cores; pass ``--threads 1`` on a busy machine.

Usage::

    python examples/fashion_mnist_best.py                  # seed 0, into runs/
    python examples/fashion_mnist_best.py --seeds 0 1 2 --out runs/best_budget
"""

import sys

from fcnet.recipes import main

if __name__ == "__main__":
    sys.exit(main(["best_budget", *sys.argv[1:]]))
