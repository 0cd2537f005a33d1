"""The Python examples of the guide pages run, against the current API.

Every ``.. code-block:: python`` of a guide page is run, the page's blocks in order in one
namespace, in an empty working folder, so a later block may use what an earlier one
defined. Where a page's code uses objects it does not make (``model``, ``train``, a run
folder, image files), a setup below makes small ones first. Training is shortened
(``epochs=N`` becomes ``epochs=1``) and the page-specific shortenings in
``SUBSTITUTIONS`` must each match the page's text, so a changed example is noticed.

A block that cannot run here is marked in the page by an RST comment, invisible in the
built docs, on the line before its directive (a blank line between them)::

    .. skip-example: the reason it cannot run

    .. code-block:: python

Every such block is listed in ``EXPECTED_SKIPS`` with its reason; a new marker fails the
test until it is listed there.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDE_PAGES = ("quickstart", "models", "data", "checkpoints", "recipes", "sklearn",
               "distributed", "cli", "deployment", "performance")
SKIP_MARKER = ".. skip-example:"
EXPECTED_SKIPS = {
    "deployment": ["the client needs the service above listening on 127.0.0.1:8000"],
}
# Pages whose code reads the real Fashion-MNIST files.
READS_FASHION_MNIST = {"quickstart", "recipes"}
SUBSTITUTIONS = {
    "quickstart": [
        ('FashionMNIST(split="train")', '_first(FashionMNIST(split="train"), 3000)'),
        ('FashionMNIST(split="test")', '_first(FashionMNIST(split="test"), 1000)'),
    ],
    "recipes": [
        ('run_recipe(longer, out_dir="runs/deep50", seed=0)',
         'run_recipe(longer, out_dir="runs/deep50", seed=0, limit_train=2000, quiet=True)'),
    ],
    "sklearn": [
        # Worker processes would each import torch again: seconds for nothing here.
        ("n_jobs=2)", "n_jobs=1)"),
    ],
}
_EPOCHS = re.compile(r"\bepochs=\d+")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the directive
    code: str
    skip: str | None  # the reason given by the skip marker


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def python_blocks(page: str) -> list[Block]:
    """The page's ``code-block:: python`` blocks, dedented, with their skip markers."""
    lines = (DOCS / f"{page}.rst").read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        base = _indent(line)
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith(":"):  # directive options
            j += 1
        body = []
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
            body.append(lines[j])
            j += 1
        previous = next((p.strip() for p in reversed(lines[:i]) if p.strip()), "")
        skip = previous[len(SKIP_MARKER):].strip() if previous.startswith(SKIP_MARKER) else None
        blocks.append(Block(page, i + 1, textwrap.dedent("\n".join(body)).strip("\n"), skip))
    return blocks


def literal_blocks(page: str) -> list[str]:
    """The contents of the page's ``::`` literal blocks."""
    lines = (DOCS / f"{page}.rst").read_text(encoding="utf-8").splitlines()
    found = []
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("::") or line.lstrip().startswith(".."):
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        body = []
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > _indent(line)):
            body.append(lines[j])
            j += 1
        found.append(textwrap.dedent("\n".join(body)).strip())
    return found


def _first(dataset, n):
    """The first ``n`` samples of an fcnet data set, with its class names."""
    from fcnet.data import ArrayDataset

    return ArrayDataset(dataset.images[:n], dataset.labels[:n], classes=dataset.classes)


def _fake_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw uint8 images like Fashion-MNIST's, whose class is the row of a bright line."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
    x[torch.arange(n), y * 2 + 4, :] = 250
    return x, y


def _split_fake_images():
    from fcnet.data import ArrayDataset, train_val_split

    return train_val_split(ArrayDataset(*_fake_images(400, seed=1)), val_fraction=0.2, seed=0)


def _trained_model(train, val):
    from fcnet import Trainer, build_mlp

    model = build_mlp([784, 32, 10], input_norm=(0.5, 0.5), seed=0)
    Trainer(model, epochs=1, seed=0, progress=False).fit(train, val)
    return model


def _run_folder_and_images(ns: dict) -> None:
    """``runs/baseline`` (a run folder holding ``model/``), ``shoe.jpg`` and ``shirt.png``."""
    from PIL import Image

    from fcnet import save_model

    save_model(_trained_model(*_split_fake_images()), "runs/baseline/model")
    pixels = 255 - _fake_images(2, seed=3)[0].numpy()  # dark objects on a light ground
    Image.fromarray(pixels[0]).convert("RGB").save("shoe.jpg")
    Image.fromarray(pixels[1]).save("shirt.png")


