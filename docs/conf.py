"""Sphinx configuration of the invkit docs (furo theme, Markdown pages through MyST).

Build: ``sphinx-build -W -b html docs docs/_build/html``; run the examples' checks:
``sphinx-build -W -b doctest docs docs/_build/doctest``. Both need invkit and the example
plugin installed (``pip install -e ".[docs]" -e examples/invkit-linear-gaussian``).
"""

from __future__ import annotations

import doctest
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import invkit_docs  # noqa: E402

import invkit  # noqa: E402

project = "invkit"
author = "the invkit authors"
copyright = "the invkit authors"  # noqa: A001
release = invkit.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "invkit_docs",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/README.md"]
templates_path: list[str] = []

smartquotes = False  # keep "--set" and quotes in command lines as typed

html_theme = "furo"
html_title = f"invkit {release}"
html_static_path: list[str] = []

myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # show `field(default_factory=dict)`, not `<factory>`
autodoc_default_options = {"members": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = False



def _dataclass_signature(app, what, name, obj, options, signature, return_annotation):
    """Dataclass fields with a default_factory show as ``<factory>``, which is not Python and
    makes Sphinx print the raw signature; show ``...`` instead."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-signature", _dataclass_signature)


# Commands shown with their output (invkit-console) run once per state of the source code.
invkit_exec_hash = invkit_docs.source_hash()
_WORK = HERE / "_build" / ".invkit-exec" / invkit_exec_hash / "work"

# Only the explicit {doctest} / {testcode} blocks of the pages are tested, not the ">>>"
# examples of docstrings (those illustrate, with placeholders such as "runs/gmm/...").
doctest_test_doctest_blocks = ""
# Each page's examples run in a fresh folder whose runs/ links to the runs that the page's
# invkit-console commands made, so "runs/gmm-quick" means the same run in both.
doctest_global_setup = f"""
import os as _os, pathlib as _pathlib, shutil as _shutil, tempfile as _tempfile
_invkit_docs_cwd = _os.getcwd()
_invkit_docs_tmp = _pathlib.Path(_tempfile.mkdtemp(prefix="invkit-doctest-"))
(_invkit_docs_tmp / "runs").mkdir()
_work_runs = _pathlib.Path({str(_WORK / "runs")!r})
if _work_runs.is_dir():
    for _run in _work_runs.iterdir():
        (_invkit_docs_tmp / "runs" / _run.name).symlink_to(_run, target_is_directory=True)
_os.chdir(_invkit_docs_tmp)
"""
doctest_global_cleanup = """
_os.chdir(_invkit_docs_cwd)
_shutil.rmtree(_invkit_docs_tmp, ignore_errors=True)
"""
os.environ.setdefault("INVKIT_CACHE", str(_WORK.parent / "cache"))

# Check exception messages too (Sphinx ignores their detail by default): the plugin guide
# shows the exact errors a broken plugin gets. Long expected lines may be wrapped.
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)
