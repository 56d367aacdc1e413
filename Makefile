# lockgate: `make run` starts the gateway, `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
# llama-cpp-python (the local model extra) builds from source; its LLaVA part is not needed.
# A portable AVX2 build: the native one (-march=native) crashed in decode on a Xeon with
# AMX and AVX-512 (llama-cpp-python 0.3.36, SmolLM2).
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: run test lint typecheck unit bench clean chromium wrk compiled

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[compile]'
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(STAMP_RUN)

# The governance path compiled with mypyc (src/lockgate/compiled.py lists the modules), in
# place; rebuilt when any source changes, since mypyc types a module by what it imports.
# COMPILE=0 removes the builds: the same modules then run as plain Python.
COMPILE ?= 1
COMPILED := src/lockgate/.compiled
SOURCES := $(shell find src/lockgate -name '*.py')
$(COMPILED): $(SOURCES) pyproject.toml tools/mypyc_build.py $(STAMP_RUN)
	$(BIN)/python tools/mypyc_build.py
	touch $@
compiled: $(if $(filter 1,$(COMPILE)),$(COMPILED),)
ifneq ($(COMPILE),1)
	$(BIN)/python tools/mypyc_build.py --clean
	rm -f $(COMPILED)
endif

run: $(STAMP_RUN) compiled
	$(BIN)/lockgate serve $(if $(CONFIG),--config $(CONFIG),)

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

# The dashboard's browser test drives Debian's chromium (Playwright never downloads one).
# Installed only when missing; if that fails the test skips, or fails in CI
# (LOCKGATE_REQUIRE_SERVICES=1).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q \
		&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; } \
		|| { echo "could not install chromium (apt-get install chromium)" >&2; \
		     test "$$LOCKGATE_REQUIRE_SERVICES" != 1; }

unit: $(STAMP_DEV) chromium compiled
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck unit

# The benchmarks' load generator is Debian's wrk, installed when missing.
wrk:
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -q \
		&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q wrk; }

bench: $(STAMP_DEV) wrk compiled
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(COMPILED)
	find src -name '*.so' -delete
