"""Data sets and batch loading for fcnet.

Data flows one way: an adapter (:class:`FashionMNIST`, :class:`MNIST`, :class:`KMNIST`,
:class:`ImageFolder`, :class:`ArrayDataset`) holds a data set in memory as two tensors;
:func:`train_val_split` divides it reproducibly; :class:`DeviceLoader` serves batches
from a copy on the training device, optionally augmented on whole batches
(:class:`RandomFlip`, :class:`RandomShift`, :class:`RandomErasing`, :class:`Compose`).
:func:`read_idx` is the strict reader behind the MNIST-style data sets.
"""

from fcnet.data.arrays import ArrayDataset, as_input_tensor, feature_norm, to_tensors
from fcnet.data.augment import BatchAugment, Compose, RandomErasing, RandomFlip, RandomShift
from fcnet.data.fashion_mnist import KMNIST, MNIST, FashionMNIST, IdxFile, IdxImageDataset
from fcnet.data.folder import ImageFolder
from fcnet.data.idx import decode_idx, read_idx, write_idx
from fcnet.data.loader import DeviceLoader
from fcnet.data.split import SplitSubset, train_val_split

__all__ = [
    "ArrayDataset",
    "BatchAugment",
    "Compose",
    "DeviceLoader",
    "FashionMNIST",
    "IdxFile",
    "IdxImageDataset",
    "ImageFolder",
    "KMNIST",
    "MNIST",
    "RandomErasing",
    "RandomFlip",
    "RandomShift",
    "SplitSubset",
    "as_input_tensor",
    "decode_idx",
    "feature_norm",
    "read_idx",
    "to_tensors",
    "train_val_split",
    "write_idx",
]
