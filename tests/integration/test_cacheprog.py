"""gocache_exporter cacheprog, the GOCACHEPROG helper, driven by a real go
command (go 1.23 built with GOEXPERIMENT=cacheprog, once per build folder):
builds through it hit what it stored, match builds without it byte for byte,
and share the directory with plain go commands both ways; hostile input gets
an error or a clean exit and leaves nothing on disk."""

import base64
import concurrent.futures
import json
import os
import re
import subprocess
import signal
import sys
import threading
import time
import unittest

from harness import (EXPORTER, GO_GREET, GO_MAIN, SOURCE_DIR, Exporter, TempDirTest, action_entry,
                     cacheprog_env, cacheprog_go, expected_census, families, has, hex_id,
                     make_synthetic_cache, parse_metrics, promtool_check, readme_families,
                     run_exporter, value, write_files)

TAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cacheprog_tap.py")
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_cacheprog.py")

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


class GoBuildTest(TempDirTest):
    """A module and a go that speaks GOCACHEPROG, to build it with."""

    def setUp(self):
        super().setUp()
        self.go = cacheprog_go()
        self.env = cacheprog_env(self.tmp)
        os.makedirs(self.env["HOME"], exist_ok=True)
        self.src = os.path.join(self.tmp, "src")
        write_files(self.src, MODULE)

    def build(self, name, gocache=None, helper=None, src=None, goos=None):
        """Builds the module (through `helper`, a GOCACHEPROG, when given);
        returns (binary, action graph, stderr)."""
        env = dict(self.env)
        if goos:
            env["GOOS"] = goos
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


