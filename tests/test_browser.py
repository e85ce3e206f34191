"""The browser check of the built book (brainldm.book.browser) on a tiny fake site.

One good page and one bad page: the bad one has a broken image, a link to a missing file, a link
to a missing anchor, a console error and a progress bar left in its text. The checker must find
exactly those and pass the good page. Skipped only when Chromium is not installed (make test
installs it with apt, as root).
"""

import base64

import pytest

from brainldm.book import browser
from brainldm.book.cli import main

# a 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/e4RXxQAA"
                       "AABJRU5ErkJggg==")

GOOD = """<!DOCTYPE html><html><head><title>good</title></head><body>
<h1 id="top">A good page</h1>
<img src="_images/dot.png" alt="a dot">
<p><a href="bad.html">the bad page</a>, <a href="#top">this page's top</a>,
<a href="sub/other.html#part">another page's part</a>, <a href="_images/dot.png">the image</a>,
<a href="https://example.org/">the web</a>, <a href="mailto:someone@example.org">mail</a>, <a href="#">menu</a></p>
<p>Accuracy 50 % | chance 10 %; the model loads from the package.</p>
<script>console.log("fine"); console.warn("a warning is not an error");</script>
</body></html>
"""

OTHER = """<!DOCTYPE html><html><body><h2 id="part">Part</h2><a href="../good.html">back</a></body></html>
"""

BAD = """<!DOCTYPE html><html><head><title>bad</title></head><body>
<img src="_images/missing.png" alt="gone">
<img src="_images/dot.png" alt="fine">
<p><a href="nowhere.html">a missing page</a> <a href="good.html#no-such-part">a missing anchor</a>
<a href="good.html#top">a good anchor</a></p>
<pre>reconstruct:  16%|█▌        | 64/400 [00:01&lt;00:08, 38.61sample/s]</pre>
<script>console.error("boom");</script>
</body></html>
"""


def _site(root):
    (root / "_images").mkdir(parents=True)
    (root / "_images" / "dot.png").write_bytes(PNG)
    (root / "sub").mkdir()
    (root / "good.html").write_text(GOOD, encoding="utf-8")
    (root / "bad.html").write_text(BAD, encoding="utf-8")
    (root / "sub" / "other.html").write_text(OTHER, encoding="utf-8")
    (root / "_static").mkdir()
    (root / "_static" / "macros.html").write_text("{% macro x() %}not a page{% endmacro %}")
    return root


needs_chromium = pytest.mark.skipif(
    browser.chromium_executable() is None,
    reason="Chromium is not installed (apt-get install chromium; make test does, as root)")


@needs_chromium
def test_checker_finds_exactly_the_broken_things_and_passes_the_good_page(tmp_path):
    report = browser.check_site(_site(tmp_path / "html"))
    found = sorted((f.page, f.kind, f.detail) for f in report.failures)
    assert [(page, kind) for page, kind, _ in found] == [
        ("bad.html", "broken link"),
        ("bad.html", "broken link"),
        ("bad.html", "console error"),
        ("bad.html", "image does not load"),
        ("bad.html", "stderr residue"),
    ], found
    details = [detail for _, _, detail in found]
    assert details[0] == "good.html#no-such-part -> no anchor #no-such-part in good.html"
    assert details[1] == "nowhere.html -> nowhere.html does not exist"
    assert details[2].startswith("boom")
    assert details[3] == "_images/missing.png"
    assert details[4].startswith("a progress bar") and "64/400" in details[4]
    assert sorted(report.pages) == ["bad.html", "good.html", "sub/other.html"]  # not _static's templates
    assert report.images == 3
    # good: bad.html, #top, sub/other.html#part, _images/dot.png; other: ../good.html; bad: 3 links
    assert report.links == 8
    assert not report.ok
    assert report.summary() == "browser check: 3 pages, 3 images, 8 links checked, 5 failures"
    assert report.lines()[-1] == report.summary() and all(line.startswith("FAIL ") for line in report.lines()[:-1])


@needs_chromium
def test_a_good_site_passes_and_the_command_exits_zero(tmp_path, capsys):
    site = _site(tmp_path / "html")
    (site / "bad.html").unlink()
    (site / "good.html").write_text(GOOD.replace('<a href="bad.html">the bad page</a>', ""), encoding="utf-8")
    assert main(["check-book", str(site)]) == 0
    assert capsys.readouterr().out.strip() == "browser check: 2 pages, 1 images, 4 links checked, 0 failures"


