"""The public API: explicit __all__, a docstring on every public name."""

from __future__ import annotations

import importlib
import inspect

import pytest

import fcnet

MODULES = ["fcnet", "fcnet.models", "fcnet.trainer", "fcnet.callbacks", "fcnet.history",
           "fcnet.metrics", "fcnet.plots", "fcnet.exceptions", "fcnet.data",
           "fcnet.checkpoint", "fcnet.recipes", "fcnet.config", "fcnet.optim",
           "fcnet.schedules", "fcnet.distributed", "fcnet.sklearn", "fcnet.export",
           "fcnet.images", "fcnet.cli"]


def test_design_names_are_exported():
    for name in ("build_mlp", "Trainer", "EarlyStopping", "History", "Callback"):
        assert name in fcnet.__all__ and hasattr(fcnet, name)
    from fcnet.data import FashionMNIST, train_val_split  # noqa: F401


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name):
    module = importlib.import_module(module_name)
    assert module.__doc__, module_name
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not (inspect.isfunction(member)
                                                or isinstance(member, property)):
                    continue
                if not inspect.getdoc(member):
                    missing.append(f"{name}.{attr}")
    assert not missing, f"{module_name}: no docstring on {missing}"
