#!/usr/bin/env bash
# Roboflow's own inference server (inference-cpu 1.8.3, its legacy ONNX backend), serving the
# shipped models offline from its model cache, for `make loadtest` comparisons on the same
# machine (docs/benchmarks.md). Not part of `make test`; about 2.5 GB of Python packages, installed
# once into .cache/roboflow-venv.
#
#   scripts/roboflow_server.sh [PORT]      (default 9100; Ctrl-C stops it)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
port="${1:-9100}"
venv="$repo/.cache/roboflow-venv"
work="$repo/.cache/roboflow-server"
version="1.8.3"

if [ ! -f "$venv/.installed-$version" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "inference-cpu[http]==$version" uvicorn
    touch "$venv/.installed-$version"
fi

# Its model cache, laid out as the server writes it (it then needs no Roboflow API).
rm -rf "$work/cache"
mkdir -p "$work/cache" "$work/app/inference/landing/out/static" "$work/app/inference/landing/out/_next/static"
for model in "$repo"/assets/models/*/*/weights.onnx; do
    dir="$(dirname "$model")"
    id="${dir#"$repo/assets/models/"}"
    mkdir -p "$work/cache/$id"
    cp "$dir"/* "$work/cache/$id/"
done

# The entry point of Roboflow's CPU image (docker/config/cpu_http.py), without its pingback.
cat > "$work/app/roboflow_app.py" <<'PY'
from inference.core.interfaces.http.http_api import HttpInterface
from inference.core.managers.base import ModelManager
from inference.core.managers.decorators.fixed_size_cache import WithFixedSizeCache
from inference.core.registries.roboflow import RoboflowModelRegistry
from inference.models.utils import ROBOFLOW_MODEL_TYPES

manager = WithFixedSizeCache(ModelManager(model_registry=RoboflowModelRegistry(ROBOFLOW_MODEL_TYPES)), max_size=8)
app = HttpInterface(manager).app
PY

cd "$work/app"
# The landing page's static folders are looked up relative to the working directory.
exec env MODEL_CACHE_DIR="$work/cache" USE_INFERENCE_MODELS=False DISABLE_VERSION_CHECK=true \
    METRICS_ENABLED=false ONNXRUNTIME_EXECUTION_PROVIDERS="[CPUExecutionProvider]" \
    "$venv/bin/python" -m uvicorn roboflow_app:app --host 127.0.0.1 --port "$port"
