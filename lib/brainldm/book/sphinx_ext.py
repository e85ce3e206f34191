"""A Sphinx extension for the book: each page's scripts once.

With Sphinx 7.4, an inline script that an extension adds after the builder is set up (sphinx-thebe's
``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector) is registered twice: once as
``_JavaScript(None)`` on the builder and again as ``_JavaScript('')`` from the registry, which do not
compare equal. Every page then declares ``THEBE_JS_URL`` twice, and the browser reports
"Identifier 'THEBE_JS_URL' has already been declared" (``brainldm check-book`` fails the build on
it). This keeps the first of each script per page. Listed in ``_config.yml``
(``sphinx.extra_extensions``).
"""

__all__ = ["setup", "unique_scripts"]


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
    app.connect("html-page-context", _page_context, priority=900)  # after every other extension
    return {"parallel_read_safe": True, "parallel_write_safe": True}
