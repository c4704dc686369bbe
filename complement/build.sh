#!/bin/sh
# Builds the Complement image of planb: a static binary, then
# complement/Dockerfile FROM scratch. Usage: complement/build.sh [TAG]
# (default planb-complement). Needs Go and a Docker engine, nothing else.
set -eu
cd "$(dirname "$0")/.."
tag="${1:-planb-complement}"
echo "complement/build.sh: building a static planb binary" >&2
CGO_ENABLED=0 go build -trimpath -o complement/planb ./cmd/planb
echo "complement/build.sh: building image $tag" >&2
docker build -q -t "$tag" complement
