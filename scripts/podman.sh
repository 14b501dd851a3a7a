#!/usr/bin/env bash
# podman as this kind of machine needs it (shared/notes/containers.md): runc (crun fails on its
# hybrid cgroups) and ulimits below the hard limits. `scripts/podman.sh base` makes the Debian
# base image from Debian's mirror (no registry is reachable) under the name the Dockerfiles use;
# any other arguments are passed to podman.
set -euo pipefail
conf="${TMPDIR:-/tmp}/sightline-containers.conf"
cat > "$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$conf"

if [ "${1:-}" = base ]; then
    name=docker.io/library/debian:bookworm-slim
    if podman image exists "$name"; then
        exit 0
    fi
    rootfs="$(mktemp -d)/rootfs.tar"
    mmdebstrap --quiet --variant=minbase bookworm "$rootfs"
    podman import --quiet "$rootfs" localhost/debian-base:bookworm >/dev/null
    podman tag localhost/debian-base:bookworm "$name"
    rm -rf "$(dirname "$rootfs")"
    exit 0
fi
exec podman "$@"