class CacheprogTest(GoBuildTest):
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

    def test_the_daily_trim_is_done_before_the_close_is_answered(self):
        # Once it has the answer to its close, the go command cancels the
        # context that kills its helper ("only after that exchange do we
        # cancel the context that kills the process", cmd/go's prog.go): the
        # helper's last work must be done by then. A client of the test's
        # own kills it at once.
        helper_dir = os.path.join(self.tmp, "helper-cache")
        self.build("first", gocache=os.path.join(self.tmp, "go"),
                   helper=helper_command(helper_dir))
        old = time.time() - 6 * 24 * 3600
        unused = []
        for i in range(2000):
            action, output = hex_id(f"unused-action-{i}"), hex_id(f"unused-output-{i}")
            for name, data in ((f"{action}-a", action_entry(action, output, 5)),
                               (f"{output}-d", b"hello")):
                path = os.path.join(helper_dir, name[:2], name)
                with open(path, "wb") as f:
                    f.write(data)
                os.utime(path, (old, old))
                unused.append(path)
        with open(os.path.join(helper_dir, "trim.txt"), "w") as f:
            f.write(f"{int(old)}\n")
        helper = subprocess.Popen(helper_command(helper_dir).split(), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        try:
            self.assertIn(b"KnownCommands", helper.stdout.readline())
            helper.stdin.write(b'{"ID":1,"Command":"close"}\n\n')
            helper.stdin.flush()
            self.assertEqual(helper.stdout.readline(), b'{"ID":1}\n')
            helper.kill()
        finally:
            helper.kill()
            helper.wait(timeout=10)
        self.assertEqual([p for p in unused if os.path.exists(p)], [],
                         "the entries unused for 5 days and 1 hour are gone")
        with open(os.path.join(helper_dir, "trim.txt")) as f:
            self.assertGreater(int(f.read()), time.time() - 600)
        _, graph, _ = self.build("second", gocache=os.path.join(self.tmp, "go"),
                                 helper=helper_command(helper_dir))
        self.assertEqual(commands_run(graph), LINK_ONLY, "what the builds use stays")
        self.assert_healthy_cache(helper_dir)

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


def tap_counts(log_path):
    """What the tap saw the helpers answer: {(command, result): count}."""
    commands, counts = {}, {}
    with open(log_path) as f:
        for line in f:
            entry = json.loads(line)
            if "request" in entry:
                commands[entry["request"]] = entry["command"]
                continue
            command = commands[entry["answer"]]
            if command == "close":
                continue
            if entry["error"]:
                result = "error"
            elif command == "get":
                result = "miss" if entry["miss"] else "hit"
            else:
                result = "ok"
            counts[(command, result)] = counts.get((command, result), 0) + 1
    return counts


def entries(cache_dir):
    """{name: (size, mtime in ns)} of the actions and outputs in a cache directory."""
    found = {}
    for shard in os.listdir(cache_dir):
        if len(shard) != 2 or not os.path.isdir(os.path.join(cache_dir, shard)):
            continue
        for name in os.listdir(os.path.join(cache_dir, shard)):
            if name.endswith(("-a", "-d")):
                st = os.lstat(os.path.join(cache_dir, shard, name))
                found[name] = (st.st_size, st.st_mtime_ns)
    return found


def entry_bytes(found):
    return sum(size for size, _ in found.values())


class BoundsTest(GoBuildTest):
    def assert_least_recently_used_went(self, before, after):
        """Of the actions listed before, those evicted since were used no
        later than every one that is still there as it was (an action the
        build wrote again counts as new)."""
        actions = {n: m for n, (_, m) in before.items() if n.endswith("-a")}
        gone = [m for n, m in actions.items() if n not in after]
        kept = [m for n, m in actions.items() if n in after and after[n][1] == m]
        self.assertTrue(gone, "the build evicted nothing")
        if kept:
            self.assertLessEqual(max(gone), min(kept), "a newer action went before an older one")

    def test_max_bytes_holds_across_builds_for_three_targets(self):
        # What one target's build writes: its own standard library and more.
        probe = os.path.join(self.tmp, "probe")
        self.build("probe", gocache=os.path.join(self.tmp, "go"),
                   helper=helper_command(probe, "--cacheprog.socket="))
        bound = int(1.5 * entry_bytes(entries(probe)))
        helper_dir = os.path.join(self.tmp, "bounded")
        helper = helper_command(helper_dir, f"--max-bytes={bound}", "--cacheprog.socket=")
        before = None
        for goos in ("linux", "windows", "darwin"):
            _, _, stderr = self.build(f"hello-{goos}", gocache=os.path.join(self.tmp, "go"),
                                      helper=helper, goos=goos)
            now = entries(helper_dir)
            self.assertLessEqual(entry_bytes(now), bound, f"after the {goos} build")
            self.assertNotIn("cacheprog", stderr)
            if before is not None:
                self.assert_least_recently_used_went(before, now)
            before = now
        self.assert_healthy_cache(helper_dir)

    def test_max_inode_usage_holds_on_a_small_filesystem(self):
        probe = os.path.join(self.tmp, "probe")
        self.build("probe", gocache=os.path.join(self.tmp, "go"),
                   helper=helper_command(probe, "--cacheprog.socket="))
        one = len(entries(probe))
        mnt = self.mount_tmpfs("size=512m,nr_inodes=4000,mode=755")
        helper_dir = os.path.join(mnt, "go-build")
        # The cache's directories and the helpers' own files, before any entry.
        subprocess.run([EXPORTER, "cacheprog", f"--cache.dir={helper_dir}", "--max-bytes=1TiB",
                        "--cacheprog.socket="], input=b"", check=True, timeout=30)
        fs = os.statvfs(mnt)
        base = fs.f_files - fs.f_ffree
        bound = (base + 1.5 * one) / fs.f_files
        helper = helper_command(helper_dir, f"--max-inode-usage={bound:.4f}",
                                "--cacheprog.socket=")
        before = None
        for goos in ("linux", "windows", "darwin"):
            self.build(f"hello-{goos}", gocache=os.path.join(self.tmp, "go"), helper=helper,
                       goos=goos)
            fs = os.statvfs(mnt)
            self.assertLessEqual((fs.f_files - fs.f_ffree) / fs.f_files, bound,
                                 f"inode usage after the {goos} build")
            now = entries(helper_dir)
            if before is not None:
                self.assert_least_recently_used_went(before, now)
            before = now
        self.assert_healthy_cache(helper_dir)


class ReportsTest(GoBuildTest):
    """The helpers' reports reach a running exporter, and never hold a build."""

    def setUp(self):
        super().setUp()
        self.socket = os.path.join(self.tmp, "cacheprog.sock")
        self.helper_dir = os.path.join(self.tmp, "helper-cache")
        self.tap_log = os.path.join(self.tmp, "tap.log")

    def tapped_helper(self):
        return " ".join([sys.executable, TAP, self.tap_log, "--", EXPORTER, "cacheprog",
                         f"--cache.dir={self.helper_dir}", f"--cacheprog.socket={self.socket}"])

    def exporter(self, *more):
        return Exporter("--collector.cacheprog", f"--cacheprog.socket={self.socket}",
                        f"--cache.dir={self.helper_dir}", "--no-collector.stale", *more,
                        cache_changes="the helpers write the cache it watches")

    def requests(self, samples):
        return {(dict(labels)["command"], dict(labels)["result"]): v
                for (name, labels), v in samples.items()
                if name == "gocache_cacheprog_requests_total" and v > 0}

    def edit_module(self, text):
        with open(os.path.join(self.src, "greet", "greet.go"), "a") as f:
            f.write(f"\n// {text}\n")

    def test_the_exporter_counts_exactly_what_the_helpers_answered(self):
        # No exporter: the build runs as it would without one.
        self.build("before", gocache=os.path.join(self.tmp, "go"), helper=self.tapped_helper())
        os.remove(self.tap_log)
        go_cache = os.path.join(self.tmp, "go")
        with self.exporter(f"--cache.dir={go_cache}") as exporter:
            # Before a helper reports, nothing says the go command uses one.
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(value(samples, "gocache_cacheprog_configured", path=go_cache), 0)
            _, graph, _ = self.build("warm", gocache=go_cache, helper=self.tapped_helper())
            self.assertEqual(commands_run(graph), LINK_ONLY)
            self.edit_module("changed")
            self.build("changed", gocache=os.path.join(self.tmp, "go"),
                       helper=self.tapped_helper())
            want = tap_counts(self.tap_log)
            self.assertGreater(want.get(("get", "hit"), 0), 10)
            self.assertGreater(want.get(("put", "ok"), 0), 0)
            text = exporter.wait_for(lambda s: self.requests(s) == want, timeout=20,
                                     what=f"requests_total equal to the tap's {want}")
            samples = parse_metrics(text)
            path = self.helper_dir
            self.assertEqual(value(samples, "gocache_cacheprog_processes_started_total",
                                   path=path), 2)
            self.assertEqual(value(samples, "gocache_cacheprog_reports_lost_total", path=path), 0)
            self.assertEqual(value(samples, "gocache_cacheprog_get_misses_total", path=path,
                                   reason="no_entry"), want.get(("get", "miss"), 0))
            for command, result in want:
                self.assertEqual(value(samples, "gocache_cacheprog_request_duration_seconds_count",
                                       path=path, command=command, result=result),
                                 want[(command, result)])
            exporter.wait_for(lambda s: value(s, "gocache_cacheprog_processes", path=path) == 0,
                              what="no helper running")
            # The go command's GOCACHE gets no entries from it; the helper's
            # cache does.
            self.assertEqual(value(samples, "gocache_cacheprog_configured", path=go_cache), 1)
            self.assertEqual(value(samples, "gocache_cacheprog_configured", path=path), 0)
            code, out = promtool_check(text)
            self.assertEqual((code, out), (0, ""))
            self.assertEqual(families(text) - readme_families(), set(),
                             "families the README's metric table does not list")

    def test_an_exporter_killed_mid_build_fails_no_build_and_counts_nothing_twice(self):
        exporter = self.exporter()
        try:
            result = {}
            build = threading.Thread(target=lambda: result.update(
                out=self.build("cold", gocache=os.path.join(self.tmp, "go"),
                               helper=self.tapped_helper())))
            build.start()
            exporter.wait_for(
                has("gocache_cacheprog_processes_started_total", path=self.helper_dir),
                what="the helper's first report")
            exporter.proc.send_signal(signal.SIGKILL)
            exporter.proc.wait(timeout=10)
            build.join(timeout=600)
            self.assertIn("out", result, "the build failed with the exporter killed")
        finally:
            exporter.stop()
        with self.exporter() as exporter:
            self.edit_module("after the restart")
            self.build("after", gocache=os.path.join(self.tmp, "go"), helper=self.tapped_helper())
            time.sleep(0.5)  # the last datagrams
            seen = tap_counts(self.tap_log)
            counted = self.requests(parse_metrics(exporter.scrape()))
            self.assertTrue(counted, "the restarted exporter counts the next build")
            for key, count in counted.items():
                self.assertLessEqual(count, seen.get(key, 0), key)


class CheckNoticesTest(TempDirTest):
    def test_check_says_when_the_go_command_no_longer_writes_the_cache(self):
        gocache = os.path.join(self.tmp, "go-build")
        other = os.path.join(self.tmp, "other")
        os.makedirs(gocache)
        os.makedirs(other)
        env = dict(os.environ, GOCACHE=gocache, HOME=self.tmp, PATH="/usr/bin:/bin")
        env.pop("GOENV", None)
        helper = f"{EXPORTER} cacheprog --cache.dir={other}"
        r = run_exporter("check", f"--cache.dir={gocache}", f"--cache.dir={other}",
                         env=dict(env, GOCACHEPROG=helper))
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines[1], f"  note: the go command uses GOCACHEPROG={helper} and "
                                   "stores no entries here itself")
        self.assertTrue(lines[2].startswith(other + ": "))
        self.assertEqual(len(lines), 3, "only the go command's own GOCACHE gets the note")
        r = run_exporter("check", f"--cache.dir={gocache}", "--format=json",
                         env=dict(env, GOCACHEPROG=helper))
        self.assertEqual(json.loads(r.stdout)["caches"][0]["cacheprog"], helper)

        # Set with `go env -w`, in the go env file, it is found there too.
        os.makedirs(os.path.join(self.tmp, ".config", "go"))
        with open(os.path.join(self.tmp, ".config", "go", "env"), "w") as f:
            f.write(f"GOCACHEPROG={helper}\n")
        r = run_exporter("check", f"--cache.dir={gocache}", "--format=json", env=env)
        self.assertEqual(json.loads(r.stdout)["caches"][0]["cacheprog"], helper)
        # The exporter, run in that environment, says so in its log and
        # marks that cache, before any helper reports.
        socket = os.path.join(self.tmp, "cacheprog.sock")
        with Exporter("--collector.cacheprog", f"--cacheprog.socket={socket}",
                      f"--cache.dir={gocache}", f"--cache.dir={other}", "--no-collector.stale",
                      env=env) as exporter:
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(value(samples, "gocache_cacheprog_configured", path=gocache), 1)
            self.assertEqual(value(samples, "gocache_cacheprog_configured", path=other), 0)
            self.assertIn(f'msg="the go command uses a GOCACHEPROG helper: it writes no entries '
                          f'to this cache" path={gocache}', exporter.log())
        # Without one, nothing is said.
        os.remove(os.path.join(self.tmp, ".config", "go", "env"))
        r = run_exporter("check", f"--cache.dir={gocache}", "--format=json", env=env)
        self.assertNotIn("cacheprog", json.loads(r.stdout)["caches"][0])


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


