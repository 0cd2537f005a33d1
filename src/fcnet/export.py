"""Export a trained model to ONNX, preprocessing included.

The exported graph is :class:`ExportableModel`: the model with its input layer
(:class:`~fcnet.models.InputAdapter`) replaced by the same arithmetic on a float input.
An fcnet model reads ``uint8`` input as raw pixels and floats as already scaled (see
:mod:`fcnet.models`), but an ONNX graph has one input type. So the graph takes
``float32`` values of shape ``(N, features)`` in the range the model was trained on:

* a model trained on ``uint8`` pixels takes raw pixel values ``0..255`` as floats and
  divides them by 255 itself, exactly as the model does with ``uint8`` input;
* any other model takes its inputs as it was trained on them (floats as they are).

The input normalisation (``input_norm``) follows in the graph. The output is the model's
own: ``"logits"``, or ``"log_probabilities"`` for ``output="log_softmax"``. The batch
axis is dynamic.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fcnet._io import atomic_write_bytes
from fcnet._version import __version__
from fcnet.models import MLP, InputAdapter

__all__ = ["INPUT_NAME", "ExportableModel", "export_onnx", "output_name"]

#: Name of the exported graph's input.
INPUT_NAME = "input"


def output_name(model: MLP) -> str:
    """Name of the exported graph's output: ``"logits"`` or ``"log_probabilities"``."""
    return "log_probabilities" if model.spec.output == "log_softmax" else "logits"


