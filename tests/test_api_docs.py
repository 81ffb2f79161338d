"""Every public name is in the API reference (docs/api.rst).

The public names are those of ``gdcore.__all__`` and of the ``__all__`` of
gdcore's public submodules. The reference is built from their docstrings by
Sphinx (README, "API reference"), which also checks the docstrings against
numpydoc's rules; this test only needs the .rst file, so that a name added to
an ``__all__`` without its entry fails here, in the plain test run.
"""

import importlib
import re
import types
from pathlib import Path

import pytest

import gdcore

API_RST = Path(__file__).resolve().parents[1] / "docs" / "api.rst"

#: the submodules whose ``__all__`` is public API besides gdcore's own
SUBMODULES = ("gdcore.schedules", "gdcore.optimizers", "gdcore.reference", "gdcore.dask",
              "gdcore.plotting")


def documented() -> set[str]:
    """Full names given to an ``auto*`` or ``py:*`` directive in docs/api.rst.

    A ``py:*`` directive names its object within the module of the last
    ``automodule`` above it (as Sphinx does).
    """
    names = set()
    module = ""
    for line in API_RST.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\.\. (auto\w+|py:\w+):: (\S+)", line)
        if not match:
            continue
        directive, name = match.groups()
        if directive == "automodule":
            module = name
        elif directive.startswith("py:"):
            name = f"{module}.{name}"
        names.add(name)
    return names


@pytest.mark.parametrize("module_name", ("gdcore", *SUBMODULES))
def test_every_public_name_is_in_the_api_reference(module_name):
    if module_name == "gdcore.dask":
        pytest.importorskip("dask")
    module = importlib.import_module(module_name)
    names = documented()
    assert module_name in names, f"docs/api.rst has no automodule for {module_name}"
    missing = [name for name in module.__all__ if f"{module_name}.{name}" not in names
               and not (isinstance(getattr(module, name), types.ModuleType)
                        and getattr(module, name).__name__ in names)]
    assert missing == [], f"not in docs/api.rst: {missing}"


def test_the_public_submodules_are_those_of_gdcore_all():
    """The submodules gdcore exports are among those checked above."""
    exported = {getattr(gdcore, name).__name__ for name in gdcore.__all__
                if isinstance(getattr(gdcore, name), types.ModuleType)}
    assert exported <= set(SUBMODULES)
