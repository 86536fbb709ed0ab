# One command each: `make book` (executed HTML site), `make test` (the test
# suite), `make pdf` (the whole book as one PDF), `make check` (all CI runs).
# Every target bootstraps what it needs and is safe to run again.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book
STAMP := $(VENV)/.installed
# -W: warnings are errors; -n: nitpicky references; --keep-going: report them all.
JBFLAGS := -W -n --keep-going
# EDITION=student builds the book without solutions into _build/student/
# (book/_ext/editions.py); the default edition keeps them, collapsed.
EDITION ?= full
ifeq ($(EDITION),student)
  OUT := _build/student/_build
  JBOUT := --path-output _build/student
else ifeq ($(EDITION),full)
  OUT := _build
  JBOUT :=
else
  $(error EDITION must be full or student, not $(EDITION))
endif
JB_BUILD = DLBOOK_EDITION=$(EDITION) $(OFFLINE) $(JB) build . $(JBFLAGS) $(JBOUT)
# Parallel execution of stale chapters before Sphinx reads them (tools/execute.py).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_static/mathjax/tex-chtml.js
AXE_VERSION := 4.14.1
AXE := _build/axe/axe.min.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_TEX := texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk \
           fonts-freefont-otf poppler-utils
APT_BROWSER := chromium
PYTEST := $(PY) -m pytest -n 2
# Builds and tests run with the network cut off: nothing may be downloaded.
OFFLINE := tools/offline

.PHONY: help env execute book pdf student test test-fast site-test check chapter \
        clean clean-cache \
        apt-tex apt-browser

help:
	@echo "make book    execute stale chapters in parallel, then build the HTML site (_build/html)"
	@echo "make test    run the test suite (unit, claim, lint and notebook tests)"
	@echo "make pdf     build the whole book as one PDF (_build/latex/book.pdf)"
	@echo "make book EDITION=student / make pdf EDITION=student   the book without solutions"
	@echo "             (_build/student/_build/); make student builds both"
	@echo "make check   everything CI runs: HTML, tests, PDF, student edition, site checks"
	@echo "make execute only execute the stale chapters (JOBS=N processes; default: cores)"
	@echo "make chapter CH=book/foundations/history.md   preview one chapter"
	@echo "make clean-cache   forget executed outputs; make clean   remove _build"

env: $(STAMP)

# The virtual environment, (re)installed when the requirements change.
$(STAMP): requirements.txt code/pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# MathJax served from the site itself: no page makes a third-party request.
$(MATHJAX):
	rm -rf _build/npm && mkdir -p _build/npm
	cd _build/npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null \
	  && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	rm -rf book/_static/mathjax && mkdir -p book/_static/mathjax
	cd _build/npm/package/es5 && cp -r tex-chtml.js input output ui a11y sre adaptors \
	  $(CURDIR)/book/_static/mathjax/

# axe-core, the accessibility engine that tests/test_a11y.py injects into every
# page; installed like MathJax, so that nothing is fetched while the tests run.
$(AXE):
	rm -rf _build/axe && mkdir -p _build/axe
	cd _build/axe && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null \
	  && tar xzf axe-core-$(AXE_VERSION).tgz && cp package/axe.min.js package/LICENSE .

apt-tex:
	@dpkg -s $(APT_TEX) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q \
	    --no-install-recommends $(APT_TEX); }

apt-browser:
	@dpkg -s $(APT_BROWSER) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q \
	    --no-install-recommends $(APT_BROWSER); }

execute: $(STAMP)
	$(PY) tools/cache_guard.py
	$(OFFLINE) $(PY) tools/execute.py --jobs $(JOBS)

# A build re-reads only the pages that changed (tools/execute.py marks the
# chapters it re-executed as changed), so a rebuild with no change takes
# seconds. After a build that failed, or was interrupted, the next one passes
# --all and re-reads every page, so that a page that warned warns again
# instead of being skipped: the marker $(OUT)/<builder>.incomplete says so.
book: execute $(MATHJAX)
	@mkdir -p $(OUT); m=$(OUT)/html.incomplete; all=; [ ! -e $$m ] || all=--all; \
	  echo "$(JB_BUILD) $$all --builder html"; \
	  touch $$m; $(JB_BUILD) $$all --builder html && rm -f $$m
	@[ ! -f $(OUT)/latex/book.pdf ] || cp $(OUT)/latex/book.pdf $(OUT)/html/book.pdf
	@echo "HTML: $(OUT)/html/index.html   execution times: _build/execution_times.md"

pdf: execute $(MATHJAX) apt-tex
	@mkdir -p $(OUT); m=$(OUT)/latex.incomplete; all=; [ ! -e $$m ] || all=--all; \
	  echo "$(JB_BUILD) $$all --builder pdflatex"; \
	  touch $$m; $(JB_BUILD) $$all --builder pdflatex && rm -f $$m
	@[ ! -d $(OUT)/html ] || cp $(OUT)/latex/book.pdf $(OUT)/html/book.pdf
	@echo "PDF: $(OUT)/latex/book.pdf"

student: $(STAMP)
	$(MAKE) book EDITION=student
	$(MAKE) pdf EDITION=student

test: $(STAMP)
	$(OFFLINE) $(PYTEST) -m "not site"

test-fast: $(STAMP)
	$(OFFLINE) $(PYTEST) -m "not site and not slow"

site-test: $(STAMP) apt-browser $(AXE)
	$(OFFLINE) $(PY) -m pytest -m site -p no:xdist

# The build first, so that the notebook tests can reuse its executions.
check: book test pdf student site-test

chapter: $(STAMP) $(MATHJAX)
	$(PY) tools/build_one.py $(CH) $(if $(PDF),--pdf,)

clean-cache:
	rm -rf _build/.jupyter_cache _build/jupyter_execute

clean:
	rm -rf _build
