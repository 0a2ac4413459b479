# MetaLake Engine — the commands a contributor needs. `make help` lists them.
#
#   make demo   bootstrap .venv, start the embedded engine (state in ./.demo-home), ingest
#               generated shape images, run queries; `make down` stops it again
#   make test   bootstrap .venv and run pytest (the tests start their own PostgreSQL, Redis, S3)
#   make test-fast  only the tests that need no service (no database, Redis, S3 or process)

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
STAMP := $(VENV)/.metalake-installed
DEMO_HOME ?= $(CURDIR)/.demo-home
PYTEST_ARGS ?=
BENCH_ARGS ?=  # e.g. --quick: smaller runs of bench/{ingest,similarity,growth,api_load,exports,ui}.py

.DEFAULT_GOAL := help
.PHONY: help venv system test test-fast demo lint bench up down status clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/bootstrap_venv.sh
	PYTHON="$(PYTHON)" scripts/bootstrap_venv.sh $(VENV)
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with python3.11 and install the engine + dev tools (once)

system:  ## install the Debian packages the engine uses when missing (bubblewrap, chromium; as root)
	scripts/system_packages.sh

test: venv system  ## run the test suite (starts its own embedded services)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: venv system  ## the tests that need no service or model (marker: not integration)
	$(VENV)/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

demo: venv system  ## start the engine, ingest generated images, run queries (state in .demo-home)
	METALAKE_HOME="$${METALAKE_HOME:-$(DEMO_HOME)}" $(VENV)/bin/python scripts/demo.py

lint: venv  ## ruff check, ruff format --check, mypy, lint-imports (scripts/lint.sh)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/lint.sh

bench: venv  ## benchmarks (bench/README.md): ingest, similarity, growth, API load, exports, gallery, analysis
	@status=0; for script in ingest similarity growth api_load exports ui; do \
		echo "== bench/$$script.py $(BENCH_ARGS)"; \
		YOLO_OFFLINE=1 $(VENV)/bin/python bench/$$script.py $(BENCH_ARGS) || status=1; \
	done; \
	echo "== bench/analysis.py"; \
	YOLO_OFFLINE=1 $(VENV)/bin/python bench/analysis.py || status=1; \
	exit $$status

status:  ## status of the demo engine (METALAKE_HOME, default .demo-home)
	@if [ -x $(VENV)/bin/metalake ]; then \
		METALAKE_HOME="$${METALAKE_HOME:-$(DEMO_HOME)}" $(VENV)/bin/metalake status; \
	else echo "no $(VENV) yet: nothing runs"; fi

down:  ## stop the demo engine (METALAKE_HOME, default .demo-home)
	@if [ -x $(VENV)/bin/metalake ]; then \
		METALAKE_HOME="$${METALAKE_HOME:-$(DEMO_HOME)}" $(VENV)/bin/metalake down; \
	else echo "no $(VENV) yet: nothing to stop"; fi

clean: down  ## stop the demo engine, then remove .venv, .demo-home, out/ and caches
	rm -rf $(VENV) .demo-home out build dist *.egg-info .pytest_cache .mypy_cache \
		.ruff_cache .hypothesis .import_linter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
