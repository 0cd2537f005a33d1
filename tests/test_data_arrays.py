"""ArrayDataset, to_tensors and ImageFolder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from fcnet.data import ArrayDataset, ImageFolder, to_tensors
from fcnet.exceptions import DatasetFormatError

# -- ArrayDataset ---------------------------------------------------------------------


def test_numpy_inputs_are_shared_not_copied():
    x = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    y = np.array([0, 1, 2, 0, 1, 2])
    ds = ArrayDataset(x, y)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (6, 2, 2)
    assert np.shares_memory(ds.images.numpy(), x)
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == y.tolist()
    assert ds.classes == ["0", "1", "2"]
    assert ds.inputs is ds.images
    assert len(ds) == 6
    image, label = ds[-1]
    assert torch.equal(image, torch.from_numpy(x[5])) and label == 2 and type(label) is int


def test_dtypes_are_normalised():
    ds = ArrayDataset(np.ones((3, 4), dtype=np.float64), torch.tensor([0, 1, 1], dtype=torch.int32))
    assert ds.images.dtype == torch.float32
    assert ds.labels.dtype == torch.int64
    assert ArrayDataset(torch.ones(2, 3, dtype=torch.int16), [0, 1]).images.dtype == torch.int16


def test_read_only_and_byte_swapped_arrays_are_copied_quietly():
    x = np.arange(6, dtype=">i4").reshape(3, 2)
    frozen = np.zeros((3, 2), dtype=np.uint8)
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        swapped = ArrayDataset(x, np.array([0, 1, 2]))
        ArrayDataset(frozen, np.array([0, 1, 2]))
        ArrayDataset(frozen[::-1], np.array([0, 1, 2]))
    assert swapped.images.tolist() == x.tolist()


def test_explicit_classes():
    ds = ArrayDataset(np.zeros((2, 3)), np.array([0, 1]), classes=("cat", "dog", "bird"))
    assert ds.classes == ["cat", "dog", "bird"]


@pytest.mark.parametrize(
    ("inputs", "labels", "classes", "error", "message"),
    [
        (np.zeros((3, 2)), np.zeros(2, int), None, ValueError, "same length, got 3 inputs and 2"),
        (np.zeros((0, 2)), np.zeros(0, int), None, ValueError, "is empty: need at least 1"),
        (np.zeros((2, 2)), np.zeros((2, 1), int), None, ValueError, r"1-D .* shape \(2, 1\)"),
        (np.zeros((2, 2)), np.zeros(2), None, TypeError, "integer class indices, got dtype"),
        (np.zeros((2, 2)), np.array([0, -1]), None, ValueError, "labels must be >= 0, got -1"),
        (np.zeros(2, dtype=object), np.zeros(2, int), None, TypeError, "numeric dtype"),
        ("abc", np.zeros(2, int), None, TypeError, "a torch.Tensor or a numpy array, got str"),
        (torch.zeros(2, dtype=torch.bool), [0, 1], None, TypeError, "real numeric dtype"),
        (np.zeros((2, 2)), np.array([0, 2]), ["a", "b"], ValueError, "labels go up to 2"),
        (np.zeros((2, 2)), np.array([0, 1]), "ab", TypeError, "sequence of str, got str"),
        (np.zeros((2, 2)), np.array([0, 1]), ["a", 1], TypeError, "str names, got 1"),
    ],
    ids=[
        "length",
        "empty",
        "labels-2d",
        "float-labels",
        "negative",
        "object",
        "str",
        "bool",
        "few-classes",
        "classes-str",
        "classes-int",
    ],
)
def test_array_dataset_validation(inputs, labels, classes, error, message):
    with pytest.raises(error, match=message):
        ArrayDataset(inputs, labels, classes)


def test_getitem_errors():
    ds = ArrayDataset(np.zeros((2, 2)), np.array([0, 1]))
    with pytest.raises(IndexError, match="index 2 is out of range .* length 2"):
        ds[2]
    with pytest.raises(TypeError, match="index must be an integer, got slice"):
        ds[0:1]
    assert ds[np.int64(1)][1] == 1


# -- to_tensors -----------------------------------------------------------------------


def test_to_tensors_array_dataset_is_identity():
    ds = ArrayDataset(torch.zeros(3, 2, dtype=torch.uint8), torch.tensor([0, 1, 0]))
    x, y = to_tensors(ds)
    assert x is ds.images and y is ds.labels


def test_to_tensors_pair_of_numpy_shares_memory():
    x = np.zeros((4, 3), dtype=np.float32)
    y = np.array([1, 0, 1, 0], dtype=np.uint8)
    tx, ty = to_tensors((x, y))
    assert np.shares_memory(tx.numpy(), x)
    assert ty.dtype == torch.int64
    tx, ty = to_tensors([torch.ones(4, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 3])])
    assert tx.dtype == torch.float32


def test_to_tensors_tensor_dataset():
    x, y = torch.rand(5, 3), torch.tensor([0, 1, 2, 3, 4])
    tx, ty = to_tensors(TensorDataset(x, y))
    assert tx is x and torch.equal(ty, y)


class _Squares(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.full((2, 2), float(i)), i % 3


def test_to_tensors_materialises_generic_dataset():
    x, y = to_tensors(_Squares(2500))
    assert x.shape == (2500, 2, 2) and y.shape == (2500,) and y.dtype == torch.int64
    assert x[2049, 0, 0].item() == 2049.0 and y[2049].item() == 2049 % 3


class _Lonely(Dataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return torch.zeros(2)


class _Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(2), 0


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (42, TypeError, "train must be an fcnet data set.*got int"),
        ((np.zeros(3),), TypeError, "train must be an .inputs, labels. pair, got a tuple of len"),
        ((np.zeros(3), [0, 1, 2]), TypeError, "train labels must be a torch.Tensor or a numpy"),
        ((np.zeros((3, 2)), np.zeros(2, int)), ValueError, "train: inputs and labels must have"),
        ((np.zeros((0, 2)), np.zeros(0, int)), ValueError, "train is empty"),
        ((np.zeros(3), np.zeros(3)), TypeError, "train labels must hold integer class indices"),
        (TensorDataset(torch.zeros(2), torch.zeros(2), torch.zeros(2)), TypeError, "of 2 tensors"),
        (_Lonely(), TypeError, "train must yield .input, label. pairs"),
        (_Stream(), TypeError, "got _Stream"),
        (_Squares(0), ValueError, "train is empty"),
    ],
    ids=[
        "int",
        "one",
        "list-labels",
        "length",
        "empty",
        "float-labels",
        "three",
        "single",
        "iterable",
        "empty-ds",
    ],
)
def test_to_tensors_errors_name_the_argument(data, error, message):
    with pytest.raises(error, match=message):
        to_tensors(data, name="train")


# -- ImageFolder ----------------------------------------------------------------------


def _save(path, array, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode if array.ndim == 2 else "RGB").save(path)


def test_image_folder_loads_converts_and_resizes(tmp_path):
    _save(tmp_path / "b_dog" / "1.png", np.full((28, 28), 200, np.uint8))
    _save(tmp_path / "b_dog" / "0.png", np.full((28, 28), 100, np.uint8))
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 1] = 255  # pure green: luminance 0.587 * 255 = 150
    _save(tmp_path / "a_cat" / "x.PNG", rgb)
    (tmp_path / "a_cat" / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden").mkdir()
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["a_cat", "b_dog"]
    assert ds.labels.tolist() == [0, 1, 1]
    assert [p.name for p in ds.files] == ["x.PNG", "0.png", "1.png"]
    assert ds.images.shape == (3, 28, 28) and ds.images.dtype == torch.uint8
    assert int(ds.images[0, 14, 14]) == 150
    assert ds.images[1].unique().tolist() == [100] and ds.images[2].unique().tolist() == [200]
    small = ImageFolder(tmp_path, size=(7, 5))
    assert small.images.shape == (3, 7, 5)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="has no class subfolders"):
        ImageFolder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty' holds no image"):
        ImageFolder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetFormatError, match="broken.png: cannot be read as an image"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match=r"size must be \(height, width\).* got \(28, 0\)"):
        ImageFolder(tmp_path, size=(28, 0))