@needs_chromium
def test_the_command_lists_each_failure_and_exits_non_zero(tmp_path, capsys):
    assert main(["check-book", str(_site(tmp_path / "html"))]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[-1].endswith("5 failures")
    assert all(line.startswith("FAIL bad.html: ") for line in lines[:-1])


def test_without_chromium_the_book_target_skips_with_a_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(browser, "CHROMIUM_CANDIDATES", ())
    monkeypatch.delenv("BRAINLDM_CHROMIUM", raising=False)
    assert main(["check-book", "--if-chromium", str(_site(tmp_path / "html"))]) == 0
    assert "browser check: skipped (Chromium is not installed" in capsys.readouterr().out
    assert main(["check-book", str(tmp_path / "html")]) == 2  # asked for explicitly: an error
    assert "Chromium is not installed" in capsys.readouterr().err


def test_a_link_out_of_the_site_is_broken_even_if_the_file_exists(tmp_path):
    site = _site(tmp_path / "html")
    (tmp_path / "README.md").write_text("outside")
    page = (site / "good.html").resolve()
    assert "outside the built book" in browser._check_link(page, "../README.md", site.resolve())
    assert browser._check_link(page, "sub/other.html#part", site.resolve()) is None
    assert browser._target(page, "https://example.org/x.html", site) is None


def test_a_missing_book_is_an_error(tmp_path, capsys):
    assert main(["check-book", str(tmp_path / "nothing")]) == 2
    assert "there is no built book" in capsys.readouterr().err


def test_pages_are_the_html_outside_static_and_the_html_they_link_to(tmp_path):
    site = _site(tmp_path / "html")
    viewer = site / "_static" / "viewers" / "subj01"
    viewer.mkdir(parents=True)
    (viewer / "index.html").write_text('<script type="text/js-worker" id=CTMWorker></script>')
    link = '<a href="../_static/viewers/subj01/">3D</a></body>'
    (site / "sub" / "other.html").write_text(OTHER.replace("</body>", link))
    pages = [p.relative_to(site.resolve()).as_posix() for p in browser.site_pages(site)]
    assert sorted(pages) == ["_static/viewers/subj01/index.html", "bad.html", "good.html", "sub/other.html"]
    assert browser.is_viewer(viewer / "index.html") and not browser.is_viewer(site / "good.html")


@pytest.mark.parametrize("text", [
    "/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.",
    "Loading weights: 100%|██████████| 103/103 [00:00<00:00, 11239.81it/s]",
    "LDM features:   8%|▊         | 1/13 [00:00<00:05,  2.38batch/s]",
    "MindDiffuser stage 2:  11%|█         | 1/9 [00:01<00:08,  1.01s/it]",
    "encode z: 3/9 [00:02<00:04, 1.5it/s]",
    "/usr/lib/python3/dist-packages/../site-packages/x.py",
    "/home/someone/brainldm/.venv/bin/python",
])
def test_residue_patterns_catch_stderr_left_on_a_page(text):
    assert any(pattern.search(text) for _, pattern in browser.RESIDUE)


@pytest.mark.parametrize("text", [
    "Accuracy 50 % | chance 10 %", "the U-Net's 4 down blocks", "identification: 92% (chance 1%)",
    "| model | 2-way % |", "the package's weights load from brainldm/models/world/weights",
])
def test_residue_patterns_leave_ordinary_text(text):
    assert [what for what, pattern in browser.RESIDUE if pattern.search(text)] == []


def test_an_explicit_chromium_that_does_not_exist_is_an_error(monkeypatch):
    from brainldm.errors import BrainLDMError

    monkeypatch.setenv("BRAINLDM_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(BrainLDMError, match="does not exist"):
        browser.chromium_executable()


def test_summary_line_format():
    report = browser.BrowserReport(pages=["a.html"], images=2, links=3,
                                   failures=[browser.Failure("a.html", "broken link", "x -> y does not exist")])
    assert report.lines() == ["FAIL a.html: broken link: x -> y does not exist",
                              "browser check: 1 pages, 2 images, 3 links checked, 1 failures"]


def test_the_sphinx_extension_keeps_each_inline_script_once():
    from sphinx.builders.html._assets import _JavaScript

    from brainldm.book.sphinx_ext import unique_scripts

    body = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/doctools.js", priority=200), _JavaScript(None, body=body),
               _JavaScript("_static/sphinx-thebe.js", **{"async": "async"}), _JavaScript("", body=body),
               _JavaScript("", body="var togglebuttonSelector = '.toggle';")]
    assert [(s.filename, s.attributes.get("body")) for s in unique_scripts(scripts)] == [
        ("_static/doctools.js", None), (None, body), ("_static/sphinx-thebe.js", None),
        ("", "var togglebuttonSelector = '.toggle';")]


def test_bibliography_labels_are_citation_keys_so_two_works_of_one_year_cannot_clash():
    from pybtex.database import parse_file

    from brainldm.book.sphinx_ext import BibliographyStyle
    from brainldm.settings import project_root

    bib = parse_file(project_root() / "references.bib")
    entries = [bib.entries[key] for key in ("takagi2023cvpr", "takagi2023report")]
    assert [e.fields["year"] for e in entries] == ["2023", "2023"]  # pybtex's alpha labels: "TN23" twice
    formatted = list(BibliographyStyle().format_entries(entries))
    assert [entry.label for entry in formatted] == ["takagi2023cvpr", "takagi2023report"]
