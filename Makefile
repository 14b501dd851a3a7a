# Sightline: `make run` serves the shipped models on 127.0.0.1:9001, `make test` runs every test.
# Both set everything up first and are idempotent.

SHELL := /bin/bash
ORT_VERSION := 1.31.1
CACHE_DIR := $(CURDIR)/.cache
ORT_DIR := $(CACHE_DIR)/onnxruntime-$(ORT_VERSION)
ORT_LIB := $(ORT_DIR)/libonnxruntime.so.$(ORT_VERSION)
PROMTOOL := $(shell command -v promtool 2>/dev/null || echo /usr/bin/promtool)

OPENVINO_EP_VERSION := 1.8.1
OPENVINO_DIR := $(ORT_DIR)/openvino
OPENVINO_PLUGIN := $(OPENVINO_DIR)/libonnxruntime_providers_openvino_plugin.so
# Test support: lets the real OpenVINO plugin run on non-Intel CPUs (see tests/support/openvino_vendor_shim.c).
OPENVINO_SHIM := $(CACHE_DIR)/test-support/libopenvino_vendor_shim.so
ORT_GPU_DIR := $(CACHE_DIR)/onnxruntime-gpu-$(ORT_VERSION)

export ORT_DYLIB_PATH ?= $(ORT_LIB)
export SIGHTLINE_OPENVINO_SHIM := $(OPENVINO_SHIM)
export CARGO_INCREMENTAL ?= 0
export PROMTOOL

VENV := $(CURDIR)/.venv
VENV_STAMP := $(VENV)/.requirements-installed
MOTO_VERSION := 5.2.5
INFERENCE_SDK_VERSION := 1.8.3

.PHONY: setup setup-gpu run test build bench soak loadtest roboflow-server image image-gpu clean lint ort openvino sysdeps venv fuzz

setup: ort openvino sysdeps venv $(OPENVINO_SHIM)
	cargo fetch --locked 2>/dev/null || cargo fetch

## ONNX Runtime: the shared library from the pinned PyPI wheel (no CDN download, see docs).
ort: $(ORT_LIB)

$(ORT_LIB):
	mkdir -p $(CACHE_DIR)/whl $(ORT_DIR)
	python3 -m pip download --no-cache-dir onnxruntime==$(ORT_VERSION) --no-deps --only-binary=:all: \
		--platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
		--python-version 3.11 -d $(CACHE_DIR)/whl -q
	python3 scripts/extract_ort.py $(CACHE_DIR)/whl $(ORT_DIR) $(ORT_VERSION)
	test -f $@

## OpenVINO: the plugin execution provider of PyPI onnxruntime-ep-openvino, laid out beside
## ONNX Runtime in openvino/ (where the server looks by default; OPENVINO_EP_LIBRARY overrides).
openvino: $(OPENVINO_PLUGIN)

$(OPENVINO_PLUGIN):
	mkdir -p $(CACHE_DIR)/whl
	python3 -m pip download --no-cache-dir onnxruntime-ep-openvino==$(OPENVINO_EP_VERSION) --no-deps --only-binary=:all: \
		--platform manylinux_2_28_x86_64 --python-version 3.11 -d $(CACHE_DIR)/whl -q
	python3 scripts/extract_openvino.py $(CACHE_DIR)/whl $(OPENVINO_DIR) $(OPENVINO_EP_VERSION)
	test -f $@

$(OPENVINO_SHIM): tests/support/openvino_vendor_shim.c
	mkdir -p $(dir $@)
	gcc -O2 -shared -fPIC -Wall -Werror -o $@ $< -ldl

## GPU libraries (not part of `make setup`: ≈ 2.5 GB): the CUDA/TensorRT build of ONNX Runtime
## from PyPI onnxruntime-gpu and the CUDA 13 / cuDNN 9 runtime from NVIDIA's wheels, in
## .cache/onnxruntime-gpu-$(ORT_VERSION)/ (cuda/ beside it); the GPU image copies this layout.
## Serve with ORT_DYLIB_PATH=$(ORT_GPU_DIR)/libonnxruntime.so.$(ORT_VERSION).
setup-gpu:
	python3 scripts/setup_gpu.py $(CACHE_DIR)

## Debian packages: nasm (libjpeg-turbo's SIMD, built by mozjpeg-sys), promtool (the metrics test),
## podman with buildah, runc, mmdebstrap and catatonit (the container tests; see `make image`),
## and chromium with iproute2 (the /docs page test, in a loopback-only network namespace).
SYSDEPS_MISSING = $(strip $(if $(shell command -v nasm),,nasm) $(if $(shell command -v promtool),,prometheus) \
	$(if $(shell command -v podman),,podman) $(if $(shell command -v buildah),,buildah) \
	$(if $(shell command -v runc),,runc) $(if $(shell command -v mmdebstrap),,mmdebstrap) \
	$(if $(shell command -v catatonit),,catatonit) $(if $(shell command -v chromium),,chromium) \
	$(if $(shell command -v ip),,iproute2))
sysdeps:
	@if [ -n "$(SYSDEPS_MISSING)" ]; then \
		echo "installing Debian packages: $(SYSDEPS_MISSING)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SYSDEPS_MISSING) >/dev/null; \
	fi
	@command -v nasm >/dev/null || { echo "nasm missing: install the Debian package nasm"; exit 1; }
	@command -v promtool >/dev/null || { echo "promtool missing: install the Debian package prometheus"; exit 1; }
	@-systemctl disable --now prometheus >/dev/null 2>&1 || true

