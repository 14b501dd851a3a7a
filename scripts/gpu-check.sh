#!/usr/bin/env bash
# Runs every fixture model on CUDA against the references, then prints raw ONNX Runtime CUDA time
# beside the server's, at batch 1 and at the best batch. For a host with an NVIDIA GPU (driver
# present); under 8 minutes on one GPU.
#
# What it needs (set by the caller, or found in the usual places):
#   ORT_GPU_DIR   the `make setup-gpu` folder: libonnxruntime.so.1.31.1 with its CUDA and TensorRT
#                 providers beside it (default .cache/onnxruntime-gpu-1.31.1)
#   CUDA_LIB_DIR  colon-separated folders of the CUDA 13 / cuDNN 9 runtime; default ORT_GPU_DIR/cuda,
#                 else a Python environment's site-packages/nvidia/*/lib (PYTHON_ENV, e.g. /opt/torch/.venv)
#   TEST_BIN_DIR  prebuilt test and bench binaries (a host without cargo): detection_reference,
#                 segmentation_reference, classification_reference, ocr_reference, pipeline, and
#                 SIGHTLINE_BIN the release `sightline`; without it, cargo builds them here.
#   BENCH_PROVIDERS  rows of the timing table (default cpu,cuda; add tensorrt where TensorRT's
#                 libnvinfer is on CUDA_LIB_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
export SIGHTLINE_REPO=$PWD

ORT_GPU_DIR=${ORT_GPU_DIR:-$PWD/.cache/onnxruntime-gpu-1.31.1}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ORT_GPU_DIR/libonnxruntime.so.1.31.1}
if [ -z "${CUDA_LIB_DIR:-}" ]; then
    if [ -d "$ORT_GPU_DIR/cuda" ]; then
        CUDA_LIB_DIR=$ORT_GPU_DIR/cuda
    elif [ -n "${PYTHON_ENV:-}" ]; then
        CUDA_LIB_DIR=$(ls -d "$PYTHON_ENV"/lib/python3*/site-packages/nvidia/*/lib | paste -sd:)
    fi
fi
export CUDA_LIB_DIR
export BENCH_PROVIDERS=${BENCH_PROVIDERS:-cpu,cuda}
export BENCH_ITERATIONS=${BENCH_ITERATIONS:-200}

echo "== $(date -u +%FT%TZ) gpu-check"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader || echo "(nvidia-smi not found)"
echo "ORT_DYLIB_PATH=$ORT_DYLIB_PATH"
echo "CUDA_LIB_DIR=$CUDA_LIB_DIR"
test -f "$ORT_DYLIB_PATH" || { echo "missing $ORT_DYLIB_PATH: run make setup-gpu"; exit 1; }

tests=(detection_reference segmentation_reference classification_reference ocr_reference)
if [ -n "${TEST_BIN_DIR:-}" ]; then
    export SIGHTLINE_BIN=${SIGHTLINE_BIN:-$TEST_BIN_DIR/sightline}
    for t in "${tests[@]}"; do
        echo "== $t on CUDA"
        timeout 300 "$TEST_BIN_DIR/$t" --ignored --test-threads 1 on_cuda
    done
    echo "== timing (raw ONNX Runtime and the server, same run)"
    timeout 240 "$TEST_BIN_DIR/pipeline"
else
    cargo build --release --bin sightline
    export SIGHTLINE_BIN=$PWD/target/release/sightline
    for t in "${tests[@]}"; do
        echo "== $t on CUDA"
        timeout 300 cargo test --release -p sightline-e2e --test "$t" -- --ignored --test-threads 1 on_cuda
    done
    echo "== timing (raw ONNX Runtime and the server, same run)"
    timeout 240 cargo bench -p sightline-e2e --bench pipeline
fi
echo "== done"
