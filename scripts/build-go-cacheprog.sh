#!/usr/bin/env bash
# Builds a go 1.23 command that speaks GOCACHEPROG (an experiment before go
# 1.24) from Debian's golang-1.23-go, for the tests of `gocache_exporter
# cacheprog`. Run it with GOROOT=/usr/lib/go-1.23.
#
#   scripts/build-go-cacheprog.sh OUT_DIR    writes OUT_DIR/go-cacheprog
#
# Quick when OUT_DIR already holds it; the go build cache it uses is kept in
# OUT_DIR too, so a rebuild takes seconds.
set -euo pipefail

out=${1:?usage: build-go-cacheprog.sh OUT_DIR}
goroot=/usr/lib/go-1.23
go=$goroot/bin/go
if [[ ! -x $go ]]; then
  echo "build-go-cacheprog: no $go: run scripts/install-deps.sh" >&2
  exit 1
fi
mkdir -p "$out"
target=$out/go-cacheprog
[[ -x $target ]] && exit 0

version=$(GOROOT=$goroot "$go" env GOVERSION)
# The -X keeps the version plain: without it the binary calls itself
# "go1.23.5 X:cacheprog" and every compile fails with "does not match go
# tool version".
env -u GOFLAGS GOROOT=$goroot GOCACHE="$out/gocache" GOTOOLCHAIN=local GOTELEMETRY=off \
  GOPROXY=off CGO_ENABLED=0 GOEXPERIMENT=cacheprog \
  "$go" build -ldflags=-X=runtime.buildVersion="$version" -o "$target.tmp" cmd/go
mv "$target.tmp" "$target"
