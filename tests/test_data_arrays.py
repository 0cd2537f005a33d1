"""ArrayDataset, to_tensors, as_input_tensor and ImageFolder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.v2 as T2
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset
from torchvision.datasets import FakeData

from fcnet.data import ArrayDataset, ImageFolder, to_tensors
from fcnet.data.arrays import as_input_tensor
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
        (np.zeros((2, 2)), np.array([0, 0.5]), None, ValueError, "class indices, got 0.5 in"),
        (np.zeros((2, 2)), np.array([0, -1]), None, ValueError, "labels must be >= 0, got -1"),
        (np.zeros(2, dtype=object), np.zeros(2, int), None, TypeError, "numeric dtype"),
        ("abc", np.zeros(2, int), None, TypeError, "or Series or a .nested. list.*, got str"),
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
        ((np.zeros(3), {0, 1, 2}), TypeError, "train labels must be a torch.Tensor, a numpy"),
        ((np.zeros((3, 2)), np.zeros(2, int)), ValueError, "train: inputs and labels must have"),
        ((np.zeros((0, 2)), np.zeros(0, int)), ValueError, "train is empty"),
        ((np.zeros(3), np.array([0, 1.5, 2])), ValueError, "train labels must hold integer class"),
        (TensorDataset(torch.zeros(2), torch.zeros(2), torch.zeros(2)), TypeError, "of 2 tensors"),
        (_Lonely(), TypeError, "train must yield .input, label. pairs"),
        (_Stream(), TypeError, "got _Stream"),
        (_Squares(0), ValueError, "train is empty"),
    ],
    ids=[
        "int",
        "one",
        "set-labels",
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


# -- to_tensors: lists, labels, Dataset samples ---------------------------------------


def test_to_tensors_accepts_pairs_of_lists():
    x, y = to_tensors(([[0.0, 1.0], [1.0, 0.0]], [0, 1]))
    assert x.dtype == torch.float32 and x.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert y.dtype == torch.int64 and y.tolist() == [0, 1]
    x, y = to_tensors([((1, 2), (3, 4), (5, 6)), (2, 0, 1)])
    assert x.shape == (3, 2) and y.tolist() == [2, 0, 1]
    x, y = to_tensors(([torch.zeros(2, 2), torch.ones(2, 2)], np.array([1, 0])))
    assert x.shape == (2, 2, 2) and x[1].sum() == 4
    ds = ArrayDataset([[1, 2], [3, 4]], [1, 0])
    assert ds.images.tolist() == [[1, 2], [3, 4]] and ds.labels.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (([[0.0, 1.0], [1.0]], [0, 1]), "train inputs must be a rectangular .nested. list"),
        (([torch.zeros(2), torch.zeros(3)], [0, 1]), "list of tensors of different shapes"),
        ((["a", "b"], [0, 1]), "train inputs must have a numeric dtype"),
    ],
    ids=["ragged", "tensor-shapes", "text-inputs"],
)
def test_to_tensors_refuses_bad_lists(data, message):
    with pytest.raises((TypeError, ValueError), match=message):
        to_tensors(data, name="train")


def test_whole_number_float_labels_become_int64():
    _, y = to_tensors((np.zeros((3, 2)), np.array([1.0, 2.0, 0.0])))
    assert y.dtype == torch.int64 and y.tolist() == [1, 2, 0]
    _, y = to_tensors((torch.zeros(2, 2), torch.tensor([1.0, 0.0], dtype=torch.float16)))
    assert y.tolist() == [1, 0]
    assert ArrayDataset(np.zeros((2, 2)), [0.0, 3.0]).classes == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (np.array([0.0, 1.5, 2.0]), ValueError, r"class indices, got 1.5 in a torch.float64"),
        (np.array([0.0, np.nan, 2.0]), ValueError, r"class indices, got nan"),
        (np.array(["cat", "dog", "cat"]), TypeError, r"are strings \(such as 'cat'\)"),
        (np.array(["cat", "dog", "cat"], dtype=object), TypeError, r"np.unique\(labels, return"),
        (["cat", "dog", "cat"], TypeError, r"map them to class indices 0..K-1"),
        (np.eye(3)[[0, 2, 1]], ValueError, r"look one-hot encoded .*pass y.argmax\(1\)"),
        (torch.eye(3, dtype=torch.bool), ValueError, r"one-hot.*y.argmax\(1\)"),
        (np.array([[0], [1], [2]]), ValueError, r"1-D .*flattened with y.reshape\(-1\)"),
        (np.array([[0, 1], [1, 1], [1, 0]]), ValueError, r"must be 1-D .*shape \(3, 2\)$"),
        (np.array([True, False, True]), TypeError, r"integer class indices, got dtype torch.bool"),
    ],
    ids=[
        "fraction",
        "nan",
        "str",
        "object-str",
        "list-str",
        "one-hot",
        "one-hot-bool",
        "column",
        "two-hot",
        "bool",
    ],
)
def test_label_errors_say_how_to_fix(labels, error, message):
    with pytest.raises(error, match=message):
        to_tensors((np.zeros((3, 2)), labels), name="train")
    with pytest.raises(error, match=message):
        ArrayDataset(np.zeros((3, 2)), labels)


class _Samples(Dataset):
    """A Dataset returning the given samples as they are."""

    def __init__(self, samples, transform=None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        if self.transform is None:
            return self.samples[i]
        x, *rest = self.samples[i]
        return (self.transform(x), *rest)


def test_dataset_samples_may_be_arrays_lists_and_numbers():
    samples = [(np.array([1, 2], np.int16), np.int64(1)), ([3, 4], 0.0), ((5, 6), torch.tensor(2))]
    x, y = to_tensors(_Samples(samples))
    assert x.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [1, 0, 2]
    x, y = to_tensors(_Samples([(0.5, 1), (1.5, 0)]))
    assert x.tolist() == [0.5, 1.5] and y.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("samples", "error", "message"),
    [
        ([(torch.zeros(2), 0, "id-7")], TypeError, r"train\[0\] is a tuple of 3 items; a sample"),
        ([{"image": torch.zeros(2), "label": 0}], TypeError, r"train\[0\] is a dict \(keys 'im"),
        ([(torch.zeros(2), "cat")], TypeError, r"labels are strings \(such as 'cat' at train\[0"),
        ([(torch.zeros(2), None)], TypeError, r"the label of train\[0\] is a NoneType"),
        ([(torch.zeros(2), 0.5)], ValueError, r"integer class indices, got 0.5"),
        ([("text", 0)], TypeError, r"the input of train\[0\] is a str; a sample must be an"),
        (
            [(torch.zeros(2), 0), (torch.zeros(3), 1)],
            ValueError,
            r"input of train\[1\] has shape \(3,\), but that of train\[0\] has \(2,\)",
        ),
        ([(torch.zeros(2), torch.tensor([0, 1]))], ValueError, r"look one-hot encoded"),
    ],
    ids=[
        "triple",
        "dict",
        "str-label",
        "no-label",
        "fraction-label",
        "str-input",
        "shapes",
        "one-hot",
    ],
)
def test_dataset_sample_errors_say_what_a_sample_must_be(samples, error, message):
    with pytest.raises(error, match=message):
        to_tensors(_Samples(samples), name="train")


def test_dataset_of_pil_images_points_to_pil_to_tensor():
    with pytest.raises(TypeError, match=r"train yields PIL images .*PILToTensor\(\).*ImageFolder"):
        to_tensors(_images(), name="train")


def _images(transform=None) -> FakeData:
    return FakeData(size=6, image_size=(1, 4, 4), num_classes=3, transform=transform)


_RANDOM_DATASETS = {
    "compose": (
        lambda: _images(T.Compose([T.ToTensor(), T.RandomHorizontalFlip()])),
        "RandomHorizontalFlip",
    ),
    "subset": (lambda: Subset(_images(T.RandomCrop(3)), [0, 2]), "RandomCrop"),
    "nested": (
        lambda: Subset(
            Subset(_images(T.Compose([T.RandomApply([T.ColorJitter(0.5)]), T.ToTensor()])), [0]),
            [0],
        ),
        "RandomApply, ColorJitter",
    ),
    "concat-sequential": (
        lambda: ConcatDataset(
            [_images(T.ToTensor()), _images(torch.nn.Sequential(T.RandomVerticalFlip()))]
        ),
        "RandomVerticalFlip",
    ),
    "v2": (lambda: _images(T2.Compose([T2.ToImage(), T2.RandomErasing(p=1.0)])), "RandomErasing"),
}


@pytest.mark.parametrize("case", list(_RANDOM_DATASETS))
def test_random_torchvision_transforms_are_refused(case):
    make, names = _RANDOM_DATASETS[case]
    message = (
        rf"train applies random transforms \({names}\)\. .*frozen into one fixed copy.*"
        r"Drop the random transforms.*Trainer\(augment=fcnet.data.RandomFlip\(\), \.\.\.\)"
        r".*RandomShift and RandomErasing"
    )
    with pytest.raises(ValueError, match=message):
        to_tensors(make(), name="train")


def test_random_transform_seen_by_reading_twice():
    samples = [(torch.zeros(3), i % 2) for i in range(4)]
    noisy = _Samples(samples, transform=lambda x: x + torch.rand(3))
    state = torch.get_rng_state()
    with pytest.raises(ValueError, match=r"reading its first sample twice gave two different"):
        to_tensors(noisy, name="train")
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is untouched


def test_deterministic_transforms_keep_working():
    plain = _images(T.PILToTensor())
    normalised = _images(T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    x, y = to_tensors(Subset(normalised, [1, 3, 5]))
    assert x.shape == (3, 1, 4, 4) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw, labels = to_tensors(plain)
    assert raw.dtype == torch.uint8 and raw.shape == (6, 1, 4, 4)
    assert torch.allclose(x, (raw[[1, 3, 5]] / 255 - 0.5) / 0.5, atol=1e-6)
    assert labels[[1, 3, 5]].tolist() == y.tolist()
    # NaN inputs are the same on both reads: no false alarm.
    assert to_tensors(_Samples([(torch.tensor([float("nan")]), 0)]))[0].isnan().all()


# -- as_input_tensor ------------------------------------------------------------------


def test_as_input_tensor_takes_any_numpy_layout_quietly():
    big_endian = np.arange(6, dtype=">f4").reshape(3, 2)
    read_only = np.arange(6, dtype=np.float32).reshape(3, 2)
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for array in (big_endian, read_only, read_only[::-1], big_endian[:, ::-1]):
            tensor = as_input_tensor(array)
            assert tensor.dtype == torch.float32 and tensor.tolist() == array.tolist()
            (tensor * 2).sum()  # usable: no byte-order error
    shared = np.zeros((2, 3), np.float32)
    assert np.shares_memory(as_input_tensor(shared).numpy(), shared)


def test_as_input_tensor_dtypes_and_lists():
    t = torch.zeros(2, 3, dtype=torch.uint8)
    assert as_input_tensor(t) is t
    assert as_input_tensor(torch.zeros(2, dtype=torch.float64)).dtype == torch.float32
    assert as_input_tensor(np.zeros((2, 2), np.float64)).dtype == torch.float32
    assert as_input_tensor(np.zeros((2, 2), np.int16)).dtype == torch.int16
    nested = as_input_tensor([[0.5, 1.0], [2.0, 3.0]])
    assert nested.dtype == torch.float32 and nested.tolist() == [[0.5, 1.0], [2.0, 3.0]]


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        ("pixels", TypeError, r"^images must be a torch.Tensor, a numpy array, a pandas "
                              r"DataFrame or Series or a .nested. list"),
        ({"a": 1}, TypeError, r"^images must be .*, got dict"),
        (np.array(["a", "b"]), TypeError, r"^images must have a numeric dtype, got numpy <U1"),
        (np.zeros(2, dtype=object), TypeError, r"^images must have a numeric dtype"),
        (np.zeros(2, dtype=bool), TypeError, r"^images must have a real numeric dtype"),
        (torch.zeros(2, dtype=torch.complex64), TypeError, r"^images must have a real numeric"),
        (torch.tensor(1.0), ValueError, r"^images must have a leading sample dimension"),
        ([[1.0, 2.0], [3.0]], ValueError, r"^images must be a rectangular"),
    ],
    ids=["str", "dict", "text", "object", "bool", "complex", "scalar", "ragged"],
)
def test_as_input_tensor_errors_name_the_argument(x, error, message):
    with pytest.raises(error, match=message):
        as_input_tensor(x, name="images")


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


def _save_mode(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.mark.parametrize(
    ("name", "array", "expected"),
    [
        ("grey16.png", np.full((6, 6), 32768, np.uint16), 128),
        ("white16.png", np.full((6, 6), 65535, np.uint16), 255),
        ("grey16.tiff", np.full((6, 6), 32768, np.uint16), 128),
        ("grey32.tiff", np.full((6, 6), 32768, np.int32), 128),
        ("half.tiff", np.full((6, 6), 0.5, np.float32), 128),
        ("bright.tiff", np.full((6, 6), 2.5, np.float32), 255),
        ("negative.tiff", np.full((6, 6), -1.0, np.float32), 0),
    ],
)
@pytest.mark.parametrize("color", [False, True])
def test_image_folder_scales_by_the_pixel_format(tmp_path, name, array, expected, color):
    path = tmp_path / "grey" / name
    _save_mode(path, Image.fromarray(array))
    with Image.open(path) as check:  # the file really is in the wide format
        assert check.mode in ("I;16", "I", "F")
    ds = ImageFolder(tmp_path, size=(6, 6), color=color)
    assert ds.images.dtype == torch.uint8
    assert ds.images.unique().tolist() == [expected]
    ds = ImageFolder(tmp_path, size=(3, 3), color=color)  # resized too
    assert ds.images.unique().tolist() == [expected]


def test_image_folder_reads_nested_sub_folders_in_a_fixed_order(tmp_path):
    for rel, value in [
        ("cat/b.png", 10),
        ("cat/a/z.png", 20),
        ("cat/a/deeper/y.png", 30),
        ("cat/.hidden/x.png", 40),
        ("dog/2023/d.png", 50),
    ]:
        _save(tmp_path / rel, np.full((4, 4), value, np.uint8))
    ds = ImageFolder(tmp_path, size=(4, 4))
    rel = [p.relative_to(tmp_path).as_posix() for p in ds.files]
    assert rel == ["cat/a/deeper/y.png", "cat/a/z.png", "cat/b.png", "dog/2023/d.png"]
    assert ds.labels.tolist() == [0, 0, 0, 1]
    assert ds.images[:, 0, 0].tolist() == [30, 20, 10, 50]
    assert ds.classes == ["cat", "dog"]


def test_image_folder_color(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 1] = 255
    rgb[0, 0] = (10, 20, 30)
    _save(tmp_path / "green" / "g.png", rgb)
    _save(tmp_path / "grey" / "k.png", np.full((5, 7), 90, np.uint8))
    ds = ImageFolder(tmp_path, size=(5, 7), color=True)
    assert ds.images.shape == (2, 3, 5, 7) and ds.images.dtype == torch.uint8
    assert ds.images[0, :, 2, 3].tolist() == [0, 255, 0]
    assert ds.images[0, :, 0, 0].tolist() == [10, 20, 30]
    assert ds.images[1].unique().tolist() == [90]  # grayscale files get three equal channels
    assert ImageFolder(tmp_path, size=(5, 7)).images.shape == (2, 5, 7)
    with pytest.raises(TypeError, match="color must be True or False, got 'rgb'"):
        ImageFolder(tmp_path, color="rgb")


def test_wide_unsigned_inputs_become_int64():
    for dtype in (np.uint16, np.uint32, np.uint64):
        x, y = to_tensors((np.arange(12, dtype=dtype).reshape(4, 3), np.arange(4) % 2))
        assert x.dtype == torch.int64 and x.tolist() == np.arange(12).reshape(4, 3).tolist()
    with pytest.raises(ValueError, match=r"uint64 values up to .* beyond int64"):
        to_tensors((np.full((2, 3), 2**63, dtype=np.uint64), [0, 1]))
    big = torch.tensor([[2**63 + 5, 1]], dtype=torch.uint64)
    with pytest.raises(ValueError, match=r"uint64 values beyond int64"):
        as_input_tensor(big)
    assert as_input_tensor(torch.tensor([[7, 1]], dtype=torch.uint16)).dtype == torch.int64
