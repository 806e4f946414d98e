# k3os-factory: every target installs what it needs, so a fresh Debian 12 machine only needs `make`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=
# Debian packages: QEMU and image tools for the local bake, packer for the templates,
# cloud-init as the benchmark peer, shellcheck for install.sh.
APT_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap packer genisoimage xorriso shellcheck \
	dosfstools mtools grub-pc-bin grub-efi-amd64-bin grub-common grub2-common squashfs-tools e2fsprogs fdisk \
	parted cloud-init cpio zstd debian-archive-keyring busybox-static kmod

.PHONY: help deps apt venv test test-fast lint typecheck bench bake iso base clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

apt:  ## install the Debian packages the tests and the local bake use (skipped when present)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make: installing Debian packages:" $$missing >&2; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed  ## create .venv with the project (editable) and the dev extras

deps: apt venv

lint: venv  ## ruff
	$(VENV)/bin/ruff check datasources factory image_base tests
	$(VENV)/bin/ruff format --check datasources factory image_base tests

typecheck: venv  ## mypy strict on datasources/, factory/, image_base/
	$(VENV)/bin/mypy

test: deps lint typecheck  ## everything CI runs: lint, types, all tests (VM tests included)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: deps  ## tests without VMs
	$(VENV)/bin/pytest -m 'not vm' $(PYTEST_ARGS)

bench: deps  ## benchmarks against named peers (cloud-init, packer)
	$(PY) -m tests.bench.run

base: deps  ## build (or reuse) the local base disk
	$(VENV)/bin/factory base build

iso: deps  ## build (or reuse) the k3OS-style ISO
	$(VENV)/bin/factory iso build

bake: deps  ## build base disk and ISO, bake a qcow2 under QEMU, verify it boots and takes its userdata
	@t0=$$SECONDS; $(VENV)/bin/factory base build >/dev/null; t1=$$SECONDS; \
	$(VENV)/bin/factory iso build >/dev/null; t2=$$SECONDS; \
	$(VENV)/bin/factory bake qemu --iso dist/k3os.iso --output dist --manifest dist/factory-manifest.json >/dev/null; \
	t3=$$SECONDS; \
	image=$$($(PY) -c 'import json; print(json.load(open("dist/factory-manifest.json"))["builds"][-1]["files"][0]["name"])'); \
	$(VENV)/bin/factory verify qemu "$$image" --provider aws; t4=$$SECONDS; \
	echo "make bake: base $$((t1-t0))s, iso $$((t2-t1))s, bake $$((t3-t2))s, verify $$((t4-t3))s"; \
	echo "make bake: image    $$image ($$(du -m "$$image" | cut -f1) MiB)"; \
	echo "make bake: manifest dist/factory-manifest.json"

clean:
	rm -rf dist build .mypy_cache .pytest_cache .ruff_cache
