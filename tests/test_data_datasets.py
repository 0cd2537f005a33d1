"""MNIST-format data sets: discovery, integrity, the decoded cache, downloads.

Everything runs on tiny fake IDX files in ``tmp_path``; only the tests marked
``integration`` read the real Fashion-MNIST files. No test writes to the real user cache
(``XDG_CACHE_HOME`` is redirected) or reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import shutil
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch

import fcnet.data._discovery as discovery
from fcnet.data import KMNIST, MNIST, ArrayDataset, FashionMNIST, IdxFile, IdxImageDataset
from fcnet.data.idx import encode_idx
from fcnet.exceptions import DatasetFormatError, DatasetIntegrityError

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SIZES = {"train": 20, "test": 10}
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


# -- fake data ------------------------------------------------------------------------


def fake_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    n = SIZES[split]
    rng = np.random.default_rng(0 if split == "train" else 1)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def content(split: str, kind: int) -> bytes:
    return encode_idx(fake_arrays(split)[kind])


def write_fake(folder: Path, *, gz: bool = True, splits=("train", "test")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for kind, name in enumerate(FILES[split]):
            data = content(split, kind)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)
    return folder


def sha256s() -> dict[str, str]:
    return {
        name: hashlib.sha256(content(split, kind)).hexdigest()
        for split, names in FILES.items()
        for kind, name in enumerate(names)
    }


def gz_md5s() -> dict[str, str]:
    return {
        name: hashlib.md5(gzip.compress(content(split, kind), mtime=0)).hexdigest()
        for split, names in FILES.items()
        for kind, name in enumerate(names)
    }


def make_class(base=IdxImageDataset, *, sha256=None, md5=None, **attrs) -> type:
    """A data set class over the fake files, with the given known digests."""
    sha256 = sha256 or {}
    md5 = md5 or {}
    split_files = {
        split: tuple(IdxFile(n, sha256.get(n), md5.get(n)) for n in names)
        for split, names in FILES.items()
    }
    fields = {"split_files": split_files, "split_sizes": dict(SIZES), "mirrors": ()}
    if base is IdxImageDataset:  # a real class keeps its own names
        fields |= {
            "display_name": "Fake-MNIST",
            "folder_name": "fake-mnist",
            "torchvision_name": "FakeMNIST",
            "class_names": tuple(f"c{i}" for i in range(10)),
        }
    return type("FakeMNIST", (base,), {**fields, "system_dirs": (), **attrs})


@pytest.fixture
def Fake() -> type:
    return make_class(sha256=sha256s())


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Redirects the user cache, clears FCNET_DATA_DIR, and forbids the internet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FCNET_DATA_DIR", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    real_urlopen = discovery.urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        host = urllib.parse.urlsplit(url).hostname
        if host != "127.0.0.1":
            raise AssertionError(f"a test tried to reach {url}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(discovery.urllib.request, "urlopen", local_only)
    return tmp_path / "xdg" / "fcnet"


def cache_root(tmp_path: Path, name: str = "fake-mnist") -> Path:
    return tmp_path / "xdg" / "fcnet" / name


# -- loading --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_loads_split_from_root(tmp_path, Fake, gz, split):
    root = write_fake(tmp_path / "data", gz=gz)
    ds = Fake(split, root=root)
    images, labels = fake_arrays(split)
    assert isinstance(ds, ArrayDataset)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (SIZES[split], 28, 28)
    assert ds.labels.dtype == torch.int64
    np.testing.assert_array_equal(ds.images.numpy(), images)
    np.testing.assert_array_equal(ds.labels.numpy(), labels)
    assert len(ds) == SIZES[split]
    image, label = ds[3]
    assert torch.equal(image, torch.from_numpy(images[3])) and label == 3
    assert ds.classes == [f"c{i}" for i in range(10)]
    assert ds.folder == root and ds.split == split
    assert set(ds.checks.values()) == {"sha256"}
    json.dumps(ds.source)  # JSON-ready


def test_mixed_raw_and_gz_and_raw_preferred(tmp_path, Fake):
    root = write_fake(tmp_path / "data", gz=True, splits=("train",))
    (root / "train-images-idx3-ubyte").write_bytes(content("train", 0))
    ds = Fake("train", root=root)
    assert [p.name for p in ds.files] == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz"]
    np.testing.assert_array_equal(ds.images.numpy(), fake_arrays("train")[0])


@pytest.mark.parametrize("sub", ["fake-mnist", "FakeMNIST/raw"])
def test_root_subfolders_are_searched(tmp_path, Fake, sub):
    write_fake(tmp_path / "data" / sub)
    assert Fake("train", root=tmp_path / "data").folder == tmp_path / "data" / sub


def test_discovery_order_env_then_cache_then_system(tmp_path, monkeypatch, Fake):
    system = write_fake(tmp_path / "system")
    Sys = make_class(sha256=sha256s(), system_dirs=(str(system),))
    assert Sys("train").folder == system
    cache = write_fake(cache_root(tmp_path))
    assert Sys("train").folder == cache
    env = write_fake(tmp_path / "env" / "fake-mnist")
    monkeypatch.setenv("FCNET_DATA_DIR", str(tmp_path / "env"))
    assert Sys("train").folder == env
    # The env folder itself (no subfolder) also counts.
    monkeypatch.setenv("FCNET_DATA_DIR", str(system))
    assert Sys("train").folder == system


def test_explicit_root_is_exclusive(tmp_path, monkeypatch):
    Sys = make_class(sha256=sha256s(), system_dirs=(str(write_fake(tmp_path / "system")),))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="root argument"):
        Sys("train", root=tmp_path / "empty", download=False)


def test_empty_folder_error_lists_places_and_remedies(tmp_path, monkeypatch):
    Sys = make_class(
        sha256=sha256s(), system_dirs=(str(tmp_path / "nosys"),), install_hint="apt-get it"
    )
    (tmp_path / "envdir").mkdir()
    monkeypatch.setenv("FCNET_DATA_DIR", str(tmp_path / "envdir"))
    with pytest.raises(FileNotFoundError) as info:
        Sys("train", download=False)
    message = str(info.value)
    assert "Fake-MNIST 'train' files not found" in message
    assert f"{tmp_path / 'envdir'} ($FCNET_DATA_DIR): missing train-images-idx3-ubyte, " in message
    assert f"{cache_root(tmp_path)} (user cache folder): does not exist" in message
    assert f"{tmp_path / 'nosys'} (system datasets folder): does not exist" in message
    for remedy in ("pass root=", "set FCNET_DATA_DIR", "apt-get it", "download=True"):
        assert remedy in message


def test_fashion_mnist_not_found_suggests_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(tmp_path / "none"),))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST("test", download=False)


def test_missing_one_file_is_named(tmp_path, Fake):
    root = write_fake(tmp_path / "data")
    (root / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"data \(root argument\): missing train-labels"):
        Fake("train", root=root, download=False)


def test_bad_arguments(tmp_path, Fake):
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\], got 'val'"):
        Fake("val", root=tmp_path)
    with pytest.raises(TypeError, match="root must be a path or None, got int"):
        Fake("train", root=3)
    with pytest.raises(TypeError, match="download must be True or False, got 'yes'"):
        Fake("train", root=tmp_path, download="yes")
    with pytest.raises(ValueError, match="mirrors must hold URLs .* got 'nope'"):
        Fake("train", root=tmp_path, mirrors=["nope"])
    with pytest.raises(TypeError, match="mirrors must be a sequence of base URLs, got str"):
        Fake("train", root=tmp_path, mirrors="http://x/")


# -- integrity and format -------------------------------------------------------------


def flip_byte(data: bytes, position: int = -5) -> bytes:
    array = bytearray(data)
    array[position] ^= 0x01
    return bytes(array)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_flipped_byte_raises_integrity_error(tmp_path, Fake, gz):
    root = write_fake(tmp_path / "data", gz=gz)
    bad = flip_byte(content("train", 0))
    path = root / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(bad) if gz else bad)
    expected = sha256s()["train-images-idx3-ubyte"]
    actual = hashlib.sha256(bad).hexdigest()
    with pytest.raises(
        DatasetIntegrityError,
        match=f"{path}: sha256 of the uncompressed content is {actual}, expected {expected}",
    ):
        Fake("train", root=root)


def test_recompressed_copy_passes_content_check(tmp_path, Fake):
    root = write_fake(tmp_path / "data")
    path = root / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(content("train", 0), compresslevel=1, mtime=12345))
    assert Fake("train", root=root).checks["train-images-idx3-ubyte"] == "sha256"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-10], "truncated payload"),
        (lambda b: b"\x08" + b[1:], "bad magic number"),
    ],
    ids=["truncated", "magic"],
)
def test_damaged_file_raises_format_error(tmp_path, Fake, mutate, message):
    root = write_fake(tmp_path / "data", gz=False)
    path = root / "train-labels-idx1-ubyte"
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(DatasetFormatError, match=f"{path}: {message}"):
        Fake("train", root=root)


def _write_arrays(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train-images-idx3-ubyte").write_bytes(encode_idx(images))
    (root / "train-labels-idx1-ubyte").write_bytes(encode_idx(labels))


def test_wrong_count_raises_format_error(tmp_path):
    Unchecked = make_class()
    images, labels = fake_arrays("train")
    _write_arrays(tmp_path / "d", images, labels[:-1])
    with pytest.raises(DatasetFormatError, match="holds 20 images but .* holds 19 labels"):
        Unchecked("train", root=tmp_path / "d")


def test_wrong_split_size_raises_format_error(tmp_path):
    Unchecked = make_class(split_sizes={"train": 21, "test": 10})
    _write_arrays(tmp_path / "d", *fake_arrays("train"))
    with pytest.raises(DatasetFormatError, match="'train' split of Fake-MNIST has 21 examples"):
        Unchecked("train", root=tmp_path / "d")


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((3, 27, 28), np.uint8), np.zeros(3, np.uint8), r"shape \(N, 28, 28\)"),
        (np.zeros((3, 28, 28), np.float32), np.zeros(3, np.uint8), "expected uint8 images"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), "expected uint8 labels"),
        (np.zeros((3, 28, 28), np.uint8), np.array([0, 10, 1], np.uint8), "label 10 is out of"),
    ],
    ids=["size", "dtype", "labels-2d", "label-range"],
)
def test_unexpected_content_raises_format_error(tmp_path, images, labels, message):
    Unchecked = make_class(split_sizes=None)
    _write_arrays(tmp_path / "d", images, labels)
    with pytest.raises(DatasetFormatError, match=message):
        Unchecked("train", root=tmp_path / "d")


def test_verify_false_skips_digests_not_format(tmp_path, Fake):
    root = write_fake(tmp_path / "data", gz=False)
    path = root / "train-images-idx3-ubyte"
    path.write_bytes(flip_byte(path.read_bytes()))
    ds = Fake("train", root=root, verify=False)
    assert set(ds.checks.values()) == {"skipped"}
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetFormatError):
        Fake("train", root=root, verify=False, cache=False)


# -- MNIST and KMNIST: same machinery, their own names and digests ---------------------


def test_known_specs():
    assert FashionMNIST.class_names == tuple(FASHION_CLASSES)
    assert len(MNIST.class_names) == len(KMNIST.class_names) == 10
    for cls in (FashionMNIST, MNIST, KMNIST):
        assert cls.split_sizes == {"train": 60000, "test": 10000}
        names = [f.name for files in cls.split_files.values() for f in files]
        assert names == [n for pair in FILES.values() for n in pair]
        for f in (f for files in cls.split_files.values() for f in files):
            assert f.md5 is not None and len(f.md5) == 32
            assert f.sha256 is None or len(f.sha256) == 64
        assert cls.mirrors and all(m.endswith("/") for m in cls.mirrors)
    assert {FashionMNIST.folder_name, MNIST.folder_name, KMNIST.folder_name} == {
        "fashion-mnist",
        "mnist",
        "kmnist",
    }
    assert all(f.sha256 for files in FashionMNIST.split_files.values() for f in files)


@pytest.mark.parametrize("cls", [MNIST, KMNIST])
def test_mnist_family_checks_published_gz_md5(tmp_path, cls):
    root = write_fake(tmp_path / "data")
    expected = cls.split_files["train"][0].md5
    with pytest.raises(
        DatasetIntegrityError, match=f"md5 of the .gz file is .*, expected {expected}.*verify=False"
    ):
        cls("train", root=root)
    # The same machinery with the fake files' own md5s: the check passes.
    Small = make_class(base=cls, md5=gz_md5s(), split_sizes=None)
    ds = Small("train", root=root)
    assert set(ds.checks.values()) == {"md5"}
    assert ds.classes == list(cls.class_names)


@pytest.mark.parametrize("cls", [MNIST, KMNIST])
def test_mnist_family_raw_files_get_format_checks_only(tmp_path, cls):
    root = write_fake(tmp_path / "data", gz=False)
    with pytest.raises(DatasetFormatError, match="has 60000 examples, the file holds 20"):
        cls("train", root=root)
    Small = make_class(base=cls, md5=gz_md5s(), split_sizes=None)
    assert set(Small("train", root=root).checks.values()) == {"none"}


# -- decoded cache --------------------------------------------------------------------


def test_reload_comes_from_cache_and_matches(tmp_path, Fake):
    root = write_fake(tmp_path / "data")
    first = Fake("train", root=root)
    assert not first.from_cache
    decoded = cache_root(tmp_path) / "decoded"
    assert sorted(p.name for p in decoded.iterdir()) == [
        "train-images-idx3-ubyte.json",
        "train-images-idx3-ubyte.npy",
        "train-labels-idx1-ubyte.json",
        "train-labels-idx1-ubyte.npy",
    ]
    again = Fake("train", root=root)
    assert again.from_cache
    assert again.checks == first.checks
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert not list(root.glob("*.npy")), "the cache must not go next to the source"


def _npy_flip(path: Path) -> None:
    path.write_bytes(flip_byte(path.read_bytes(), -1))


@pytest.mark.parametrize(
    "damage",
    [
        _npy_flip,
        lambda p: p.write_bytes(p.read_bytes()[:-7]),
        lambda p: p.write_bytes(b"garbage"),
        lambda p: p.unlink(),
        lambda p: p.with_suffix(".json").write_text("{not json"),
        lambda p: p.with_suffix(".json").write_text(
            json.dumps({**json.loads(p.with_suffix(".json").read_text()), "blake2b": "0" * 32})
        ),
    ],
    ids=["flipped", "truncated", "garbage", "deleted", "bad-json", "wrong-digest"],
)
def test_damaged_cache_is_never_trusted(tmp_path, Fake, damage):
    root = write_fake(tmp_path / "data")
    Fake("train", root=root)
    damage(cache_root(tmp_path) / "decoded" / "train-images-idx3-ubyte.npy")
    rebuilt = Fake("train", root=root)
    assert not rebuilt.from_cache
    np.testing.assert_array_equal(rebuilt.images.numpy(), fake_arrays("train")[0])
    assert Fake("train", root=root).from_cache  # repaired


def test_changed_source_invalidates_cache(tmp_path, Fake):
    root = write_fake(tmp_path / "data", gz=False)
    Fake("train", root=root)
    path = root / "train-images-idx3-ubyte"
    path.write_bytes(flip_byte(path.read_bytes()))
    with pytest.raises(DatasetIntegrityError):
        Fake("train", root=root)


def test_unverified_cache_entry_is_not_used_when_verifying(tmp_path, Fake):
    root = write_fake(tmp_path / "data")
    Fake("train", root=root, verify=False)
    ds = Fake("train", root=root)
    assert not ds.from_cache and set(ds.checks.values()) == {"sha256"}
    assert Fake("train", root=root, verify=False).from_cache


def test_cache_false_writes_nothing(tmp_path, Fake):
    Fake("train", root=write_fake(tmp_path / "data"), cache=False)
    assert not cache_root(tmp_path).exists()


def test_unwritable_cache_still_loads(tmp_path, Fake):
    cache_root(tmp_path).mkdir(parents=True)
    (cache_root(tmp_path) / "decoded").write_text("a file where the folder should be")
    ds = Fake("train", root=write_fake(tmp_path / "data"))
    assert len(ds) == 20 and not ds.from_cache


# -- download -------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def copyfile(self, source, outputfile) -> None:
        if "/short/" in self.path:  # announces the whole file, sends half, hangs up
            data = source.read()
            outputfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().copyfile(source, outputfile)


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_Quiet, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_into_cache_folder_then_offline_reload(tmp_path, server):
    url, www = server
    write_fake(www / "good")
    Net = make_class(sha256=sha256s(), md5=gz_md5s(), mirrors=(url + "missing/", url + "good/"))
    ds = Net("train")
    assert ds.folder == cache_root(tmp_path)
    assert sorted(p.name for p in ds.folder.glob("*.gz")) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    np.testing.assert_array_equal(ds.images.numpy(), fake_arrays("train")[0])
    shutil.rmtree(www / "good")  # now found in the cache, no download needed
    assert Net("train").folder == cache_root(tmp_path)


def test_download_skips_mirror_with_bad_md5(tmp_path, server):
    url, www = server
    write_fake(www / "good")
    bad = write_fake(www / "bad")
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"junk"))
    Net = make_class(sha256=sha256s(), md5=gz_md5s(), mirrors=(url + "bad/", url + "good/"))
    assert len(Net("train")) == 20


def test_a_download_cut_short_is_refused_without_an_md5(tmp_path, server):
    url, www = server
    write_fake(www / "good")
    write_fake(www / "short")
    Net = make_class(sha256=None, md5=None, mirrors=(url + "short/", url + "good/"))
    ds = Net("train")  # the short copies fail, the next mirror serves whole ones
    np.testing.assert_array_equal(ds.images.numpy(), fake_arrays("train")[0])
    Short = make_class(sha256=None, md5=None, mirrors=(url + "short/",))
    with pytest.raises(FileNotFoundError, match=r"the connection ended after \d+ of \d+ bytes"):
        Short("train", root=tmp_path / "only-short")
    assert list((tmp_path / "only-short").glob("*.gz")) == []


def test_download_into_explicit_root(tmp_path, server):
    url, www = server
    write_fake(www)
    Net = make_class(sha256=sha256s(), md5=gz_md5s())
    root = tmp_path / "mine"
    ds = Net("test", root=root, mirrors=[url])  # mirrors= overrides the class's list
    assert ds.folder == root and (root / "t10k-images-idx3-ubyte.gz").is_file()


def test_failed_download_reports_every_mirror_and_leaves_no_file(tmp_path, server):
    url, www = server
    bad = write_fake(www / "bad")
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"junk"))
    Net = make_class(sha256=sha256s(), md5=gz_md5s(), mirrors=(url + "missing/", url + "bad/"))
    with pytest.raises(FileNotFoundError) as info:
        Net("train")
    message = str(info.value)
    assert "Download failed: could not download train-images-idx3-ubyte.gz" in message
    assert f"{url}missing/train-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert f"{url}bad/train-images-idx3-ubyte.gz: md5 " in message
    # download=True was given: the way out is the network, not the same flag again.
    assert "check the network" in message and "pass download=True" not in message
    assert isinstance(info.value.__cause__, ConnectionError)
    assert not cache_root(tmp_path).exists()  # no partial file, nor the folder made for it
    # A mistyped root: the folders the download made are gone again, and said missing.
    typo = tmp_path / "typo" / "fmnist"
    with pytest.raises(FileNotFoundError, match=rf"{typo} \(root argument\): does not exist"):
        Net("train", root=typo)
    assert not (tmp_path / "typo").exists()


def test_fashion_mnist_download_checks_published_md5(tmp_path, server, monkeypatch):
    url, www = server
    write_fake(www)
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    with pytest.raises(FileNotFoundError, match="expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        FashionMNIST("train", mirrors=[url])


def test_no_mirror_and_nothing_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="Download failed: .*no mirror configured"):
        make_class()("train")


# -- the real data --------------------------------------------------------------------

needs_real_data = pytest.mark.skipif(
    not (SYSTEM_DIR / "train-labels-idx1-ubyte.gz").is_file(),
    reason="Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist",
)


@pytest.mark.integration
@needs_real_data
def test_real_fashion_mnist_train_and_test():
    train = FashionMNIST("train", download=False)
    assert train.folder == SYSTEM_DIR
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.shape == (60000,) and train.labels.dtype == torch.int64
    assert train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert train.classes == FASHION_CLASSES
    assert set(train.checks.values()) == {"sha256"}
    test = FashionMNIST("test", download=False)
    assert test.images.shape == (10000, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    reloaded = FashionMNIST("train", download=False)
    assert reloaded.from_cache and torch.equal(reloaded.images, train.images)


@pytest.mark.integration
@needs_real_data
def test_real_fashion_mnist_flipped_label_byte(tmp_path):
    root = tmp_path / "copy"
    root.mkdir()
    shutil.copy(SYSTEM_DIR / "t10k-images-idx3-ubyte.gz", root)
    labels = gzip.decompress((SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (root / "t10k-labels-idx1-ubyte").write_bytes(flip_byte(labels, 100))
    with pytest.raises(
        DatasetIntegrityError,
        match="t10k-labels-idx1-ubyte: sha256 .* expected 0402a96d92fd2663957122ceb108a494c",
    ):
        FashionMNIST("test", root=root, cache=False)
