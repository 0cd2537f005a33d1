"""fcnet's best pure MLP on Fashion-MNIST: only fully-connected layers.

784 -> 1024 -> 1024 -> 1024 -> 10; dropout 0.1 on the input pixels, and each hidden layer
is Linear -> BatchNorm1d -> GELU -> Dropout 0.3. Pixels standardised with the training
mean and std (0.2860, 0.3530), cross-entropy with label smoothing 0.1, AdamW (peak lr 3e-3,
weight decay 0.05 on the weight matrices) with a one-cycle schedule (10% warm-up, cosine
down to 3e-5), batches of 512, and an exponential moving average of the weights (decay
0.999) that replaces them at the end. No convolution, attention or patches.

Every setting was chosen on the 12,000-image validation split (recipe ``best_split``,
60 epochs of the 48,000 other images; benchmarks/results/best_mlp_exploration.md). This
script runs ``best``: the same settings refit on all 60,000 training images for 48
epochs, as many samples as the selected run. The test set is read once per run.

Measured with fcnet's defaults (1 CPU thread; two runs side by side on the 2 cores),
seeds 0, 1, 2:
    test accuracy  0.9144 +- 0.0010 (mean +- sample std; seeds: 0.9137, 0.9155, 0.9140);
                   the issue's 91.5% goal for a single model is missed by 0.06 points
    wall time      765-812 s per run (48 epochs, data loading and figures included),
                   about 15.5 s per epoch of 60,000 images with one thread; seed 0 rerun
                   alone in a slower hour (host steal ~9%) took 947 s, over the 15-minute
                   goal, and gave the same test accuracy, 0.9137
    best_split     0.9099 +- 0.0008 test, 0.9168 validation (EMA weights), 856-926 s
    ensemble       the three models' averaged probabilities: 0.9169 (2,366 s of training)
    hardware       Intel Xeon @ 2.50GHz, 2 cores, CPU only
    torch          2.14.1+cu130 (CPU), Python 3.11
Per-seed numbers: benchmarks/results/best_seeds.json. On an idle machine
``--threads 2`` runs an epoch ~1.3x faster, but it is slower whenever anything else
uses the cores, so the recipe keeps the default of one thread that was measured.

Usage::

    python examples/fashion_mnist_best.py                  # seed 0, into runs/
    python examples/fashion_mnist_best.py --seeds 0 1 2 --out runs/best
"""

import sys

from fcnet.recipes import main

if __name__ == "__main__":
    sys.exit(main(["best", *sys.argv[1:]]))
