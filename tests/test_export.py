"""ONNX export: the graph runs in onnxruntime as the model runs in fcnet."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fcnet import Trainer, build_mlp, export_onnx, load_model, save_model
from fcnet.export import ExportableModel

ROOT = Path(__file__).resolve().parents[1]


def fcnet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fcnet", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def runtime(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: torch.Tensor) -> np.ndarray:
    (out,) = sess.run(None, {"input": x.reshape(len(x), -1).float().numpy()})
    return out


def trained(model, x, y, seed=0):
    Trainer(model, epochs=1, batch_size=64, seed=seed, progress=False, device="cpu").fit((x, y))
    return model.eval()


@pytest.fixture(scope="module")
def pixel_model(tmp_path_factory):
    """A model trained on uint8 images (batch norm, GELU, input norm, log-softmax), saved."""
    g = torch.Generator().manual_seed(3)
    y = torch.arange(512) % 10
    x = torch.randint(0, 80, (512, 28, 28), generator=g, dtype=torch.uint8)
    x[torch.arange(512), y * 2 + 4, :] = 240
    model = trained(build_mlp([784, 32, 16, 10], 0.2, activation="gelu", norm="batch",
                              output="log_softmax", input_norm=(0.3, 0.4), seed=0), x, y)
    folder = tmp_path_factory.mktemp("export") / "model"
    save_model(model, folder)
    return folder, x


def test_exportable_model_computes_what_the_model_computes(pixel_model):
    folder, x = pixel_model
    model = load_model(folder)
    wrapper = ExportableModel(model)
    with torch.no_grad():
        expected = model(x)
        # Raw pixel values as floats give exactly what uint8 pixels give the model.
        assert torch.equal(wrapper(x.reshape(len(x), -1).float()), expected)
    assert wrapper.layers[0].weight.data_ptr() != model.hidden1.weight.data_ptr()  # a copy


CLASSES = [f"c{i}" for i in range(10)]


@pytest.fixture(scope="module")
def exported(pixel_model):
    """The pixel model exported by the command line, as a user does it."""
    folder, _ = pixel_model
    out = folder.parent / "deploy" / "model.onnx"
    result = fcnet("export", folder, "--format", "onnx", "--output", out,
                   "--classes", ",".join(CLASSES))
    assert result.returncode == 0, result.stderr
    assert "input 'input' float32 (N, 784), raw pixels 0..255" in result.stdout
    return out


def test_cli_export_runs_in_onnxruntime_with_a_dynamic_batch(pixel_model, exported):
    folder, x = pixel_model
    proto = onnx.load(exported)
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == CLASSES
    assert json.loads(meta["fcnet_spec"])["input_dtype"] == "uint8"
    sess = runtime(exported)
    (inp,), (outp,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("input", "tensor(float)", 784)
    assert isinstance(inp.shape[0], str)  # a named, dynamic batch axis
    assert outp.name == "log_probabilities"
    expected = load_model(folder)(x).detach().numpy()
    for n in (1, 7, len(x)):
        got = run(sess, x[:n])
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, expected[:n], atol=1e-4, rtol=0)
    # An existing file is kept unless --overwrite.
    again = fcnet("export", folder, "--output", exported)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "--overwrite" in again.stderr


def documented_service() -> str:
    """The code of ``serve_onnx.py`` in docs/deployment.rst."""
    text = (ROOT / "docs" / "deployment.rst").read_text(encoding="utf-8")
    lines = []
    for line in text.split("    # serve_onnx.py\n", 1)[1].splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def test_the_documented_service_answers(pixel_model, exported, monkeypatch):
    folder, x = pixel_model
    monkeypatch.setenv("FCNET_ONNX", str(exported))
    namespace = {"__name__": "serve_onnx"}
    exec(compile(documented_service(), "serve_onnx.py", "exec"), namespace)

    def call(method, body):
        status = []
        environ = {"REQUEST_METHOD": method, "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body)}
        chunks = namespace["app"](environ, lambda s, headers: status.append(s))
        return status[0], json.loads(b"".join(chunks))

    rows = x[:3].reshape(3, -1).tolist()
    status, answer = call("POST", json.dumps({"pixels": rows}).encode())
    assert status == "200 OK"
    expected = load_model(folder)(x[:3]).argmax(1).tolist()
    assert [a["label"] for a in answer] == expected
    assert [a["class"] for a in answer] == [CLASSES[k] for k in expected]
    # Rows of another length are refused, even when the values would fill whole rows.
    for wrong in ([rows[0] + rows[1]], [rows[0][:392]] * 2, rows[0]):
        assert call("POST", json.dumps({"pixels": wrong}).encode())[0] == "400 Bad Request"
    rows[0][5] = 300
    assert call("POST", json.dumps({"pixels": rows}).encode())[0] == "400 Bad Request"
    assert call("POST", b"{not json")[0] == "400 Bad Request"
    assert call("GET", b"")[0] == "405 Method Not Allowed"


def test_export_without_onnxscript_uses_the_torchscript_exporter(pixel_model, tmp_path):
    folder, x = pixel_model
    out = tmp_path / "legacy.onnx"
    code = ("import sys; sys.modules['onnxscript'] = None\n"  # not importable
            "from fcnet import export_onnx, load_model\n"
            f"model = load_model({str(folder)!r})\n"
            "for opset in (1, 30):\n"
            "    try:\n"
            f"        export_onnx(model, {str(out)!r}, opset=opset)\n"
            "    except ValueError as e:\n"
            "        assert 'opset must be in [7, 20] with torch' in str(e), e\n"
            "    else:\n"
            "        raise AssertionError(opset)\n"
            f"export_onnx(model, {str(out)!r})\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    expected = load_model(folder)(x).detach().numpy()
    sess = runtime(out)
    for n in (1, len(x)):
        np.testing.assert_allclose(run(sess, x[:n]), expected[:n], atol=1e-4, rtol=0)


def test_float_model_takes_its_inputs_as_they_are(blobs, tmp_path):
    x, y = blobs
    model = trained(build_mlp([8, 16, 3], seed=0), x, y)
    path = export_onnx(model, tmp_path / "blobs.onnx", opset=18)
    assert path == tmp_path / "blobs.onnx"
    proto = onnx.load(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert "as they are" in meta["input_scale"] and "classes" not in meta
    (out,) = runtime(path).run(["logits"], {"input": x.numpy()})
    np.testing.assert_allclose(out, model(x).detach().numpy(), atol=1e-4, rtol=0)


def test_export_checks_its_arguments(tmp_path):
    model = build_mlp([4, 3], seed=0)
    with pytest.raises(TypeError, match="fcnet MLP"):
        export_onnx(torch.nn.Linear(4, 3), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="opset must be"):
        export_onnx(model, tmp_path / "x.onnx", opset=0)
    with pytest.raises(ValueError, match="name the model's 3 classes"):
        export_onnx(model, tmp_path / "x.onnx", classes=["a", "b"])
    model.output = torch.nn.Linear(4, 5)  # a new head the spec does not describe
    with pytest.raises(ValueError, match="no longer match its spec"):
        export_onnx(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.integration
def test_parity_on_1000_fashion_mnist_test_images(tmp_path):
    from fcnet.data import FashionMNIST, train_val_split

    _, small = train_val_split(FashionMNIST(split="train"), val_fraction=0.05, seed=0)
    model = trained(build_mlp([784, 128, 64, 10], 0.25, input_norm=(0.5, 0.5), seed=0),
                    small.images, small.labels)
    save_model(model, tmp_path / "model")
    result = fcnet("export", tmp_path / "model")
    assert result.returncode == 0, result.stderr
    images = FashionMNIST(split="test").images[:1000]
    expected = load_model(tmp_path / "model")(images).detach().numpy()  # uint8 input
    sess = runtime(tmp_path / "model" / "model.onnx")
    got = run(sess, images)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    single = np.concatenate([run(sess, images[i:i + 1]) for i in range(0, 1000, 97)])
    np.testing.assert_allclose(single, expected[::97], atol=1e-4, rtol=0)
