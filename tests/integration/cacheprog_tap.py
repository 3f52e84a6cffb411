#!/usr/bin/env python3
"""A GOCACHEPROG helper of the tests' own that counts: it runs the real
helper given after `--` as its child, relays the protocol unchanged both
ways, and appends one JSON line per request and per answer to LOG. The
tests count hits, misses and puts from LOG, independently of the exporter.

Usage: cacheprog_tap.py LOG -- HELPER [ARGS...]
"""

import json
import subprocess
import sys
import threading


def main():
    log_path, rest = sys.argv[1], sys.argv[2:]
    raw_in = raw_out = None
    if rest and rest[0].startswith("--raw="):
        prefix = rest.pop(0).split("=", 1)[1]
        raw_in, raw_out = open(prefix + ".in", "ab"), open(prefix + ".out", "ab")
    if not rest or rest[0] != "--":
        sys.exit("usage: cacheprog_tap.py LOG [--raw=PREFIX] -- HELPER [ARGS...]")
    child = subprocess.Popen(rest[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lock = threading.Lock()
    log = open(log_path, "a")

    def note(entry):
        with lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    def requests():
        for line in sys.stdin.buffer:
            if line.startswith(b"{"):
                request = json.loads(line)
                note({"request": request["ID"], "command": request.get("Command")})
            if raw_in:
                raw_in.write(line)
                raw_in.flush()
            child.stdin.write(line)
            child.stdin.flush()
        child.stdin.close()

    threading.Thread(target=requests, daemon=True).start()
    for line in child.stdout:
        answer = json.loads(line)
        if answer["ID"] != 0:
            note({"answer": answer["ID"], "miss": bool(answer.get("Miss")),
                  "error": bool(answer.get("Err"))})
        if raw_out:
            raw_out.write(line)
            raw_out.flush()
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
