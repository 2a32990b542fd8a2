# faregate: every target sets up .venv first (quick when already done).
# See README.md for what each target does.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.faregate-installed
export PYTHONPATH := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

SCENARIO ?= host_sim/scenarios/default.toml
SEED     ?= 1
ONLY     ?=
PORT     ?=
IMAGE    ?=
PROFILE  ?= linux
VERSION  ?= 0.1.0
COUNTER  ?= 1
RELEASE_KEY ?=
CRED     ?=
MCU_HEAP ?= 512K
MCU_SUITE := test_mcu_gate test_mcu_profile test_flashdeny test_mcu_journal test_mcu_limits test_mcu_bus

.PHONY: setup install run test test-py test-mpy test-mcu bench soak fuzz lint image flash clean help

help:
	@echo "make run     set up, then run the default simulated station ($(SCENARIO))"
	@echo "make test    set up, then run pytest on CPython and the portable suite on MicroPython"
	@echo "             (and the MCU suite in a $(MCU_HEAP) heap: make test-mcu)"
	@echo "make bench   benchmarks -> bench/results.json (ONLY=P1,P4 for a subset)"
	@echo "make soak    long robustness runs (power cuts, link faults)"
	@echo "make fuzz    >= 1,000,000 inputs per parser"
	@echo "make lint    ruff, and mypy on the CPython-only packages"
	@echo "make image   build a firmware image (PROFILE=linux|mcu VERSION= COUNTER= RELEASE_KEY=operator/release.key signs it)"
	@echo "make flash   IMAGE=build/gate-linux.fgi [PORT=/dev/ttyUSB0] [CRED=dir]: flash it, trial boot, confirm"

# Set up only when requirements.txt or pyproject.toml changed since the last install (by content,
# so a fresh checkout of the same files does not reinstall).
setup:
	@want=$$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  $(MAKE) --no-print-directory install && echo "$$want" > $(STAMP); \
	fi

# $(call apt_need,PACKAGE,CHECK,WHAT FOR,WITHOUT IT): install a Debian package when CHECK fails
# (as root with apt-get), else warn what is missing and how to fix it
define apt_need
	@if ! $(2); then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing Debian's $(1) ($(3))"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	  else \
	    echo "setup: WARNING $(1) is missing; $(4). Fix: sudo apt-get install $(1)"; \
	  fi; \
	fi
endef

install:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "faregate needs Python >= 3.11, found " + sys.version.split()[0])'
	$(call apt_need,libzbar0,ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0',for the pyzbar decoder,the pyzbar decoder and its tests are disabled)
	$(call apt_need,postgresql,ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1,for the back office's PostgreSQL backend and its tests,the PostgreSQL tests fail)
	$(call apt_need,chromium,test -x /usr/bin/chromium,for the dashboard's browser test,tests/test_dashboard.py fails)
	$(call apt_need,softhsm2,test -e /usr/lib/softhsm/libsofthsm2.so,for the device key in a PKCS#11 token and its tests (a real token: SoftHSM2),tests/test_pkcs11.py fails)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing pinned dependencies into $(VENV) (first run takes a minute)"
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .

run: setup
	$(BIN)/faregate sim run $(SCENARIO) --seed $(SEED)

test: test-mpy test-mcu test-py

test-mpy: setup
	$(BIN)/micropython -X heapsize=16M tests/portable/run.py

# The MCU gate in an MCU's memory (docs/mcu.md): each module is one gate in its own interpreter.
test-mcu: setup
	@for m in $(MCU_SUITE); do \
	  echo "MCU suite, heap $(MCU_HEAP): $$m"; \
	  $(BIN)/micropython -X heapsize=$(MCU_HEAP) tests/portable/run.py $$m || exit 1; \
	done

# two workers (pytest-xdist): the 2-core machine make test is budgeted on (15 minutes); every
# test takes its own ports, directories and PostgreSQL cluster (tests/pgcluster.py)
test-py: setup
	$(BIN)/pytest -q -n 2 -m "not soak and not fuzz"

bench: setup
	$(PY) -m bench $(if $(ONLY),--only $(ONLY),)

soak: setup
	$(BIN)/pytest -q -m soak

fuzz: setup
	$(BIN)/pytest -q -m fuzz

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy drivers host_sim provisioning bench

image: setup
	$(BIN)/faregate image build --profile $(PROFILE) --version $(VERSION) --counter $(COUNTER) \
	  $(if $(RELEASE_KEY),--key $(RELEASE_KEY),) --out build/gate-$(PROFILE).fgi

flash: setup
	@test -n "$(IMAGE)" || { echo "usage: make flash IMAGE=build/gate-linux.fgi [PORT=/dev/ttyUSB0] [CRED=technician-dir]"; exit 2; }
	$(BIN)/faregate flash $(if $(PORT),--port $(PORT),) $(if $(CRED),--cred $(CRED),) $(IMAGE)

clean:
	rm -rf $(VENV) build run .pytest_cache .mypy_cache .ruff_cache
