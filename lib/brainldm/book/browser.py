"""The built book as a reader sees it: every page opened in headless Chromium.

``brainldm check-book`` (the last step of ``make book``) serves the built HTML on a local
port, opens every page in the system's Chromium (Debian's ``chromium``, driven by
``playwright`` through its ``executable_path``: no browser is downloaded) and checks that

- every ``<img>`` loads (``naturalWidth > 0``),
- the page logs no console error and raises no JavaScript error,
- no request for a file of the book fails (the pycortex WebGL viewer's data included),
- every internal link resolves: the file exists and so does its ``#anchor``,
- no stderr residue shows: tqdm's "IProgress not found" warning, "Loading weights" and other
  progress bars, absolute paths of the virtual environment.

Pages are the site's HTML files outside ``_static``/``_sources`` and every HTML file they link
to (the viewer's ``_static/viewers/<name>/index.html``). Requests outside the local server
(fonts or scripts from the web) are blocked and not counted as failures: the check needs no
network.

The result is one line, ``browser check: N pages, M images, K links checked, F failures``,
preceded by one line per failure.
"""

import functools
import html.parser
import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from brainldm.errors import BrainLDMError

__all__ = ["BENIGN_CONSOLE", "RESIDUE", "BrowserReport", "Failure", "check_site", "chromium_executable",
           "is_viewer", "site_pages"]

#: Text that must not show on a page: (what it is, pattern).
RESIDUE = (
    ("tqdm's ipywidgets warning", re.compile(r"IProgress not found|TqdmWarning")),
    ("a 'Loading weights' progress bar", re.compile(r"Loading weights")),
    ("a progress bar", re.compile(r"\d%\||it/s\]|s/it\]|\[\d\d:\d\d<")),
    ("an absolute path of the virtual environment", re.compile(r"/\.venv/|site-packages")),
)

#: Console errors that are no fault of the book: (why, pattern on the message).
BENIGN_CONSOLE = (
    # pycortex's static viewer probes a Leap Motion controller on its fixed local port
    ("pycortex's Leap Motion probe", re.compile(r"WebSocket connection to 'ws://127\.0\.0\.1:6437/")),
    # pydata-sphinx-theme on a reader's first visit (no colour mode in localStorage yet)
    ("the theme's first-visit colour mode", re.compile(r"^Got invalid theme mode: \. Resetting to auto\.$")),
)

#: Chromium's executables, most specific first (Debian's launcher script is a fallback).
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome",
                       "google-chrome-stable")

_SKIPPED_DIRS = ("_static", "_sources", "_images", "_downloads")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")

# In the page: every image made eager and awaited (a lazy image would never load headless).
_IMAGES_JS = """async (timeout) => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  const settle = img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
  });
  await Promise.race([Promise.all(images.map(settle)), new Promise(done => setTimeout(done, timeout))]);
  return images.map(img => ({src: img.getAttribute("src") || "", url: img.currentSrc || img.src,
                             width: img.naturalWidth}));
}"""

