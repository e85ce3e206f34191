"""A Sphinx extension for the book: each page's scripts once, and bibliography labels that cannot clash.

With Sphinx 7.4, an inline script that an extension adds after the builder is set up (sphinx-thebe's
``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector) is registered twice: once as
``_JavaScript(None)`` on the builder and again as ``_JavaScript('')`` from the registry, which do not
compare equal. Every page then declares ``THEBE_JS_URL`` twice, and the browser reports
"Identifier 'THEBE_JS_URL' has already been declared" (``brainldm check-book`` fails the build on
it). This keeps the first of each script per page. Listed in ``_config.yml``
(``sphinx.extra_extensions``).

Bibliography labels: pybtex's ``alpha`` labels are made from the authors and the year, so Takagi &
Nishimoto's CVPR paper and their technical report (both 2023) are both "TN23", and Sphinx refuses
the duplicate. The ``brainldm`` bibliography style (``bibtex_default_style`` in ``_config.yml``) is
pybtex's ``unsrt`` with each entry labelled by its citation key, unique by construction; citations
in the text stay author–year (``bibtex_reference_style``).
"""

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle

__all__ = ["setup", "unique_scripts", "KeyLabels", "BibliographyStyle"]


class KeyLabels(BaseLabelStyle):
    """Label each bibliography entry with its citation key."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            yield entry.key


class BibliographyStyle(UnsrtStyle):
    """pybtex's ``unsrt`` formatting with :class:`KeyLabels` (pybtex formatting style ``brainldm``)."""

    def __init__(self, **options):
        super().__init__(**options)
        self.label_style = KeyLabels()
        self.format_labels = self.label_style.format_labels


def unique_scripts(scripts):
    """``scripts`` (Sphinx's ``_JavaScript`` assets) without repeats: filename ``None`` and ``''`` alike."""
    seen, unique = set(), []
    for script in scripts:
        key = (getattr(script, "filename", script) or "", getattr(script, "priority", None),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    return unique


def _page_context(app, pagename, templatename, context, doctree):
    if "script_files" in context:
        context["script_files"][:] = unique_scripts(context["script_files"])


def setup(app):
    register_plugin("pybtex.style.formatting", "brainldm", BibliographyStyle)
    app.connect("html-page-context", _page_context, priority=900)  # after every other extension
    return {"parallel_read_safe": True, "parallel_write_safe": True}
