#!/usr/bin/env python3
"""A GOCACHEPROG helper of the tests' own, for `cacheprog --wrap` to run: it
keeps outputs in DIR, answers in order, and appends every byte it reads to
PREFIX.in and every byte it writes to PREFIX.out, so that a test can compare
them with what the go command sent and received.

Usage: fake_cacheprog.py DIR PREFIX [--exit-after-hello=N]
With --exit-after-hello it reads one request, says so on stderr and exits
with N: a helper that fails.
"""

import base64
import json
import os
import sys


def main():
    store, prefix = sys.argv[1], sys.argv[2]
    exit_code = None
    for arg in sys.argv[3:]:
        if arg.startswith("--exit-after-hello="):
            exit_code = int(arg.split("=", 1)[1])
    os.makedirs(store, exist_ok=True)
    raw_in = open(prefix + ".in", "ab")
    raw_out = open(prefix + ".out", "ab")

    def send(answer):
        line = (json.dumps(answer) + "\n").encode()
        raw_out.write(line)
        raw_out.flush()
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()

    def read_line():
        line = sys.stdin.buffer.readline()
        raw_in.write(line)
        raw_in.flush()
        return line

    send({"ID": 0, "KnownCommands": ["get", "put", "close"]})
    while True:
        line = read_line()
        if not line:
            return 0
        if not line.strip():
            continue
        request = json.loads(line)
        if exit_code is not None:
            sys.stderr.write(f"fake_cacheprog: giving up with {exit_code}\n")
            return exit_code
        command, rid = request.get("Command"), request["ID"]
        if command == "close":
            send({"ID": rid})
            return 0
        action = base64.b64decode(request["ActionID"]).hex()
        entry = os.path.join(store, action + ".json")
        if command == "get":
            if not os.path.exists(entry):
                send({"ID": rid, "Miss": True})
                continue
            with open(entry) as f:
                found = json.load(f)
            output = os.path.join(store, base64.b64decode(found["OutputID"]).hex() + "-d")
            send({"ID": rid, "OutputID": found["OutputID"], "Size": found["Size"],
                  "DiskPath": output})
        elif command == "put":
            body = b""
            if request.get("BodySize", 0) > 0:
                while True:
                    body_line = read_line()
                    if body_line.strip():
                        break
                body = base64.b64decode(json.loads(body_line))
            output_id = request.get("OutputID") or request.get("ObjectID")
            output = os.path.join(store, base64.b64decode(output_id).hex() + "-d")
            with open(output, "wb") as f:
                f.write(body)
            with open(entry, "w") as f:
                json.dump({"OutputID": output_id, "Size": len(body)}, f)
            send({"ID": rid, "DiskPath": output})
        else:
            send({"ID": rid, "Err": f"unknown command {command!r}"})


if __name__ == "__main__":
    sys.exit(main())
