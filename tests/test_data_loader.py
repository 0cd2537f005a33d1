"""DeviceLoader and the batch augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnet.data import Compose, DeviceLoader, RandomErasing, RandomFlip, RandomShift
from fcnet.data import loader as loader_module

CUDA = torch.cuda.is_available()


def _data(n=10, shape=(4, 5), dtype=torch.uint8):
    x = torch.arange(n * int(np.prod(shape))).reshape(n, *shape).remainder(251).to(dtype)
    return x, torch.arange(n) % 3


# -- DeviceLoader ---------------------------------------------------------------------


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [4, 4, 2]), (True, [4, 4])])
def test_batches_cover_the_epoch_once(drop_last, sizes):
    x, y = _data()
    loader = DeviceLoader(x, y, 4, drop_last=drop_last, seed=1)
    assert len(loader) == len(sizes)
    batches = list(loader.batches(0))
    assert [len(b[0]) for b in batches] == sizes
    seen = torch.cat([b[1] for b in batches])
    order = loader.order(0)
    assert torch.equal(seen, y[order[: sum(sizes)]])
    for bx, by in batches:
        assert bx.dtype == torch.uint8
        # Each input still belongs with its label.
        rows = [int(torch.nonzero((x == row).all(1).all(1))[0]) for row in bx]
        assert torch.equal(by, y[rows])
    assert sorted(order.tolist()) == list(range(10))
    assert loader.num_samples == sum(sizes)


@pytest.mark.parametrize("gather_bytes", [1, 3 * 9 * 20, 1 << 20])
@pytest.mark.parametrize(("drop_last", "start"), [(False, 0), (True, 0), (False, 5), (True, 7)])
def test_chunked_gather_gives_the_per_batch_gather(monkeypatch, gather_bytes, drop_last, start):
    # Shuffled batches are cut from chunks of several batches; whatever the chunk size
    # and resume point, each batch must be exactly order[lo:hi] of the inputs.
    monkeypatch.setattr(loader_module, "_GATHER_BYTES", gather_bytes)
    x, y = _data(83)
    loader = DeviceLoader(x, y, 9, drop_last=drop_last, seed=4)
    order = loader.order(1)
    batches = list(loader.batches(1, start=start))
    assert len(batches) == len(loader) - start
    for b, (bx, by) in enumerate(batches, start):
        index = order[b * 9:(b + 1) * 9]
        assert torch.equal(bx, x[index]) and torch.equal(by, y[index])


def test_order_is_a_pure_function_of_seed_and_epoch():
    x, y = _data(100)
    a = DeviceLoader(x, y, 8, seed=5)
    b = DeviceLoader(x, y, 8, seed=5)
    assert torch.equal(a.order(3), b.order(3))
    assert not torch.equal(a.order(3), a.order(4))
    assert not torch.equal(a.order(3), DeviceLoader(x, y, 8, seed=6).order(3))
    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(a.order(3), b.order(3))
    assert torch.equal(DeviceLoader(x, y, 8, shuffle=False).order(2), torch.arange(100))


def test_iter_advances_epoch():
    x, y = _data(20)
    loader = DeviceLoader(x, y, 5, seed=0)
    first = [b[1] for b in loader]
    second = [b[1] for b in loader]
    assert loader.epoch == 2
    assert torch.equal(torch.cat(first), y[loader.order(0)])
    assert torch.equal(torch.cat(second), y[loader.order(1)])


def test_resume_mid_epoch_gives_identical_augmented_batches():
    x, y = _data(50, (6, 6))
    aug = Compose([RandomFlip(), RandomShift(2), RandomErasing(p=1.0)])
    loader = DeviceLoader(x, y, 8, seed=9, augment=aug)
    full = list(loader.batches(2))
    resumed = list(DeviceLoader(x, y, 8, seed=9, augment=aug).batches(2, start=3))
    assert len(resumed) == len(full) - 3
    for (fx, fy), (rx, ry) in zip(full[3:], resumed, strict=True):
        assert torch.equal(fx, rx) and torch.equal(fy, ry)
    assert not torch.equal(full[0][0], x[loader.order(2)[:8]])  # augmentation did happen


def test_each_batch_and_epoch_gets_its_own_augmentation():
    x = torch.full((32, 8, 8), 9, dtype=torch.uint8)  # identical images: only the aug differs
    loader = DeviceLoader(x, torch.zeros(32, dtype=torch.int64), 16, augment=RandomErasing(1.0))
    e0, e1 = list(loader.batches(0)), list(loader.batches(1))
    assert not torch.equal(e0[0][0], e0[1][0])
    assert not torch.equal(e0[0][0], e1[0][0])
    assert torch.equal(e0[1][0], next(loader.batches(0, start=1))[0])


def test_no_shuffle_batches_are_views_in_order():
    x, y = _data(10)
    batches = list(DeviceLoader(x, y, 4, shuffle=False).batches(0))
    assert torch.equal(torch.cat([b[0] for b in batches]), x)
    assert batches[1][0].data_ptr() == x[4:].data_ptr()


def test_flat_inputs_are_augmented_through_image_shape():
    x, y = _data(6, (3, 4))
    flat = x.reshape(6, 12)
    loader = DeviceLoader(flat, y, 6, shuffle=False, augment=RandomFlip(p=1.0), image_shape=(3, 4))
    bx, _ = next(iter(loader))
    assert bx.shape == (6, 12)
    assert torch.equal(bx, x.flip(-1).reshape(6, 12))


def test_numpy_inputs_are_accepted():
    loader = DeviceLoader(np.zeros((5, 2), np.float64), np.array([0, 1, 0, 1, 0]), 2)
    bx, by = next(iter(loader))
    assert bx.dtype == torch.float32 and by.dtype == torch.int64


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer, got float"),
        ({"batch_size": 11, "drop_last": True}, ValueError, "leaves no batch for 10 samples"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
        ({"augment": 3}, TypeError, "augment must be a callable"),
        ({"flat": True, "augment": RandomFlip()}, ValueError, r"needs image_shape=\(H, W\)"),
        ({"flat": True, "image_shape": (4, 4)}, ValueError, r"image_shape \(4, 4\) does not fit"),
        ({"image_shape": (0, 20)}, ValueError, "positive integers, got"),
    ],
)
def test_loader_validation(kwargs, error, message):
    x, y = _data(10)
    if kwargs.pop("flat", False):
        x = x.reshape(10, 20)
    kwargs.setdefault("batch_size", 4)
    with pytest.raises(error, match=message):
        DeviceLoader(x, y, **kwargs)


def test_batches_argument_validation():
    loader = DeviceLoader(*_data(10), 4)
    with pytest.raises(ValueError, match=r"start must be in \[0, 3\], got 4"):
        loader.batches(0, start=4)
    with pytest.raises(ValueError, match="epoch must be >= 0, got -1"):
        loader.batches(-1)
    with pytest.raises(ValueError, match="same length"):
        DeviceLoader(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64), 1)


# -- augmentations --------------------------------------------------------------------


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _shift_reference(image: torch.Tensor, dy: int, dx: int, border: bool) -> torch.Tensor:
    h, w = image.shape[-2:]
    out = torch.zeros_like(image)
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx
            if border:
                si, sj = min(max(si, 0), h - 1), min(max(sj, 0), w - 1)
            elif not (0 <= si < h and 0 <= sj < w):
                continue
            out[..., i, j] = image[..., si, sj]
    return out


@pytest.mark.parametrize("mode", ["zeros", "border"])
@pytest.mark.parametrize("shape", [(6, 5, 7), (6, 2, 5, 7)])
def test_random_shift_matches_per_image_reference(mode, shape):
    x = torch.randint(1, 255, shape, generator=_gen(1), dtype=torch.uint8)
    out = RandomShift(2, padding_mode=mode)(x, _gen(2))
    shifts = torch.randint(-2, 3, (2, 6), generator=_gen(2))  # what the augment drew
    assert out.shape == x.shape and out.dtype == x.dtype
    for k in range(6):
        expected = _shift_reference(x[k], int(shifts[0, k]), int(shifts[1, k]), mode == "border")
        assert torch.equal(out[k], expected)


def test_random_flip():
    x = torch.rand(8, 3, 4, generator=_gen())
    assert torch.equal(RandomFlip(p=1.0)(x, _gen()), x.flip(-1))
    assert torch.equal(RandomFlip(p=0.0)(x, _gen()), x)
    mixed = RandomFlip(p=0.5)(x, _gen(3))
    flipped = [torch.equal(mixed[i], x[i].flip(-1)) for i in range(8)]
    kept = [torch.equal(mixed[i], x[i]) for i in range(8)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


def test_random_erasing_boxes():
    x = torch.full((200, 1, 10, 12), 7, dtype=torch.uint8)
    out = RandomErasing(p=1.0, scale=(0.1, 0.3), value=0)(x, _gen())
    assert out.shape == x.shape and out.dtype == torch.uint8
    erased = (out == 0).sum(dim=(1, 2, 3)).float() / 120
    assert erased.min() > 0.03 and erased.max() <= 0.45
    for k in range(20):  # each erased region is one rectangle
        rows = (out[k, 0] == 0).any(1).nonzero().flatten()
        cols = (out[k, 0] == 0).any(0).nonzero().flatten()
        box = out[k, 0, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert (box == 0).all() and int((out[k] == 0).sum()) == box.numel()
    assert torch.equal(RandomErasing(p=0.0)(x, _gen()), x)
    half = RandomErasing(p=0.5)(x, _gen())
    hit = (half == 0).flatten(1).any(1).float().mean()
    assert 0.35 < hit < 0.65
    floats = RandomErasing(p=1.0, value=-1.5)(x.float(), _gen())
    assert (floats == -1.5).any()


def test_augment_validation():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        RandomFlip(1.5)
    with pytest.raises(ValueError, match="max_shift must be >= 0, got -1"):
        RandomShift(-1)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros' or 'border'"):
        RandomShift(2, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"scale must satisfy 0.0 < min <= max <= 1.0"):
        RandomErasing(scale=(0.5, 0.1))
    with pytest.raises(TypeError, match="ratio must be a .min, max. pair"):
        RandomErasing(ratio=3)
    with pytest.raises(ValueError, match=r"integer in \[0, 255\] for a torch.uint8 batch"):
        RandomErasing(p=1.0, value=300)(torch.zeros(2, 4, 4, dtype=torch.uint8), _gen())
    with pytest.raises(ValueError, match=r"batch of images \(N, H, W\)"):
        RandomFlip()(torch.zeros(4, 4), _gen())
    with pytest.raises(TypeError, match="augments must hold callables .* at position 1"):
        Compose([RandomFlip(), 3])


def test_empty_batch_and_repr():
    empty = torch.zeros(0, 4, 4)
    assert RandomErasing()(empty, _gen()).shape == (0, 4, 4)
    assert "RandomShift(max_shift=2" in repr(Compose([RandomShift()]))


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x, y = _data(300, (28, 28))
    aug = Compose([RandomFlip(), RandomShift(2), RandomErasing()])
    cpu = DeviceLoader(x, y, 64, seed=3, augment=aug)
    gpu = DeviceLoader(x, y, 64, seed=3, augment=aug, device="cuda")
    assert gpu.inputs.device.type == "cuda" and gpu.inputs.dtype == torch.uint8
    assert torch.equal(cpu.order(1), gpu.order(1).cpu())
    for (cx, cy), (gx, gy) in zip(cpu.batches(1), gpu.batches(1), strict=True):
        assert gx.device.type == "cuda"
        assert torch.equal(cx, gx.cpu()) and torch.equal(cy, gy.cpu())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_is_a_value_error_that_says_so():
    with pytest.raises(ValueError, match=r"device 'cuda' was requested but CUDA is not "
                                         r"available"):
        DeviceLoader(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), 2, device="cuda")
