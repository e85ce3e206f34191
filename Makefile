# The two commands a fresh machine needs:  make book  (build the book)  and  make test.
# Each sets up what it needs: Debian packages (inkscape, when apt is usable), the virtual
# environment .venv with the pinned packages, and the package itself (editable).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: book test test-slow refs env system-packages clean

book: env system-packages
	$(BIN)/brainldm book

# Two workers, one file (one notebook) each at a time: a notebook's cells share one kernel.
test: env
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

# ROI outlines and labels on pycortex flatmaps need inkscape. Without apt (or without root)
# the book still builds and its flatmaps go without ROI outlines and labels.
system-packages:
	@command -v inkscape >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inkscape >/dev/null) \
	      || echo "brainldm: could not install inkscape: flatmaps will have no ROI outlines or labels"; \
	  else echo "brainldm: inkscape is not installed and apt is not usable: flatmaps will have no ROI outlines or labels"; fi; }

clean:
	rm -rf book/_build book/*.ipynb
