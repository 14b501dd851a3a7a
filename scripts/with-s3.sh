#!/usr/bin/env bash
# Runs a command with a real S3-compatible server (moto, from the project's .venv) on loopback.
# Exports SIGHTLINE_TEST_S3_ENDPOINT for the tests; stops the server however the command ends.
set -euo pipefail

VENV_PY="${VENV_PY:-$(dirname "$0")/../.venv/bin/python}"
if [[ ! -x "$VENV_PY" ]]; then
    echo "with-s3.sh: $VENV_PY is missing: run \`make setup\` (it installs moto into .venv)" >&2
    exit 1
fi

PORT="$("$VENV_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG="$(mktemp -t sightline-moto.XXXXXX.log)"
"$VENV_PY" -m moto.server -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; rm -f "$LOG"' EXIT

up() { "$VENV_PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/', timeout=1)" 2>/dev/null; }
for _ in $(seq 1 100); do
    if up; then
        break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        echo "with-s3.sh: moto exited during start-up:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done
up || { echo "with-s3.sh: moto did not start" >&2; cat "$LOG" >&2; exit 1; }

export SIGHTLINE_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT"
"$@"