# The page's text, hidden outputs (collapsed cells) included, scripts and styles excluded.
_TEXT_JS = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll("script, style, noscript, template").forEach(node => node.remove());
  return body.textContent;
}"""


@dataclass(frozen=True)
class Failure:
    """One problem on one page."""

    page: str
    kind: str
    detail: str

    def __str__(self):
        return f"{self.page}: {self.kind}: {self.detail}"


@dataclass
class BrowserReport:
    """What :func:`check_site` checked and what failed."""

    pages: list = field(default_factory=list)
    images: int = 0
    links: int = 0
    failures: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.failures

    def summary(self):
        return (f"browser check: {len(self.pages)} pages, {self.images} images, {self.links} links checked, "
                f"{len(self.failures)} failures")

    def lines(self):
        """One line per failure, then the summary."""
        return [f"FAIL {failure}" for failure in self.failures] + [self.summary()]


def chromium_executable(executable=None):
    """The Chromium to drive: ``executable`` → ``BRAINLDM_CHROMIUM`` → Debian's chromium; None if absent."""
    for candidate in (executable, os.environ.get("BRAINLDM_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if not candidate:
            continue
        path = shutil.which(candidate)
        if path:
            return path
        if candidate in (executable, os.environ.get("BRAINLDM_CHROMIUM")):
            raise BrainLDMError(f"the Chromium executable {candidate!r} does not exist or is not executable")
    return None


def _relative(path, root):
    return path.resolve().relative_to(root).as_posix()


class _Anchors(html.parser.HTMLParser):
    """The ids (and ``<a name>``) of an HTML file."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.anchors = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.anchors.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.anchors.add(attrs["name"])
        if tag in ("a", "area") and attrs.get("href") is not None:
            self.links.append(attrs["href"])


@functools.lru_cache(maxsize=None)
def _parse(path):
    parser = _Anchors()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.anchors), tuple(parser.links)


def _target(page, href, root):
    """``(file, fragment)`` of an internal link, or None for an external one (or ``#``)."""
    href = href.strip()
    if not href or href == "#" or _SCHEME.match(href):
        return None
    parts = urlsplit(href)
    target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if parts.path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def site_pages(root):
    """The site's pages: HTML outside ``_static``/``_sources`` and the local HTML they link to."""
    root = Path(root).resolve()
    pages = sorted(p.resolve() for p in root.rglob("*.html")
                   if not any(part in _SKIPPED_DIRS for part in p.relative_to(root).parts[:-1]))
    seen = set(pages)
    queue = list(pages)
    while queue:
        page = queue.pop()
        for href in _parse(page)[1]:
            target = _target(page, href, root)
            if target and target[0].suffix in (".html", ".htm") and target[0].is_file() \
                    and target[0] not in seen and target[0].is_relative_to(root):
                seen.add(target[0])
                pages.append(target[0])
                queue.append(target[0])
    return pages


def _check_link(page, href, root):
    """A failure message for a broken internal link, else None."""
    target, fragment = _target(page, href, root)
    if not target.is_relative_to(root):
        return f"{href} -> {target} is outside the built book (a published copy would not have it)"
    if not target.is_file():
        return f"{href} -> {_display(target, root)} does not exist"
    if fragment and target.suffix in (".html", ".htm") and fragment not in _parse(target)[0]:
        return f"{href} -> no anchor #{fragment} in {_display(target, root)}"
    return None


def _display(path, root):
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server:
    """The site on an ephemeral port of 127.0.0.1, in a thread (XHR from file:// is blocked)."""

    def __init__(self, root):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _viewer_failures(page, loaded):
    """A pycortex viewer: WebGL works, the viewer object exists and its mesh and data arrived."""
    failures = []
    state = page.evaluate("""() => ({webgl: !!document.createElement("canvas").getContext("webgl"),
                                      viewer: typeof viewer !== "undefined" && !!viewer.renderer})""")
    if not state["webgl"]:
        failures.append(("viewer", "WebGL is not available in this browser"))
    if not state["viewer"]:
        failures.append(("viewer", "the pycortex viewer did not start (no viewer.renderer)"))
    for what, suffix in (("surface mesh (.ctm)", ".ctm"), ("data", ".png")):
        if not any(unquote(urlsplit(url).path).endswith(suffix) for url in loaded):
            failures.append(("viewer", f"its {what} was never loaded"))
    return failures


def is_viewer(path):
    """Whether an HTML file is a pycortex static (WebGL) viewer."""
    return "CTMWorker" in Path(path).read_text(encoding="utf-8", errors="replace")


def _check_page(context, url, base, name, timeout_ms, viewer=False):
    """Open one page; its failures (console, requests, images, residue, viewer) and images."""
    failures, loaded, broken = [], [], set()
    page = context.new_page()

    def local(request_url):
        return request_url.startswith(base)

    def on_console(message):
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        text = " ".join(message.text.split())
        if where and not local(where) and not where.startswith(("data:", "blob:")):
            return  # a blocked request to the web
        if where.endswith("/favicon.ico") or any(pattern.search(text) for _, pattern in BENIGN_CONSOLE):
            return  # the browser's own favicon request; a known harmless probe
        if text.startswith("Failed to load resource") and local(where):
            return  # reported once, with its path, as a failed request (or a broken image)
        failures.append(("console error", f"{text[:300]}" + (f" ({where[len(base) - 1:]})" if local(where) else "")))

    def on_request_failed(request):
        if local(request.url):
            failures.append(("failed request", f"{request.url[len(base) - 1:]} ({request.failure})"))

    def on_response(response):
        if local(response.url) and response.status < 400:
            loaded.append(response.url)
        if local(response.url) and response.status >= 400:
            failures.append(("failed request", f"{response.url[len(base) - 1:]} (HTTP {response.status})"))

    page.on("console", on_console)
    page.on("pageerror", lambda error: failures.append(("JavaScript error", str(error).splitlines()[0][:300])))
    page.on("requestfailed", on_request_failed)
    page.on("response", on_response)
    try:
        page.goto(url, wait_until="load", timeout=timeout_ms)
        try:
            page.wait_for_load_state("networkidle", timeout=timeout_ms)
        except Exception:  # a page that keeps polling still gets checked
            pass
        images = page.evaluate(_IMAGES_JS, timeout_ms)
        broken = {image["url"] for image in images if not image["width"]}
        for image in images:
            if not image["width"]:
                failures.append(("image does not load", image["src"] or image["url"]))
        text = page.evaluate(_TEXT_JS)
        for what, pattern in RESIDUE:
            found = pattern.search(text)
            if found:
                start = text.rfind("\n", 0, found.start()) + 1
                end = text.find("\n", found.end())
                line = " ".join(text[start:end if end >= 0 else None].split())[:160]
                failures.append(("stderr residue", f"{what}: {line!r}"))
        if viewer:
            failures.extend(_viewer_failures(page, loaded))
    except Exception as error:  # playwright's errors (timeouts, crashes) without importing them
        failures.append(("page did not load", " ".join(str(error).split())[:300]))
        images = []
    finally:
        page.close()
    # a broken image is one failure, not two: its failed request is left out, also when the request's event
    # arrived after the images were read (it can, on a loaded machine; no event arrives after close)
    failures = [(kind, detail) for kind, detail in failures
                if not (kind == "failed request" and base[:-1] + detail.split(" (")[0] in broken)]
    return [Failure(name, kind, detail) for kind, detail in failures], len(images)


def check_site(root, executable=None, timeout=60.0, log=None):
    """Open every page of the built site ``root`` in headless Chromium and check it.

    Parameters
    ----------
    root : path
        The built HTML (``book/_build/html``).
    executable : path, optional
        Chromium (default: ``BRAINLDM_CHROMIUM``, else Debian's ``chromium``).
    timeout : float
        Seconds allowed for one page to load.
    log : callable, optional
        Receives one line per page as it is checked.

    Returns
    -------
    report : BrowserReport
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise BrainLDMError(f"there is no built book at {root}: build it first (make book)")
    executable = chromium_executable(executable)
    if executable is None:
        raise BrainLDMError("Chromium is not installed, so the built book cannot be checked in a browser: "
                            "apt-get install chromium (make system-packages does, as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrainLDMError("playwright is not installed: pip install -e '.[book]' (make env)") from None
    _parse.cache_clear()
    pages = site_pages(root)
    report = BrowserReport(pages=[_relative(p, root) for p in pages])
    timeout_ms = timeout * 1000
    with _Server(root) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            # WebGL without a GPU (pycortex's viewer), in a container without a sandbox
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--disable-dev-shm-usage"])
        try:
            context = browser.new_context()
            context.route(lambda url: not url.startswith(server.base), lambda route: route.abort())
            for path, name in zip(pages, report.pages):
                failures, n_images = _check_page(context, server.base + quote(name), server.base, name,
                                                 timeout_ms, viewer=is_viewer(path))
                links = _parse(path)[1]
                for href in links:
                    if _target(path, href, root) is None:
                        continue
                    report.links += 1
                    problem = _check_link(path, href, root)
                    if problem:
                        failures.append(Failure(name, "broken link", problem))
                report.images += n_images
                report.failures.extend(failures)
                if log:
                    log(f"{name:<48} {n_images:4d} images {len(links):5d} links  "
                        f"{'ok' if not failures else f'{len(failures)} failures'}")
        finally:
            browser.close()
    return report
