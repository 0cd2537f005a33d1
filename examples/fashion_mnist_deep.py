"""The reference notebook's deeper MLP on Fashion-MNIST, as the fcnet recipe ``deep``.

784 -> 392 -> 196 -> 98 -> 49 -> 10 with ReLU after every hidden layer and Dropout 0.25
after the first three, LogSoftmax + NLL, Adam lr 7e-4, 35 epochs of batch 64, pixels
normalised to [-1, 1], stratified 80/20 train/validation split; the weights of the
epoch with the lowest validation loss are kept and tested once. The notebook reports
88.65% test accuracy (about 15 minutes on an NVIDIA Quadro P5000 with its per-sample
torchvision pipeline).

Measured with the recipe's defaults (1 CPU thread), seeds 0, 1, 2, fcnet 0.1 on an Intel
Xeon @ 2.50GHz (fcnet 0.2 on an AMD EPYC: 0.8886 +- 0.0015 in 83-97 s per run,
benchmarks/results/deep_seeds_epyc.json):
    test accuracy  0.8903 +- 0.0026 (mean +- sample std; seeds: 0.8913, 0.8922, 0.8873);
                   validation 0.8982 on average
    wall time      165-200 s per run (35 epochs, data loading and figures included), with
                   another 1-thread run beside it on the 2 cores
    hardware       Intel(R) Xeon(R) Processor @ 2.50GHz, 2 cores, CPU only, 1 thread
    torch          2.14.1+cu130 (CPU), Python 3.11
Per-seed figures: benchmarks/results/deep_seeds.json; all recipes: docs/results.rst.

Usage::

    python examples/fashion_mnist_deep.py                      # seed 0, into runs/
    python examples/fashion_mnist_deep.py --seeds 0 1 2 --out runs/deep

Any option of ``fcnet-recipe`` works (``--help``). The run folder receives the model
(``model/``), ``history.json``, ``metrics.json`` and the figures ``curves.png``,
``confusion_matrix.png``, ``predictions.png`` and ``prediction.png``; the last line
printed is ``test_accuracy=0.XXXX``.
"""

import sys

from fcnet.recipes import main

if __name__ == "__main__":
    sys.exit(main(["deep", *sys.argv[1:]]))
