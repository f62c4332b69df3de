"""Sphinx configuration of fastnn's documentation.

Build it from the repository root (``pip install -e ".[docs]"`` first)::

    python -m sphinx -W -b html docs docs/_build/html

Warnings are errors: a broken cross-reference, a docstring that does not parse or a tutorial that
raises fails the build.  Nothing here reaches the network (no intersphinx).
"""
from __future__ import annotations

import os

import fastnn  # the installed package (pip install -e ".[docs]"): fastnn.kernels is mapped from kernels/

# Tutorials draw figures without a display; set before sphinx-gallery or a tutorial imports pyplot.
os.environ["MPLBACKEND"] = "Agg"

project = "fastnn"
author = "fastnn developers"
copyright = "fastnn developers"
release = fastnn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "auto_tutorials/*.ipynb", "auto_tutorials/*.py", "auto_tutorials/*.zip",
                    "tutorials/README.rst", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
root_doc = "index"
default_role = "py:obj"
nitpicky = False

# -- API reference ---------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True}
autodoc_typehints = "none"  # the docstrings say the types in words; signatures stay readable
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # autosummary lists members; numpydoc's own tables would duplicate them
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

# -- Tutorials: sphinx-gallery runs every docs/tutorials/plot_*.py at build time -------------------
sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": "/plot_",
    "abort_on_example_error": True,
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "plot_gallery": "True",
    "reset_modules": ("matplotlib",),
    "capture_repr": ("_repr_html_", "__repr__"),
    "show_memory": False,
    "promote_jupyter_magic": False,
}

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastnn {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False


# -- Checks ----------------------------------------------------------------------------------------
# Modules whose every public name (``__all__``, else what the module defines) must have an entry in
# an autosummary of docs/api/*.rst, under that module or re-exported from ``fastnn``.
API_MODULES = ["fastnn", "fastnn.datasets", "fastnn.model_selection", "fastnn.sklearn", "fastnn.plots",
               "fastnn.schedules", "fastnn.gradcheck", "fastnn.perceptron", "fastnn.augment", "fastnn.tracing",
               "fastnn.backends", "fastnn.cpu", "fastnn.io", "fastnn.demos", "fastnn.activations", "fastnn.losses"]
# Names that are documented in prose instead (submodules, the version string, the codes table).
API_PROSE = {"fastnn": {"activations", "augment", "losses", "model_selection", "schedules", "backends", "codes", "cpu",
                      "__version__"}}


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, obj in vars(module).items()
                 if not n.startswith("_") and getattr(obj, "__module__", None) == module.__name__]
    return [n for n in names if n not in API_PROSE.get(module.__name__, set())]


def _documented_objects(api_dir) -> set[int]:
    """id() of every object listed in an autosummary of the API pages."""
    import importlib
    import re
    from pathlib import Path

    found: set[int] = set()
    for page in sorted(Path(api_dir).glob("*.rst")):
        module, in_summary = None, False
        for line in page.read_text().splitlines():
            if m := re.match(r"\.\. currentmodule:: (\S+)", line):
                module = m.group(1)
            elif line.startswith(".. autosummary::"):
                in_summary = True
            elif in_summary and line.strip() and not line.startswith(" "):
                in_summary = False
            elif in_summary and line.strip() and not line.strip().startswith(":") and module:
                name = line.strip()
                obj = importlib.import_module(module)
                for part in name.split("."):
                    obj = getattr(obj, part)
                found.add(id(obj))
    return found


def _check_api_coverage(app) -> None:
    import importlib

    from sphinx.util import logging

    logger = logging.getLogger("fastnn.docs")
    documented = _documented_objects(os.path.join(app.srcdir, "api"))
    for name in API_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a module that does not exist yet on this branch
            continue
        missing = [n for n in _public_names(module) if id(getattr(module, n)) not in documented]
        if missing:
            logger.warning("docs/api: public names of %s without an autosummary entry: %s",
                           name, ", ".join(missing))


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn adds set_<method>_request to every estimator (metadata routing): its docs, not ours.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def _rst_table(header: list[str], rows: list[list[str]]) -> str:
    """A list-table, so that cells may hold any text."""
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        out.append(f"   * - {row[0]}")
        out += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(out) + "\n"


# What each of kernels/contract.py's stand-in functions does, in words.
_STAND_INS = {None: "the step-by-step epoch, ``fastnn.engine.run_epoch``", "_no_scope": "nothing is held",
              "_one_thread": "1", "_host_add": "NumPy's in-place add on host arrays", "_nothing": "nothing"}


def _write_tables(app) -> None:
    """Tables that the design page includes, written from the code that defines them, so that they
    cannot drift from it: the FASTNN_* settings (kernels/config.py) and the backend hooks
    (kernels/contract.py)."""
    from fastnn.kernels import config, contract

    out = os.path.join(app.srcdir, "generated")
    os.makedirs(out, exist_ok=True)
    rows = [[f"``{s.name}``",
             (", ".join(s.choices) if s.choices else f"{s.low}-{s.high}" if s.kind == "int" else s.kind)
             + (f" ({s.default})" if s.default else " (unset)"),
             s.read_when, s.help] for s in config.SETTINGS.values()]
    tables = {
        "config_table.rst.inc": _rst_table(["variable", "values (default)", "read at", "what it does"], rows),
        "hooks_table.rst.inc": _rst_table(
            ["hook", "what it does", "when the backend lacks it"],
            [[f"``{h.signature}``", h.purpose, _STAND_INS.get(getattr(h.default, "__name__", None),
                                                              f"``{getattr(h.default, '__name__', h.default)}``")]
             for h in contract.HOOKS.values()]),
    }
    for name, text in tables.items():
        path = os.path.join(out, name)
        if not os.path.exists(path) or open(path).read() != text:  # an unchanged file keeps pages cached
            with open(path, "w") as fh:
                fh.write(text)


def setup(app):
    app.connect("builder-inited", _write_tables)
    app.connect("builder-inited", _check_api_coverage)
    app.connect("autodoc-skip-member", _skip_member)
