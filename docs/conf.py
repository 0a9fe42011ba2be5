"""Sphinx configuration: numpydoc docstrings, sphinx-gallery examples."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import imageclef_concepts  # noqa: E402

project = "imageclef_concepts"
author = "the imageclef_concepts developers"
copyright = "2026, the imageclef_concepts developers"
release = version = imageclef_concepts.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
# The signatures stay as a reader writes calls: the types are in numpydoc's
# Parameters sections, and the annotations are for type checkers (mypy in CI).
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# scikit-learn generates the metadata-routing setters (set_fit_request...);
# their docstrings point into scikit-learn's own documentation.
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "exclude-members": ",".join(
        f"set_{method}_request" for method in
        ("fit", "partial_fit", "predict", "predict_proba", "score", "transform",
         "inverse_transform", "split")),
}
intersphinx_mapping = {}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]
# The PyData theme, as scikit-learn and imbalanced-learn use. The header holds
# the short title, three pages and "More" on one row from 1024 px; the left
# sidebar (the current section's pages) is shown only where there are pages
# under the current one (the API's); "On this page" stays on the right, and an
# example's code is as wide as the article.
html_theme = "pydata_sphinx_theme"
html_title = project
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2,
                      "header_links_before_dropdown": 3, "navbar_align": "left",
                      "navbar_persistent": ["search-button"]}
# Every page with no pages under it (no ``:toctree:`` of its own: all but the
# API's), found here so that a new page is never left with an empty sidebar.
html_sidebars = {page: [] for page in sorted(
    rst.stem for rst in Path(__file__).resolve().parent.glob("*.rst")
    if ":toctree:" not in rst.read_text(encoding="utf-8"))
    + ["search", "genindex", "auto_examples/*"]}
html_static_path = ["_static"]
# Tables and code readable from 390 px (docs/screenshots.py draws every page).
html_css_files = ["readable.css"]


def _real_data_thumbnail():
    """The gallery card of the examples that need a real dataset and do not run
    here: a few generated radiology-like images, drawn at build time."""
    import tempfile

    import matplotlib.pyplot as plt

    images = imageclef_concepts.make_concept_images(6, 4, 64, random_state=0).images
    figure, axes = plt.subplots(2, 3, figsize=(4, 3))
    for ax, image in zip(axes.flat, images):
        ax.imshow(image)
        ax.axis("off")
    path = os.path.join(tempfile.mkdtemp(), "real_data_example.png")
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


sphinx_gallery_conf = {
    "default_thumb_file": _real_data_thumbnail(),
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Only plot_*.py run; the others take real datasets as arguments.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|data/",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "remove_config_comments": True,
    # Its page of computation times loads jQuery and Bootstrap from CDNs.
    "write_computation_times": False,
}
