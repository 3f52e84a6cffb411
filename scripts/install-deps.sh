#!/usr/bin/env bash
# Installs what gocache_exporter needs to build, run and test, and nothing that
# is already there. Safe to run again: every step checks first.
#
#   scripts/install-deps.sh          build + run + test dependencies
#   scripts/install-deps.sh --run    only what building and running needs
set -euo pipefail

want_test=1
[[ "${1:-}" == "--run" ]] && want_test=0

if [[ $(id -u) -eq 0 ]]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo "$@"; }
else
  echo "install-deps: need root or sudo to install packages" >&2
  exit 1
fi

# Packages that provide a file we need; checked by file so that a tool
# installed some other way is not installed twice.
declare -A build_pkgs=(
  [/usr/bin/cmake]=cmake
  [/usr/bin/ninja]=ninja-build
  [/usr/bin/g++]=g++
  [/usr/bin/pkg-config]=pkg-config
  [/usr/include/prometheus/exposer.h]=prometheus-cpp-dev
  [/usr/bin/dpkg-source]=dpkg-dev
  [/usr/include/spdlog/spdlog.h]=libspdlog-dev
  [/usr/include/cxxopts.hpp]=libcxxopts-dev
  [/usr/include/zlib.h]=zlib1g-dev
  [/usr/include/rapidjson/reader.h]=rapidjson-dev
  [/usr/include/yaml-cpp/yaml.h]=libyaml-cpp-dev
  [/usr/include/crypt.h]=libcrypt-dev
  [/usr/include/openssl/ssl.h]=libssl-dev
)
declare -A test_pkgs=(
  [/usr/include/gtest/gtest.h]=libgtest-dev
  [/usr/bin/promtool]=prometheus
  [/usr/bin/curl]=curl
  [/usr/bin/python3]=python3
  [/usr/bin/clang++]=clang
  [/usr/bin/clang-format]=clang-format
  [/usr/bin/jq]=jq
  [/usr/bin/shellcheck]=shellcheck
  [/usr/lib/python3/dist-packages/yaml/__init__.py]=python3-yaml
  [/usr/bin/prometheus-alertmanager]=prometheus-alertmanager
  [/usr/bin/systemd-analyze]=systemd
  [/usr/bin/openssl]=openssl
  [/usr/bin/wrk]=wrk
  [/usr/bin/civetweb]=civetweb
  [/usr/bin/mmdebstrap]=mmdebstrap
  [/usr/bin/podman]=podman
  [/usr/sbin/runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [/usr/sbin/iptables]=iptables
  [/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a]=libclang-rt-14-dev
)

missing=()
for f in "${!build_pkgs[@]}"; do [[ -e $f ]] || missing+=("${build_pkgs[$f]}"); done
if ((want_test)); then
  for f in "${!test_pkgs[@]}"; do [[ -e $f ]] || missing+=("${test_pkgs[$f]}"); done
fi

# A go toolchain for the tests: 1.23 from bookworm-backports (the cacheprog
# tests build a go that speaks GOCACHEPROG from it), else Debian's default
# golang-go, with which every test but those runs.
go_missing=0
if ((want_test)) && [[ ! -x /usr/lib/go-1.23/bin/go ]]; then
  go_missing=1
fi

updated=0
apt_update() { ((updated)) || { as_root apt-get update -qq; updated=1; }; }

add_backports() {
  # Reuse the mirror that already serves bookworm, so no host is named here.
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    uri=$(awk '/^URIs:/{u=$2} /^Suites:.*bookworm( |$)/{print u; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list)
  fi
  [[ -n $uri ]] || return 1
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
    as_root tee /etc/apt/sources.list.d/gocache-exporter-backports.sources >/dev/null
  updated=0
}

if ((go_missing)); then
  add_backports || true
  apt_update
  if apt-cache show golang-1.23-go >/dev/null 2>&1; then
    missing+=(golang-1.23-go)
  elif ! command -v go >/dev/null 2>&1; then
    echo "install-deps: no golang-1.23-go in the package mirror: the cacheprog tests will fail" >&2
    missing+=(golang-go)
  fi
fi

if ((${#missing[@]})); then
  apt_update
  echo "install-deps: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CivetWeb is built from Debian's source package (see fetch-civetweb.sh).
"$(dirname "$0")/fetch-civetweb.sh"
exit 0
