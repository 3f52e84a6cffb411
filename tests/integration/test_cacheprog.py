"""gocache_exporter cacheprog, the GOCACHEPROG helper, driven by a real go
command (go 1.23 built with GOEXPERIMENT=cacheprog, once per build folder):
builds through it hit what it stored, match builds without it byte for byte,
and share the directory with plain go commands both ways; hostile input gets
an error or a clean exit and leaves nothing on disk."""

import base64
import concurrent.futures
import json
import os
import subprocess
import unittest

from harness import (EXPORTER, GO_GREET, GO_MAIN, TempDirTest, cacheprog_env, cacheprog_go,
                     expected_census, parse_metrics, run_exporter, value, write_files)

MODULE = {
    "go.mod": "module example.com/hello\n\ngo 1.19\n",
    "main.go": GO_MAIN,
    "greet/greet.go": GO_GREET,
}
LINK_ONLY = [("link", "example.com/hello")]


def helper_command(cache_dir, *flags):
    return " ".join([EXPORTER, "cacheprog", f"--cache.dir={cache_dir}", *flags])


def commands_run(graph):
    """(mode, package) of every action in an action graph that ran a command:
    the misses. A build served wholly from the cache runs only its link."""
    return sorted({(a["Mode"], a["Package"]) for a in graph if a.get("Cmd")})


def cache_files(cache_dir):
    """Every file below a cache directory, relative: what a put left."""
    found = []
    for dirpath, _, filenames in os.walk(cache_dir):
        found += [os.path.relpath(os.path.join(dirpath, f), cache_dir) for f in filenames]
    return sorted(found)


class CacheprogTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.go = cacheprog_go()
        self.env = cacheprog_env(self.tmp)
        os.makedirs(self.env["HOME"], exist_ok=True)
        self.src = os.path.join(self.tmp, "src")
        write_files(self.src, MODULE)

    def build(self, name, gocache=None, helper=None, src=None):
        """Builds the module (through `helper`, a GOCACHEPROG, when given);
        returns (binary, action graph, stderr)."""
        env = dict(self.env)
        if gocache:
            env["GOCACHE"] = gocache
        if helper:
            env["GOCACHEPROG"] = helper
        binary = os.path.join(self.tmp, name)
        graph = os.path.join(self.tmp, name + ".json")
        r = subprocess.run([self.go, "build", f"-debug-actiongraph={graph}", "-o", binary, "."],
                           cwd=src or self.src, env=env, capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(r.returncode, 0, f"go build {name} failed:\n{r.stderr[-3000:]}")
        with open(graph) as f:
            return binary, json.load(f), r.stderr

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def assert_healthy_cache(self, cache_dir):
        """The exporter's census of the directory: every entry well formed,
        nothing orphaned, and its counts those of an independent walk."""
        r = run_exporter("--once", f"--cache.dir={cache_dir}", "--no-collector.stale")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        samples = parse_metrics(r.stdout.decode())
        want = expected_census(cache_dir)
        self.assertEqual(value(samples, "gocache_corrupt_entries", path=cache_dir), 0)
        for kind in ("action_without_output", "output_without_action", "size_mismatch"):
            self.assertEqual(
                value(samples, "gocache_orphan_entries", path=cache_dir, type=kind), 0, kind)
        for kind in ("action", "output"):
            self.assertEqual(value(samples, "gocache_entries", path=cache_dir, type=kind),
                             want["entries"][kind], kind)
        self.assertGreater(want["entries"]["action"], 0)
        leftovers = [f for f in cache_files(cache_dir) if ".tmp-" in f]
        self.assertEqual(leftovers, [], "temporary files left behind")

    def test_builds_through_the_helper_hit_match_plain_go_and_share_its_directory(self):
        helper_dir = os.path.join(self.tmp, "helper-cache")
        go_cache = os.path.join(self.tmp, "go-cache")
        helper = helper_command(helper_dir)

        first, graph, _ = self.build("first", gocache=go_cache, helper=helper)
        self.assertGreater(len(commands_run(graph)), 10, "a cold build compiles")
        second, graph, _ = self.build("second", gocache=go_cache, helper=helper)
        self.assertEqual(commands_run(graph), LINK_ONLY, "the second build is all hits")
        # With a helper the go command stores nothing in its own GOCACHE.
        self.assertEqual([f for f in cache_files(go_cache) if f.endswith(("-a", "-d"))], [])

        # Byte for byte what a go command without the helper builds.
        plain_dir = os.path.join(self.tmp, "plain-cache")
        plain, graph, _ = self.build("plain", gocache=plain_dir)
        self.assertGreater(len(commands_run(graph)), 10)
        self.assertEqual(self.read(first), self.read(plain))
        self.assertEqual(self.read(second), self.read(plain))

        # Both ways: a plain go command hits what the helper stored, and the
        # helper hits what a plain go command stored.
        _, graph, _ = self.build("plain-on-helper", gocache=helper_dir)
        self.assertEqual(commands_run(graph), LINK_ONLY)
        _, graph, _ = self.build("helper-on-plain", gocache=go_cache,
                                 helper=helper_command(plain_dir))
        self.assertEqual(commands_run(graph), LINK_ONLY)

        self.assert_healthy_cache(helper_dir)
        r = run_exporter("check", f"--cache.dir={helper_dir}")
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        # The go command's trim, done by the helper at close.
        with open(os.path.join(helper_dir, "trim.txt")) as f:
            self.assertTrue(f.read().strip().isdigit())

    def test_go_commands_at_once_through_helpers_on_one_cache(self):
        helper_dir = os.path.join(self.tmp, "shared")
        helper = helper_command(helper_dir)
        # One module (the binary records where it was built), four go
        # commands, each with a GOCACHE of its own and the helper's in common.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            builds = [pool.submit(self.build, f"at-once-{i}", os.path.join(self.tmp, f"go{i}"),
                                  helper) for i in range(4)]
            binaries = [b.result()[0] for b in builds]
        self.assertEqual(len({self.read(b) for b in binaries}), 1)
        self.assert_healthy_cache(helper_dir)
        _, graph, _ = self.build("after", gocache=os.path.join(self.tmp, "go5"), helper=helper)
        self.assertEqual(commands_run(graph), LINK_ONLY)

    def test_a_cache_it_cannot_use_leaves_the_build_uncached_not_failed(self):
        not_a_dir = os.path.join(self.tmp, "file")
        with open(not_a_dir, "w") as f:
            f.write("not a cache\n")
        _, graph, stderr = self.build("uncached", gocache=os.path.join(self.tmp, "go"),
                                      helper=helper_command(not_a_dir))
        self.assertIn("building without the cache", stderr)
        self.assertGreater(len(commands_run(graph)), 10)
        with open(not_a_dir) as f:
            self.assertEqual(f.read(), "not a cache\n")