class DocumentedSetupTest(GoBuildTest):
    """The GOCACHEPROG of deploy/ci/README.md's recipes, run by a real go."""

    def documented_gocacheprog(self):
        with open(os.path.join(SOURCE_DIR, "deploy", "ci", "README.md")) as f:
            text = f.read()
        section = text[text.index("## The GOCACHEPROG helper"):]
        values = re.findall(r"^ *GOCACHEPROG: (.+)$", section, re.M)
        self.assertEqual(len(values), 2, "one in the GitHub Actions recipe, one in GitLab's")
        self.assertEqual(values[0], values[1])
        return values[0]

    def test_the_recipes_helper_serves_a_build(self):
        documented = self.documented_gocacheprog()
        self.assertTrue(documented.startswith("/usr/local/bin/gocache_exporter cacheprog "))
        cache_dir = os.path.join(self.tmp, "srv-ci-go-build")
        helper = (documented.replace("/usr/local/bin/gocache_exporter", EXPORTER)
                  .replace("/srv/ci/go-build", cache_dir)
                  + f" --cacheprog.socket={self.tmp}/no-exporter.sock")
        self.assertNotEqual(helper, documented)
        self.build("first", gocache=os.path.join(self.tmp, "go"), helper=helper)
        _, graph, _ = self.build("second", gocache=os.path.join(self.tmp, "go"), helper=helper)
        self.assertEqual(commands_run(graph), LINK_ONLY)
        self.assert_healthy_cache(cache_dir)


