"""Sphinx configuration: the API reference from the docstrings, the guides from docs/*.md.

Build (warnings are errors): ``sphinx-build -W -b html docs docs/_build/html``.
"""

import inspect
import sys
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer

import pyro_frmdn

HERE = Path(__file__).parent

project = "pyro-frmdn"
author = "pyro-frmdn contributors"
copyright = "pyro-frmdn contributors"
release = pyro_frmdn.__version__
version = release

extensions = [
    "myst_parser",  # the guides are Markdown
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.napoleon",  # Google-style docstrings: Arguments:, Returns:, Example:
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown: $...$ math, ::: fences, anchors for ## and ### headings (links like data.md#the-cache).
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# API pages: the public names (each module's __all__) in the order of __all__, signatures without
# type-hint clutter (the hints go to the parameter descriptions).
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Links in the guides to result pages outside docs/ (benchmarks/results/*.md) work on the
# repository's web view; the site shows them as plain text.
nitpick_ignore_regex = [("myst", r".*/benchmarks/results/.*")]

html_theme = "alabaster"
html_theme_options = {"page_width": "1200px", "sidebar_width": "260px"}
html_title = f"pyro-frmdn {release}"
html_static_path: list[str] = []


def _attr_doc(module_name: str, attr: str) -> list[str]:
    """The docstring (or ``#:`` comment) of a module-level name, read from the source of the
    module that defines it: the module itself or, for a package, one of its submodules."""
    obj = getattr(sys.modules[module_name], attr)
    submodules = sorted(m for m in sys.modules if m.startswith(module_name + "."))
    for name in [module_name, *submodules]:
        if getattr(sys.modules[name], attr, None) is obj:
            doc = ModuleAnalyzer.for_module(name).find_attr_docs().get(("", attr))
            if doc:
                return list(doc)
    return []


def _api_page(app, what, name, obj, options, lines):
    """A module's docstring opens its API page: add a summary table of its ``__all__`` and the
    constants it re-exports from submodules (autodoc itself documents only the ones it defines)."""
    if what != "module" or not hasattr(obj, "__all__"):
        return
    excluded = getattr(options, "exclude_members", None) or ()
    names = [n for n in obj.__all__ if n not in excluded]
    lines += ["", ".. autosummary::", ""] + [f"   {n}" for n in names] + [""]
    own = ModuleAnalyzer.for_module(name).find_attr_docs()
    for n in names:
        value = getattr(obj, n)
        if not (callable(value) or ("", n) in own):
            no_value = ["   :no-value:"] if " at 0x" in repr(value) else []
            lines += [f".. autodata:: {name}.{n}", *no_value, ""]


def _constant_doc(app, what, name, obj, options, lines):
    """A constant's doc is its docstring where it is defined, as written (napoleon would read
    ``Frame decoders: ...`` as a type), never the docstring of its type (``dict() -> ...``)."""
    if what != "data":
        return
    doc = _attr_doc(*name.rsplit(".", 1))
    type_doc = inspect.getdoc(type(obj)) or ""
    if doc or (lines and lines[0].strip() == type_doc.partition("\n")[0].strip()):
        lines[:] = doc


API_MODULES = [f"pyro_frmdn.{p.stem}" for p in sorted(HERE.glob("api/*.md")) if p.stem != "index"]


def _documented_home(app, env, node, contnode):
    """Resolve a docstring's link to a name where it is not documented (``pyro_frmdn.fit``,
    ``pyro_frmdn.data.preprocessing.dequantize``) to the API page that documents the object."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("pyro_frmdn."):
        return None
    module_name, _, attr = target.rpartition(".")
    obj = getattr(sys.modules.get(module_name), attr, None)
    if obj is None:
        return None
    domain = env.get_domain("py")
    for home in API_MODULES:
        if home != module_name and getattr(sys.modules.get(home), attr, None) is obj:
            found = domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], f"{home}.{attr}", node, contnode
            )
            if found is not None:
                return found
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _api_page)
    app.connect("autodoc-process-docstring", _constant_doc)
    app.connect("missing-reference", _documented_home)
