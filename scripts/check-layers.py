#!/usr/bin/env python3
"""Checks that the C++ layers include only what lies below them.

The layers, lowest first (README, Architecture):

  base        logging, worker threads, child processes, flag values
  cache       the Go caches: entry format, scan, census, trim, discovery
  collectors  the collector contract and one folder per collector
  commands    check, trim and cacheprog
  exporter    command line, collector runner, scrape, HTTP

A file may include headers of its own layer and of lower ones. collectors and
commands sit side by side above cache and know nothing of each other. Inside
collectors, a collector's folder includes the shared files at the top of
collectors/ and its own folder, never another collector's; only the
registration list (collectors/all.cc) names them all.

Usage: scripts/check-layers.py [SOURCE_DIR]   (default: the repository)
Prints one line per include that breaks a rule and exits 1, else exits 0.
"""

import os
import re
import sys

RANKS = {"base": 0, "cache": 1, "collectors": 2, "commands": 2, "exporter": 3}
SOURCE_SUFFIXES = (".h", ".cc", ".cc.in")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
REGISTRATION_LIST = "collectors/all.cc"


def allowed_below(layer):
    return sorted(name for name, rank in RANKS.items() if rank < RANKS[layer])


def collector_folder(path):
    """The collector a path belongs to (collectors/NAME/...), or None."""
    parts = path.split("/")
    return parts[1] if parts[0] == "collectors" and len(parts) > 2 else None


def problem(source, header):
    """Why `source` may not include `header`, or None."""
    layer, target = source.split("/")[0], header.split("/")[0]
    if target not in RANKS:
        return None  # not a layer's header (tests' own, generated, third party)
    if target == layer:
        if layer != "collectors" or source == REGISTRATION_LIST:
            return None
        own, other = collector_folder(source), collector_folder(header)
        if other is None or other == own:
            return None
        if own is None:
            return "the shared collector files may not include a collector's own headers"
        return f"the {own} collector may not include the {other} collector's headers"
    if RANKS[target] < RANKS[layer]:
        return None
    below = allowed_below(layer)
    may = f"{layer} may include {', '.join(below)} and itself" if below else \
        f"{layer} is the lowest layer and may include only itself"
    return f"{target} is not below {layer}: {may}"


def sources(root):
    for layer in RANKS:
        top = os.path.join(root, layer)
        for folder, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(SOURCE_SUFFIXES):
                    path = os.path.join(folder, name)
                    yield path, os.path.relpath(path, root).replace(os.sep, "/")


def check(root):
    problems, files = [], 0
    for path, rel in sources(root):
        files += 1
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if m and (why := problem(rel, m.group(1))):
                    problems.append(f"{rel}:{number}: includes {m.group(1)}: {why}")
    return problems, files


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems, files = check(os.path.abspath(root))
    if files == 0:
        print(f"check-layers: no sources under {root}", file=sys.stderr)
        return 1
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"check-layers: {len(problems)} include(s) against the layers", file=sys.stderr)
        return 1
    print(f"check-layers: {files} files, every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