class WrapTest(GoBuildTest):
    """--wrap around a helper of the test's own (fake_cacheprog.py), between
    the go command and a tap that counts and keeps the bytes it relays."""

    def setUp(self):
        super().setUp()
        self.socket = os.path.join(self.tmp, "cacheprog.sock")
        self.store = os.path.join(self.tmp, "remote")
        self.tap_log = os.path.join(self.tmp, "tap.log")

    def wrapped(self, name):
        """The GOCACHEPROG of one build: its bytes go to <name>-go.* and
        <name>-fake.*."""
        return " ".join([sys.executable, TAP, self.tap_log, f"--raw={self.tmp}/{name}-go", "--",
                         EXPORTER, "cacheprog", f"--cacheprog.socket={self.socket}", "--wrap",
                         "--", FAKE, self.store, f"{self.tmp}/{name}-fake"])

    def test_everything_is_relayed_unchanged_and_every_answer_timed(self):
        go_cache = os.path.join(self.tmp, "go")
        path = "wrap:fake_cacheprog.py"
        with Exporter("--collector.cacheprog", f"--cacheprog.socket={self.socket}",
                      f"--cache.dir={go_cache}", "--no-collector.stale",
                      cache_changes="the go command opens its GOCACHE") as exporter:
            plain, _, _ = self.build("plain", gocache=os.path.join(self.tmp, "plain-cache"))
            _, graph, _ = self.build("cold", gocache=go_cache, helper=self.wrapped("cold"))
            self.assertGreater(len(commands_run(graph)), 10, "a cold build compiles")
            warm, graph, _ = self.build("warm", gocache=go_cache, helper=self.wrapped("warm"))
            self.assertEqual(commands_run(graph), LINK_ONLY, "the wrapped helper's hits")
            self.assertEqual(self.read(warm), self.read(plain))

            # Both ways, byte for byte: what the go command sent is what the
            # wrapped helper read, and what it wrote is what the go command got
            # (the go command's last byte, the empty line after its close, may
            # come after the helper stopped reading).
            for name in ("cold", "warm"):
                go_in = self.read(f"{self.tmp}/{name}-go.in")
                fake_in = self.read(f"{self.tmp}/{name}-fake.in")
                self.assertGreater(len(fake_in), 1000)
                self.assertEqual(go_in[:len(fake_in)], fake_in)
                self.assertIn(go_in[len(fake_in):], (b"", b"\n"))
                self.assertEqual(self.read(f"{self.tmp}/{name}-go.out"),
                                 self.read(f"{self.tmp}/{name}-fake.out"))

            want = tap_counts(self.tap_log)
            self.assertGreater(want.get(("get", "hit"), 0), 10)
            self.assertGreater(want.get(("get", "miss"), 0), 10)
            self.assertGreater(want.get(("put", "ok"), 0), 10)

            def requests(samples):
                return {(dict(l)["command"], dict(l)["result"]): v
                        for (name, l), v in samples.items()
                        if name == "gocache_cacheprog_requests_total" and v > 0
                        and dict(l)["path"] == path}

            text = exporter.wait_for(lambda s: requests(s) == want, timeout=20,
                                     what=f"requests_total equal to the tap's {want}")
            samples = parse_metrics(text)
            for (command, result), count in want.items():
                self.assertEqual(value(samples, "gocache_cacheprog_request_duration_seconds_count",
                                       path=path, command=command, result=result), count)
                self.assertGreater(value(samples, "gocache_cacheprog_request_duration_seconds_sum",
                                         path=path, command=command, result=result), 0)
            self.assertEqual(value(samples, "gocache_cacheprog_get_misses_total", path=path,
                                   reason="remote"), want[("get", "miss")])
            # Bytes: what the wrapped helper stored and served.
            stored = sum(os.path.getsize(os.path.join(self.store, f))
                         for f in os.listdir(self.store) if f.endswith("-d"))
            self.assertEqual(value(samples, "gocache_cacheprog_bytes_total", path=path,
                                   command="put"), stored)
            self.assertGreater(value(samples, "gocache_cacheprog_bytes_total", path=path,
                                     command="get"), 0)
            self.assertEqual(value(samples, "gocache_cacheprog_processes_started_total",
                                   path=path), 2)
            self.assertEqual(value(samples, "gocache_cacheprog_configured", path=go_cache), 1)
            self.assertEqual(promtool_check(text), (0, ""))

    def test_its_errors_and_exit_pass_through(self):
        r = subprocess.run([EXPORTER, "cacheprog", "--cacheprog.socket=", "--wrap", "--", FAKE,
                            self.store, f"{self.tmp}/fake", "--exit-after-hello=7"],
                           input=b'{"ID":1,"Command":"close"}\n\n', capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 7)
        self.assertEqual(r.stderr.decode(), "fake_cacheprog: giving up with 7\n")
        self.assertEqual(r.stdout, self.read(f"{self.tmp}/fake.out"))

        # Commands this helper does not know, the wrapped one may: relayed
        # both ways at once, while the go command's input stays open. (An
        # answer to a request the relay had not noted would wait a second
        # for the note: five of them, five seconds.)
        wrapper = subprocess.Popen([EXPORTER, "cacheprog", "--cacheprog.socket=", "--wrap", "--",
                                    FAKE, self.store, f"{self.tmp}/unknown"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.assertIn(b"KnownCommands", wrapper.stdout.readline())
            started = time.monotonic()
            for i in range(3, 8):
                request = json.dumps({"ID": i, "Command": "delete", "ActionID": ACTION})
                wrapper.stdin.write(f"{request}\n\n".encode())
                wrapper.stdin.flush()
                self.assertEqual(json.loads(wrapper.stdout.readline()),
                                 {"ID": i, "Err": "unknown command 'delete'"})
            self.assertLess(time.monotonic() - started, 3, "answers waited for notes")
            wrapper.stdin.write(b'{"ID":8,"Command":"close"}\n\n')
            wrapper.stdin.flush()
            self.assertEqual(json.loads(wrapper.stdout.readline()), {"ID": 8})
            self.assertEqual(wrapper.wait(timeout=10), 0)
        finally:
            wrapper.kill()
            wrapper.wait(timeout=10)

        missing = os.path.join(self.tmp, "no-such-helper")
        r = subprocess.run([EXPORTER, "cacheprog", "--cacheprog.socket=", "--wrap", "--", missing],
                           input=b"", capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 127)
        self.assertIn(f"cannot run {missing}: No such file or directory", r.stderr.decode())

        for args, error in [
            (["--wrap"], "--wrap needs the helper to run"),
            (["--", FAKE], "a helper to run after -- needs --wrap"),
            ([f"--cache.dir={self.tmp}", "--wrap", "--", FAKE], "--cache.dir is the helper's own"),
        ]:
            with self.subTest(args=args):
                r = subprocess.run([EXPORTER, "cacheprog", *args], input=b"", capture_output=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 2)
                self.assertIn(error, r.stderr.decode())


class BenchmarkProgramTest(TempDirTest):
    """bench/bench_cacheprog, shortened: it runs, every get it sends hits and
    every put is stored, and the exporter counts exactly what it sent. (The
    figures are the benchmark's business, not asserted.)"""

    def test_the_benchmark_program_runs_and_the_exporter_counts_what_it_sent(self):
        bench = os.path.join(os.path.dirname(EXPORTER), "bench_cacheprog")
        cache = os.path.join(self.tmp, "synthetic")
        make_synthetic_cache(cache, pairs=2000)
        socket = os.path.join(self.tmp, "cacheprog.sock")
        with Exporter("--collector.cacheprog", f"--cacheprog.socket={socket}",
                      f"--cache.dir={cache}", "--no-collector.stale",
                      cache_changes="the benchmark writes the cache") as exporter:
            r = subprocess.run([bench, EXPORTER, cache, "100", socket], capture_output=True,
                               text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            sent = re.search(r"bench_cacheprog: gets=(\d+) puts=(\d+)", r.stdout)
            self.assertIsNotNone(sent, r.stdout)
            want = {("get", "hit"): int(sent.group(1)), ("put", "ok"): int(sent.group(2))}
            self.assertEqual(want, {("get", "hit"): 240, ("put", "ok"): 200})

            def requests(samples):
                return {(dict(l)["command"], dict(l)["result"]): v
                        for (name, l), v in samples.items()
                        if name == "gocache_cacheprog_requests_total" and v > 0}

            exporter.wait_for(lambda s: requests(s) == want, timeout=20,
                              what=f"requests_total equal to what the benchmark sent, {want}")


if __name__ == "__main__":
    unittest.main()
