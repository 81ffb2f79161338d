"""Sphinx configuration of gdcore's API reference (built from the docstrings).

Build it from the repository root (README, "API reference")::

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs build/docs

``-W`` turns every warning into an error, numpydoc's docstring validation
(``numpydoc_validation_checks`` below) included; CI builds it that way.
The markdown files beside this one (design.md, options.md, scale.md) are read
on their own and are not part of this build.
"""

import gdcore

project = "gdcore"
author = "the gdcore developers"
copyright = "2026, the gdcore developers"
release = gdcore.__version__
version = release

extensions = ["sphinx.ext.autodoc", "numpydoc"]
root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []

# Signatures show the parameters; their types are in the numpydoc sections.
autodoc_typehints = "none"
autodoc_member_order = "bysource"

# numpydoc: class members are documented by autodoc (:members: in api.rst), not by
# numpydoc's own autosummary tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Every docstring in the reference is checked against numpydoc's rules; a
# failure is a warning, which -W makes an error. Left out: an extended summary
# (ES01), a "See Also" section (SA01) and an "Examples" section (EX01) are not
# required. The classes gdcore builds and returns (FitResult, TrainState,
# DescentPath, DivergenceError) document their fields under "Attributes" and
# skip PR01 (constructor parameters) with a "# numpydoc ignore=PR01" comment.
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01"}