def _setup_checkpoints(ns: dict, monkeypatch) -> None:
    from fcnet import ModelCheckpoint, Trainer, save_model

    train, val = _split_fake_images()
    model = _trained_model(train, val)
    # The folders the loading examples name: a training checkpoint and a run folder.
    Trainer(model, epochs=1, seed=0, progress=False,
            callbacks=[ModelCheckpoint("runs/baseline")]).fit(train, val)
    save_model(model, "runs/fashion-best/model")
    ns.update(train=train, val=val, model=model)


def _setup_sklearn(ns: dict, monkeypatch) -> None:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(n_samples=160, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    ns.update(X_train=X_train, X_test=X_test, y_train=y_train, y_test=y_test)


def _setup_data(ns: dict, monkeypatch) -> None:
    # The feature-table example reads a CSV of numbers, a category and a named outcome.
    rng = np.random.default_rng(0)
    n = 90
    regions, outcomes = ["north", "south", "east"], ["none", "mild", "severe"]
    rows = ["age,weight,smoker,region,outcome"]
    for i in range(n):
        rows.append(f"{rng.integers(20, 80)},{rng.normal(70, 12):.1f},{i % 2},"
                    f"{regions[i % 3]},{outcomes[i % 3]}")
    Path("patients.csv").write_text("\n".join(rows) + "\n")


def _setup_distributed(ns: dict, monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)  # one process, as without torchrun
    train, val = _split_fake_images()
    ns.update(train=train, val=val)


def _setup_cli(ns: dict, monkeypatch) -> None:
    _run_folder_and_images(ns)


def _setup_deployment(ns: dict, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    _run_folder_and_images(ns)
    monkeypatch.setenv("FCNET_ONNX", "deploy/fmnist.onnx")


def _check_deployment(ns: dict) -> None:
    # The service's code only defines ``app``; answer one request with it.
    rows = np.zeros((2, 784)).tolist()
    body = json.dumps({"pixels": rows}).encode()
    answer = {}

    def start_response(status, headers):
        answer["status"] = status

    reply = ns["app"]({"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)),
                       "wsgi.input": io.BytesIO(body)}, start_response)
    assert answer["status"] == "200 OK"
    assert len(json.loads(b"".join(reply))) == 2


SETUPS = {
    "data": _setup_data,
    "checkpoints": _setup_checkpoints,
    "sklearn": _setup_sklearn,
    "distributed": _setup_distributed,
    "cli": _setup_cli,
    "deployment": _setup_deployment,
}
CHECKS = {"deployment": _check_deployment}


def _shortened(block: Block) -> str:
    code = _EPOCHS.sub("epochs=1", block.code)
    for old, new in SUBSTITUTIONS.get(block.page, []):
        code = code.replace(old, new)
    return code


def _page_param(page: str):
    marks = [pytest.mark.integration] if page in READS_FASHION_MNIST else []
    return pytest.param(page, marks=marks, id=page)


def test_skip_markers_are_the_listed_ones():
    found = {page: [b.skip for b in python_blocks(page) if b.skip] for page in GUIDE_PAGES}
    assert {page: reasons for page, reasons in found.items() if reasons} == EXPECTED_SKIPS


def test_substitutions_match_the_pages():
    for page, pairs in SUBSTITUTIONS.items():
        code = "\n".join(b.code for b in python_blocks(page) if not b.skip)
        for old, _ in pairs:
            assert old in code, f"{page}.rst no longer has {old!r}"


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_python_is_in_python_blocks(page):
    # A literal block (``::``) is not run: Python examples must be code-block:: python.
    for text in literal_blocks(page):
        first = text.splitlines()[0] if text else ""
        assert not re.match(r"(import|from) \w", first), (
            f"{page}.rst has Python in a '::' literal block; use '.. code-block:: python':"
            f"\n{text[:200]}")


@pytest.mark.parametrize("page", [_page_param(p) for p in GUIDE_PAGES])
def test_guide_examples_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page}.rst has no Python examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns: dict = {"__name__": "docs_example", "_first": _first}
    if page in SETUPS:
        SETUPS[page](ns, monkeypatch)
    for block in blocks:
        if block.skip:
            continue
        try:
            exec(compile(_shortened(block), f"{page}.rst:{block.line}", "exec"), ns)
        except Exception as e:
            raise AssertionError(
                f"the example at {page}.rst:{block.line} fails: {type(e).__name__}: {e}") from e
    if page in CHECKS:
        CHECKS[page](ns)