class ExportableModel(nn.Module):
    """A copy of an fcnet model that takes ``float32`` input of shape ``(N, features)``.

    It computes what the model computes for its training input type: for a model trained
    on ``uint8`` pixels, ``x`` holds raw pixel values ``0..255`` as floats and is scaled
    by ``1/255`` here, as :class:`~fcnet.models.InputAdapter` scales ``uint8`` input;
    otherwise ``x`` is used as it is. Then ``(x - mean) / std`` and the remaining layers.
    It holds no input checks, so :func:`torch.export.export` and ONNX can trace it. The
    copy is on the CPU in eval mode; the model given is left unchanged.

    Args:
        model: A model from :func:`fcnet.build_mlp` or :func:`fcnet.load_model`.

    Raises:
        TypeError: ``model`` is not an fcnet :class:`~fcnet.models.MLP`.
        ValueError: The model's spec no longer describes its layers.
    """

    def __init__(self, model: MLP) -> None:
        if not isinstance(model, MLP) or not isinstance(model[0], InputAdapter):
            raise TypeError(f"model must be an fcnet MLP (from fcnet.build_mlp or "
                            f"fcnet.load_model), got {type(model).__name__}")
        mismatch = model.spec_mismatch()
        if mismatch:
            raise ValueError(f"the model's layers no longer match its spec ({mismatch}); "
                             f"rebuild it from an MLPSpec that describes them")
        super().__init__()
        copied = copy.deepcopy(model).cpu().eval()
        adapter = copied[0]
        self.spec = copied.spec
        self.in_features = adapter.in_features
        self.pixels = self.spec.pixels
        # The factors InputAdapter.forward uses, computed the same way, so the float
        # arithmetic is the same.
        scale = adapter.std.reciprocal()
        if self.pixels:
            scale = scale * (1.0 / 255.0)
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", (adapter.mean / adapter.std).detach().clone())
        self.layers = nn.Sequential(*list(copied.children())[1:])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``(N, classes)`` for float input ``(N, features)``."""
        return self.layers(x * self.scale - self.shift)


def _check_onnx() -> None:
    if importlib.util.find_spec("onnx") is None:
        raise ImportError("ONNX export needs the onnx package: pip install 'fcnet[onnx]'")


def _export_proto(module: ExportableModel, out_name: str, opset: int | None):
    """The ONNX ModelProto of ``module`` with a dynamic batch axis."""
    import onnx

    example = torch.zeros(2, module.in_features)
    if importlib.util.find_spec("onnxscript") is not None:
        # The torch.export-based exporter, torch's default, needs onnxscript. It builds
        # opset 18 and converts other versions, downwards unreliably.
        newest = onnx.defs.onnx_opset_version()
        if opset is not None and not 18 <= opset <= newest:
            raise ValueError(f"opset must be in [18, {newest}] with torch's ONNX exporter, "
                             f"got {opset}")
        program = torch.onnx.export(
            module, (example,), dynamo=True, input_names=[INPUT_NAME],
            output_names=[out_name], opset_version=opset, verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
        return program.model_proto
    # Without onnxscript: the TorchScript-based exporter (deprecated in torch, but it
    # needs only the onnx package). It traces the module, which holds no Python checks.
    # Its opsets: 7 (the oldest onnxruntime runs) to 20 (the newest it writes).
    if opset is not None and not 7 <= opset <= 20:
        raise ValueError(f"opset must be in [7, 20] with torch's TorchScript-based ONNX "
                         f"exporter (used when onnxscript is not installed), got {opset}; "
                         f"install onnxscript for opsets above 20")
    buffer = io.BytesIO()
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters \
        else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            torch.onnx.export(
                module, (example,), buffer, input_names=[INPUT_NAME], output_names=[out_name],
                dynamic_axes={INPUT_NAME: {0: "batch"}, out_name: {0: "batch"}},
                opset_version=17 if opset is None else opset, **kwargs,
            )
        except RuntimeError as e:  # an opset this torch's exporter does not know
            if opset is None:
                raise
            raise ValueError(f"torch's TorchScript-based ONNX exporter cannot write opset "
                             f"{opset}: {e}; pass another opset, or None") from None
    return onnx.load_from_string(buffer.getvalue())


def export_onnx(model: MLP, path: str | os.PathLike[str], *, opset: int | None = None,
                classes: Sequence[str] | None = None) -> Path:
    """Write ``model`` as an ONNX graph that includes its preprocessing.

    The graph is that of :class:`ExportableModel`. Its input ``"input"`` is ``float32``
    of shape ``(N, features)`` (``N`` dynamic): raw pixel values ``0..255`` as floats
    for a model trained on ``uint8`` images, otherwise values in the range the model was
    trained on (``model.spec.input_range``). Its output (``"logits"``, or
    ``"log_probabilities"`` for ``output="log_softmax"``) is ``float32`` ``(N, classes)``.
    The graph's metadata holds the spec (``fcnet_spec``), the input contract
    (``input_scale``) and, if given, the class names (``classes``, a JSON list). The
    graph is checked with :func:`onnx.checker.check_model` before the file is written,
    atomically.

    Args:
        model: A model from :func:`fcnet.build_mlp` or :func:`fcnet.load_model`.
        path: The ``.onnx`` file to write (its folder is created).
        opset: The ONNX opset version; ``None`` uses the exporter's default. torch's
            ``torch.export``-based exporter writes 18 or later.
        classes: The class names, indexed by label, stored in the metadata.

    Returns:
        The path written.

    Raises:
        ImportError: The onnx package is not installed (``pip install 'fcnet[onnx]'``).
        TypeError: ``model`` is not an fcnet MLP, or ``path`` is not a path.
        ValueError: ``opset`` is not a positive integer or not one the exporter can
            write, ``classes`` does not name every class, or the model's layers no
            longer match its spec.
    """
    module = ExportableModel(model)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)
                              or opset < 1):
        raise ValueError(f"opset must be None or a positive integer, got {opset!r}")
    if classes is not None:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise TypeError("classes must be a sequence of str class names")
        if len(classes) != model.spec.num_classes:
            raise ValueError(f"classes must name the model's {model.spec.num_classes} "
                             f"classes, got {len(classes)} names")
    _check_onnx()
    import onnx

    out_name = output_name(model)
    proto = _export_proto(module, out_name, opset)
    made = next((entry.version for entry in proto.opset_import
                 if entry.domain in ("", "ai.onnx")), None)
    if opset is not None and made != opset:
        raise ValueError(f"the exporter could not write opset {opset} (it wrote {made}); "
                         f"pass another opset, or None")
    contract = ("raw pixel values 0..255 as float32, divided by 255 in the graph"
                if module.pixels else "float32 values as in training, used as they are")
    metadata = {
        "fcnet_version": __version__,
        "fcnet_spec": json.dumps(model.spec.to_dict()),
        "input_scale": contract,
    }
    if classes is not None:
        metadata["classes"] = json.dumps(list(classes))
    onnx.helper.set_model_props(proto, metadata)
    proto.producer_name = "fcnet"
    proto.doc_string = (f"fcnet MLP {list(model.spec.sizes)}: input '{INPUT_NAME}' "
                        f"(N, {module.in_features}) {contract}; output '{out_name}' "
                        f"(N, {model.spec.num_classes})")
    onnx.checker.check_model(proto, full_check=True)

    target = Path(path).expanduser()
    atomic_write_bytes(target, proto.SerializeToString())
    return target