def b64(data):
    return base64.b64encode(data).decode()


ACTION = b64(b"a" * 32)
OUTPUT = b64(b"o" * 32)


def put(request_id, body_size, body_line):
    return (json.dumps({"ID": request_id, "Command": "put", "ActionID": ACTION,
                        "OutputID": OUTPUT, "BodySize": body_size}) + "\n\n" + body_line)


class HostileInputTest(TempDirTest):
    """Input no go command sends, fed to the helper's stdin."""

    def serve(self, text):
        cache_dir = os.path.join(self.tmp, "cache")
        os.makedirs(cache_dir, exist_ok=True)
        r = subprocess.run([EXPORTER, "cacheprog", f"--cache.dir={cache_dir}"],
                           input=text.encode(), capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = r.stdout.decode().splitlines()
        answers = [json.loads(line) for line in lines]
        self.assertEqual(answers[0], {"ID": 0, "KnownCommands": ["get", "put", "close"]})
        # trim.txt: the go command's trim, which the helper does at close.
        self.assertEqual([f for f in cache_files(cache_dir) if f != "trim.txt"], [],
                         "nothing of a bad put is left")
        self.assertEqual(sum(e.is_dir() for e in os.scandir(cache_dir)), 256)
        return answers[1:], r.stderr.decode()

    def test_each_bad_request_gets_an_error_and_the_next_one_an_answer(self):
        get = json.dumps({"ID": 9, "Command": "get", "ActionID": ACTION}) + "\n\n"
        cases = {
            "malformed JSON": ('{"ID": 7, "Command": \n\n', 0, "not a JSON object"),
            "unknown command": (json.dumps({"ID": 7, "Command": "delete"}) + "\n\n", 7,
                                "unknown command"),
            "ActionID of 31 bytes": (json.dumps({"ID": 7, "Command": "get",
                                                 "ActionID": b64(b"a" * 31)}) + "\n\n", 7,
                                     "ActionID is not base64 of 32 bytes"),
            "BodySize that lies": (put(7, 100, f'"{b64(b"short")}"\n'), 7,
                                   "the body has 5 bytes, BodySize says 100"),
            "invalid base64": (put(7, 3, '"a$c="\n'), 7, "not standard base64"),
            "1 TiB BodySize": (put(7, 1 << 40, f'"{b64(b"tiny")}"\n'), 7,
                               "is more than this helper stores"),
        }
        for name, (text, request_id, error) in cases.items():
            with self.subTest(name):
                answers, _ = self.serve(text + get + json.dumps({"ID": 10, "Command": "close"}))
                self.assertEqual(answers[0]["ID"], request_id)
                self.assertIn(error, answers[0]["Err"])
                self.assertEqual(answers[1], {"ID": 9, "Miss": True})
                self.assertEqual(answers[2], {"ID": 10})

    def test_the_input_ending_mid_request_ends_the_helper_cleanly(self):
        for name, text in {
            "inside a request line": '{"ID": 7, "Command": "pu',
            "before the body": put(7, 3, ""),
            "inside the body": put(7, 300, '"YWJj'),
        }.items():
            with self.subTest(name):
                answers, stderr = self.serve(text)
                self.assertLessEqual(len(answers), 1)
                if name != "inside a request line":
                    self.assertIn("request 7", stderr)


if __name__ == "__main__":
    unittest.main()
