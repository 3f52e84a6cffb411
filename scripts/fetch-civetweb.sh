#!/usr/bin/env bash
# Fetches Debian's own CivetWeb source package into DEST (default:
# third_party/civetweb) and unpacks it with its Debian patches. The exporter
# builds CivetWeb from it, with IPv6 and with OpenSSL linked directly: Debian's
# libcivetweb is built without IPv6 and loads an OpenSSL 1.x ABI at run time.
#
# Nothing on the machine changes: apt runs with a configuration of its own in a
# scratch directory, whose source entries are the deb-src twins of the entries
# apt already uses here. Safe to run again: a source already unpacked stays.
#
#   scripts/fetch-civetweb.sh [DEST]
set -euo pipefail

dest=${1:-"$(cd "$(dirname "$0")/.." && pwd)/third_party/civetweb"}
[[ -f $dest/src/civetweb.c && -f $dest/include/civetweb.h ]] && exit 0

for tool in apt-get dpkg-source; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "fetch-civetweb: $tool is missing (scripts/install-deps.sh installs it)" >&2
    exit 1
  }
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/parts" "$scratch/lists/partial" "$scratch/cache/archives/partial" "$scratch/src"
: >"$scratch/sources.list"

# The deb-src twin of every source apt uses: deb822 files and one-line lists.
n=0
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] || continue
  n=$((n + 1))
  sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$scratch/parts/$n.sources"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f $f ]] || continue
  n=$((n + 1))
  sed -nE 's/^deb(\s)/deb-src\1/p' "$f" >"$scratch/parts/$n.list"
done

apt=(apt-get -q -o "Dir::Etc::SourceList=$scratch/sources.list"
  -o "Dir::Etc::SourceParts=$scratch/parts" -o "Dir::State::Lists=$scratch/lists"
  -o "Dir::Cache=$scratch/cache" -o Debug::NoLocking=true
  -o APT::Sandbox::User="$(id -un)")
"${apt[@]}" update >/dev/null || { echo "fetch-civetweb: apt-get update failed" >&2; exit 1; }
(cd "$scratch/src" && "${apt[@]}" source --download-only civetweb >/dev/null)
dsc=$(ls "$scratch"/src/civetweb_*.dsc)
dpkg-source --no-check -x "$dsc" "$scratch/src/civetweb" >/dev/null

mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$scratch/src/civetweb" "$dest"
echo "fetch-civetweb: $(basename "$dsc" .dsc) unpacked in $dest"
