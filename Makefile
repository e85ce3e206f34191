# The two commands a fresh machine needs:  make book  (build the book)  and  make test.
# Each sets up what it needs: Debian packages (inkscape and chromium, when apt is usable), the
# virtual environment .venv with the pinned packages, and the package itself (editable).
# make book ends with a browser check of every built page (brainldm check-book).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: book check-book test test-slow refs env system-packages inkscape chromium clean

book: env system-packages
	$(BIN)/brainldm book --scheduler local  # stages and chapters on a local Dask cluster, one worker per core
	$(BIN)/brainldm check-book --if-chromium

# Every built page in headless Chromium: images, console errors, internal links, the WebGL
# viewer's data, and no stderr residue (progress bars, warnings, venv paths) on any page.
check-book: env chromium
	$(BIN)/brainldm check-book

# Two workers, one file (one notebook) each at a time: a notebook's cells share one kernel.
test: env chromium  ## tests/test_browser.py drives chromium
	$(BIN)/pytest -n 2 --dist loadfile --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg tests

test-slow: env
	$(BIN)/pytest -m slow tests

refs: env  ## rewrite the nbval reference notebooks after changing a chapter
	$(BIN)/brainldm refs

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -e '.[book,test]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import brainldm, torch, diffusers, cortex, nbval, myst_nb" >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

system-packages: inkscape chromium

# apt_install PACKAGE, WHAT IS LOST WITHOUT IT: install a Debian package when it is missing and apt is
# usable (root); otherwise say what goes without it and carry on.
define apt_install
	@command -v $(1) >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null) \
	      || echo "brainldm: could not install $(1): $(2)"; \
	  else echo "brainldm: $(1) is not installed and apt is not usable: $(2)"; fi; }
endef

# ROI outlines and labels on pycortex flatmaps need inkscape. Without apt (or without root)
# the book still builds and its flatmaps go without ROI outlines and labels.
inkscape:
	$(call apt_install,inkscape,flatmaps will have no ROI outlines or labels)

# The browser check (make book's last step, tests/test_browser.py) drives Debian's chromium
# through playwright; no browser is downloaded. Without apt (or without root) it is skipped.
chromium:
	$(call apt_install,chromium,the browser check of the book is skipped)

clean:
	rm -rf book/_build book/*.ipynb