## Python tools the tests use: moto (the S3-compatible server of the artifact tests) and
## Roboflow's own client, inference-sdk (the compatibility suite; ≈ 650 MB, installed once),
## openapi-spec-validator (checks /openapi.json), onnx (make soak generates its 44 MB model),
## tritonclient over HTTP and gRPC with onnxruntime (the inference protocol suites and their
## independent answers),
## schemathesis (the contract test of /openapi.json), playwright (drives Debian's Chromium
## through /docs; its own browser download is never used) and qdrant-client (its local mode
## searches the embedding tests' vectors).
venv: $(VENV_STAMP)

$(VENV_STAMP): Makefile
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --no-cache-dir --disable-pip-version-check "moto[s3]==$(MOTO_VERSION)" flask flask-cors \
		"inference-sdk==$(INFERENCE_SDK_VERSION)" "openapi-spec-validator==0.9.0" "onnx==1.23.2" \
		"kubernetes-validate==1.37.0" "tritonclient[http,grpc]==2.73.0" "onnxruntime==1.31.1" \
		"schemathesis==4.32.5" "playwright==1.65.2" "qdrant-client==1.20.0"
	touch $@

build: setup
	cargo build --workspace --bins

run: setup
	cargo build --release --bin sightline
	./target/release/sightline serve

## The tests run in the release profile against the release binary that `make image` built: one
## build of the workspace instead of a debug and a release one (from a clean clone on 2 cores:
## 14 min 44 s on 2026-12-07 instead of 22 min 40 s).
test: setup image
	SIGHTLINE_BIN=$(CURDIR)/target/release/sightline SIGHTLINE_IMAGE=$(IMAGE) \
		scripts/with-s3.sh cargo test --release --workspace --no-fail-fast

## Benchmarks (release build): ratios against raw ONNX Runtime, measured in the same run.
bench: setup
	cargo build --release --bin sightline
	cargo bench -p sightline-e2e --bench pipeline
	cargo bench -p sightline-e2e --bench embeddings
	cargo bench -p sightline-e2e --bench isolation

## Memory under churn (release build): model add/remove cycles under load, then OCR passes;
## prints the server's RSS at each milestone (docs/benchmarks.md).
soak: setup
	cargo build --release --bin sightline
	cargo bench -p sightline-e2e --bench soak

## Load generator for any Roboflow-compatible server (Sightline or another, already running):
## `make loadtest URL=http://127.0.0.1:9001 MODEL=shapes/1` [ROUTE=... IMAGE=... DURATION_SECS=10
## LOADTEST_CONCURRENCY=1,8,16,64 API_KEY=...]; prints requests/s, p50, p99 and errors per level.
## The CPU image (docker/Dockerfile) from the binary and ONNX Runtime built here (no registry is
## reachable from this machine: the base image comes from Debian's mirror through mmdebstrap, see
## scripts/podman.sh). With a registry: `docker build -f docker/Dockerfile .` builds everything inside.
IMAGE ?= localhost/sightline:cpu
image: setup
	cargo build --release --bin sightline
	mkdir -p target/image && rm -rf target/image/onnxruntime
	strip -o target/image/sightline target/release/sightline
	cp -al $(ORT_DIR) target/image/onnxruntime
	scripts/podman.sh base
	scripts/podman.sh build --format docker --build-arg BINARY_FROM=prebuilt -f docker/Dockerfile -t $(IMAGE) .

## The GPU image (docker/Dockerfile.gpu), built here but not run (no GPU): `make setup-gpu`'s
## layout (≈ 2.5 GB) instead of the CPU one. Not part of `make test` (the layout alone is 2.5 GB).
IMAGE_GPU ?= localhost/sightline:gpu
image-gpu: setup setup-gpu
	cargo build --release --bin sightline
	mkdir -p target/image && rm -rf target/image/onnxruntime-gpu
	strip -o target/image/sightline target/release/sightline
	cp -al $(ORT_GPU_DIR) target/image/onnxruntime-gpu
	scripts/podman.sh base
	scripts/podman.sh build --format docker --build-arg BINARY_FROM=prebuilt -f docker/Dockerfile.gpu -t $(IMAGE_GPU) .

## Roboflow's own server (inference-cpu 1.8.3) on ROBOFLOW_PORT, serving the shipped models
## offline, for `make loadtest` comparisons (not part of `make test`; ≈ 2.5 GB installed once).
ROBOFLOW_PORT ?= 9100
roboflow-server:
	scripts/roboflow_server.sh $(ROBOFLOW_PORT)

loadtest:
	URL="$(URL)" MODEL="$(MODEL)" cargo bench -p sightline-e2e --bench loadtest

## Fuzzing (not part of `make test`): the request-body and image-decoding path under libFuzzer and
## AddressSanitizer for FUZZ_SECONDS. cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the
## stable toolchain accept them. Crashes land in fuzz/artifacts/ and become regression tests.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := request_body body_key grpc_infer kserve_json kserve_binary model_metadata manifest archive
fuzz: setup
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$target && \
		(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10) || exit 1; \
	done

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf $(CACHE_DIR)
