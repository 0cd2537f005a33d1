"""fcnet's best pure MLP on Fashion-MNIST: only fully-connected layers.

784 -> 1024 -> 1024 -> 1024 -> 10; dropout 0.1 on the input pixels, and each hidden layer
is Linear -> BatchNorm1d -> GELU -> Dropout 0.3 (``fcnet.FastDropout``: torch's dropout
with masks drawn from NumPy, ~4x faster on the CPU). Pixels standardised with the
training mean and std (0.2860, 0.3530), cross-entropy with label smoothing 0.1, AdamW
(peak lr 3e-3, weight decay 0.05 on the weight matrices) with a one-cycle schedule (10%
warm-up, cosine down to 3e-5), batches of 512, and an exponential moving average of the
weights (decay 0.999) that replaces them at the end. Random horizontal flips and random
shifts of up to one pixel for the first 72 of 96 epochs; the last 24 train on the images
as they are, so the network fits the centred images again at the schedule's low rates.
No convolution, attention or patches.

Every setting was chosen on the 12,000-image validation split (benchmarks/results/
best_mlp_exploration.md, tenth study: 120 epochs of the 48,000 other images, the last 30
clean, +0.10 / +0.48 / +0.53 / +0.87 points over ``best_split``'s settings on four seeds).
This script runs ``best_long``: those settings refit on all 60,000 training images for 96
epochs, as many samples as the selected runs. The test set is read once per run.

Measured with the recipe's settings, seeds 0, 1, 2 (``--seed N --threads 1``, the three
runs at once on the 2 cores):
    test accuracy  0.9155 +- 0.0010 (mean +- sample std; seeds: 0.9152, 0.9146, 0.9166);
                   the issue's 91.5% goal for a single model, by 0.05 points on the mean
                   (seed 1 alone is 0.04 below it)
    wall time      2,666-2,701 s per run as measured: one thread each, three runs on two
                   cores, in an hour with 7-16% host steal; not the budget's measure
    budget         an epoch of best_long costs what one of best costs (11.9 s each,
                   alternating, 2 threads; benchmarks/bench_recipe_epochs.py), so its 96
                   epochs take 1.99x best's 48: ~690 s at the speed best ran at (344-346 s
                   alone); 1,137 s projected in the slow hour of that measurement (best:
                   573 s). Alone in that hour (seed 0, 2 threads, 1.6% steal):
                   1,177 s, over the 15 minutes, test 0.9153.
    best           the 48-epoch recipe without flips and shifts: 0.9127 +- 0.0007
                   (0.9135 +- 0.0015 over five seeds) in 344-346 s
    hardware       Intel Xeon @ 2.50GHz, 2 cores, CPU only
    torch          2.14.1+cu130 (CPU), Python 3.11
Per-seed numbers: benchmarks/results/best_long_seeds.json. Two threads run an epoch
~1.27x faster than one on an idle machine but collapse when another process uses the
cores; pass ``--threads 1`` on a busy machine.

Usage::

    python examples/fashion_mnist_best.py                  # seed 0, into runs/
    python examples/fashion_mnist_best.py --seeds 0 1 2 --out runs/best_long
"""

import sys

from fcnet.recipes import main

if __name__ == "__main__":
    sys.exit(main(["best_long", *sys.argv[1:]]))
