"""Sphinx configuration for fcnet's documentation."""

import os
import re
import sys

sys.path.insert(0, os.path.abspath("../src"))

# The version is read from the package's leaf module, without importing fcnet.
with open(os.path.join(os.path.dirname(__file__), "..", "src", "fcnet", "_version.py"),
          encoding="utf-8") as _f:
    release = re.search(r'__version__ = "([^"]+)"', _f.read()).group(1)
version = ".".join(release.split(".")[:2])

project = "fcnet"
author = "fcnet developers"
copyright = "2026, fcnet developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
html_theme = "furo"

# Links to the Python, PyTorch and NumPy docs need their inventories, fetched over the
# network at build time. The build machines and CI are offline, where a failed fetch is a
# warning that -W turns into an error, so the mapping is used only when asked for:
# FCNET_DOCS_INTERSPHINX=1 python -m sphinx -b html docs docs/_build/html
intersphinx_mapping = {}
if os.environ.get("FCNET_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
        "numpy": ("https://numpy.org/doc/stable", None),
    }
exclude_patterns = ["_build"]
suppress_warnings = ["ref.python"]
