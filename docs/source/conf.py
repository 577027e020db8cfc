"""Sphinx configuration of thunder's documentation (`make docs` builds it into docs/build)."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

project = "thunder"
author = "thunder developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
autodoc_member_order = "bysource"
autodoc_mock_imports = ["triton"]
html_theme = "alabaster"
exclude_patterns = []
