"""The trace collector: go command traces (-debug-actiongraph and
-debug-trace, plain or gzip) dropped into a spool directory are counted once
each, exactly as an independent reading of the same files in Python counts
them, and renamed to .done (or deleted); bad files are renamed to .error and
counted as errors without counting anything from them, and never fail the
collector. The traces come from real builds with the real go toolchain: one
cold build into an empty GOCACHE, then warm ones over the same cache."""

import atexit
import collections
import datetime
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from harness import (Exporter, TempDirTest, go_binary, go_env, parse_metrics, promtool_check,
                     run_exporter)

# The latency histograms' bucket bounds, 100 µs to 60 s.
BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 60]
# The action modes of the go command (cmd/go/internal/work and test).
GO_MODES = {
    "build", "build-install", "built-in package", "gccgo stdlib", "go build",
    "go build -buildmode=shared", "go install", "go install (tools)",
    "go install -buildmode=shared", "go run", "go test", "go vet", "install header", "link",
    "link-install", "nop", "preprocess PGO profile", "shlib packages", "shlibname", "test build",
    "test clean", "test print", "test print (nop)", "test run", "vet",
    "write coverage meta-data file",
}
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
FILE_SERIES = [("actiongraph", "ok"), ("actiongraph", "error"), ("chrome", "ok"),
               ("chrome", "error"), ("unknown", "error")]
HISTOGRAMS = ("gocache_trace_cache_read_seconds", "gocache_trace_cache_write_seconds",
              "gocache_trace_action_duration_seconds")
# Every wait for the exporter to ingest a file is bounded by this.
INGEST_TIMEOUT = 30.0

# --- the traces of real builds ----------------------------------------------

MAIN = """package main

import (
\t"fmt"
\t"os"

\t"example.com/tr/codec"
\t"example.com/tr/greet"
)

func main() {
\tout, err := codec.Encode(map[string]string{"greeting": greet.Hello(os.Args[0])})
\tif err != nil {
\t\tpanic(err)
\t}
\tfmt.Println(out)
}
"""

GREET = """package greet

import "strings"

// Hello greets name.
func Hello(name string) string { return "hello, " + strings.ToUpper(name) }
"""

CODEC = """package codec

import "encoding/json"

// Encode is v as JSON.
func Encode(v any) (string, error) {
\tb, err := json.Marshal(v)
\treturn string(b), err
}
"""

# A package that does not compile, and a command that imports it.
BAD = """package bad

import "strconv"

// N does not compile: Itoa returns a string.
func N() int { return strconv.Itoa(1) }
"""

BROKEN = """package main

import (
\t"fmt"

\t"example.com/tr/bad"
\t"example.com/tr/codec"
)

func main() {
\tout, _ := codec.Encode(bad.N())
\tfmt.Println(out)
}
"""

_traces_lock = threading.Lock()
_traces = None


def go_traces():
    """The traces of three real builds, made once per test process (the cold
    build takes a while): {"cold": action graph of a build into an empty
    GOCACHE, "cold_trace": its -debug-trace Chrome trace, "warm": the action
    graph of the same build again over the same cache (new -o target), "zoned":
    the same again with TZ set to a zone west of UTC with a half-hour offset,
    "failed": the graph of a build over the same cache that fails to compile
    a package, "interrupted": the graph a cold build writes before it runs
    anything, left as it is when the build is killed}. Read-only to tests:
    they drop copies."""
    global _traces
    with _traces_lock:
        if _traces is None:
            _traces = _build_traces()
        return _traces


def _build_traces():
    tmp = tempfile.mkdtemp(prefix="gocache-trace-builds-")
    atexit.register(shutil.rmtree, tmp, True)
    env = go_env(tmp)
    os.makedirs(env["HOME"])
    src = os.path.join(tmp, "src")
    for rel, text in {"go.mod": "module example.com/tr\n\ngo 1.19\n", "main.go": MAIN,
                      "greet/greet.go": GREET, "codec/codec.go": CODEC, "bad/bad.go": BAD,
                      "cmd/broken/main.go": BROKEN}.items():
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        with open(os.path.join(src, rel), "w") as f:
            f.write(text)
    out = {name: os.path.join(tmp, name + ".json")
           for name in ("cold", "cold_trace", "warm", "zoned", "failed", "interrupted")}

    def build(binary, *flags, package=".", extra_env=None, check=True):
        return subprocess.run(
            [go_binary(), "build", *flags, "-o", os.path.join(tmp, binary), package], cwd=src,
            env=dict(env, **(extra_env or {})), check=check, timeout=600, capture_output=True)

    _interrupted_build(src, dict(env, GOCACHE=os.path.join(tmp, "cache-interrupted")),
                       out["interrupted"])
    build("app1", f"-debug-actiongraph={out['cold']}", f"-debug-trace={out['cold_trace']}")
    build("app2", f"-debug-actiongraph={out['warm']}")
    build("app3", f"-debug-actiongraph={out['zoned']}",
          extra_env={"TZ": "America/St_Johns"})
    r = build("app4", f"-debug-actiongraph={out['failed']}", package="./cmd/broken",
              check=False)
    if r.returncode == 0 or b"cannot use" not in r.stderr:
        raise AssertionError(f"the broken build did not fail as it should: {r.stderr!r}")
    return out


def _interrupted_build(src, env, graph):
    """Starts a cold build, waits for the action graph it writes before it
    runs anything, and kills it (and its compilers) before it writes the
    final one."""
    proc = subprocess.Popen([go_binary(), "build", f"-debug-actiongraph={graph}", "-o",
                             os.devnull, "."], cwd=src, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                json.loads(read_bytes(graph))
                break
            except (OSError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the cold build wrote no action graph")
            time.sleep(0.005)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
    shutil.rmtree(env["GOCACHE"], ignore_errors=True)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# --- what the exporter must count, computed independently ---------------------

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                      r"(?:([Zz])|([+-])(\d\d):(\d\d))")
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


def rfc3339_ns(text):
    """Nanoseconds since the epoch of a time as Go's encoding/json writes it,
    exactly (Python's datetime stops at microseconds); None for a time never
    set (missing, or Go's zero time)."""
    if text is None or text == GO_ZERO_TIME:
        return None
    m = _RFC3339.fullmatch(text)
    if not m:
        raise AssertionError(f"the go command wrote a time {text!r} that is not RFC 3339")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    days = datetime.date(year, month, day).toordinal() - _EPOCH_DAY
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    if m.group(9):
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    fraction = m.group(7) or ""
    nanos = int((fraction + "000000000")[:9])
    return seconds * 1_000_000_000 + nanos


# The modes whose results the go command keeps in the build cache: each is a
# `mode` label of its own, with latency histograms; all others are "other",
# counted in gocache_trace_actions_total only.
CACHE_MODES = {"build", "link", "vet", "test run"}


def mode_label(mode):
    return mode if mode in CACHE_MODES else "other"


def mode_of_description(description):
    """The mode an action description ("build fmt", "built-in package unsafe") starts with."""
    best = None
    for mode in GO_MODES:
        if description == mode or description.startswith(mode + " "):
            if best is None or len(mode) > len(best):
                best = mode
    return best or "other"


class Expected:
    """Counts and observations as the exporter must show them."""

    def __init__(self):
        self.actions = collections.Counter()  # (mode, result) -> count
        self.observations = collections.defaultdict(list)  # (family, labels) -> [seconds]

    def observe(self, family, seconds, **labels):
        self.observations[(family, tuple(sorted(labels.items())))].append(seconds)

    def __add__(self, other):
        total = Expected()
        for part in (self, other):
            total.actions.update(part.actions)  # keeps the zero counts of modes seen
            for key, values in part.observations.items():
                total.observations[key].extend(values)
        return total

    def count(self, mode, result):
        return self.actions.get((mode, result), 0)


# The modes whose results the go command looks up in the cache by ActionID.
USES_ACTION_ID = {"build", "link", "preprocess PGO profile", "go build -buildmode=shared"}


def expect_action_graph(data):
    """What an action graph counts: per mode, actions that ran a command
    (miss) and those that did not (hit), skipping actions that never ran and
    compiles and links that never looked in the cache."""
    expected = Expected()
    for action in json.loads(data):
        start = rfc3339_ns(action.get("TimeStart"))
        done = rfc3339_ns(action.get("TimeDone"))
        if start is None or done is None or done < start:
            continue
        if (not action.get("Cmd") and not action.get("ActionID")
                and action["Mode"] in USES_ACTION_ID):
            continue  # skipped after a dependency failed: it looked nothing up
        mode = mode_label(action["Mode"])
        seconds = (done - start) / 1e9
        expected.actions.setdefault((mode, "hit"), 0)
        expected.actions.setdefault((mode, "miss"), 0)
        if action.get("Cmd"):
            expected.actions[(mode, "miss")] += 1
            if mode == "other":
                continue
            command = float(action.get("CmdReal", 0)) / 1e9
            expected.observe("gocache_trace_cache_write_seconds", max(0.0, seconds - command),
                             mode=mode)
            expected.observe("gocache_trace_action_duration_seconds", seconds, mode=mode,
                             result="miss")
        else:
            expected.actions[(mode, "hit")] += 1
            if mode != "other":  # a hit's duration is its cache read: not repeated
                expected.observe("gocache_trace_cache_read_seconds", seconds, mode=mode)
    return expected


ACTION_SPAN = "Executing action ("


def expect_chrome_trace(data):
    """What a Chrome trace counts: its action spans (B/E pairs per thread),
    by mode, with result unknown."""
    expected = Expected()
    open_spans = collections.defaultdict(list)
    for event in json.loads(data):
        name = event.get("name", "")
        if not (name.startswith(ACTION_SPAN) and name.endswith(")")):
            continue
        thread = (event.get("pid", 0), event.get("tid", 0))
        if event["ph"] == "B":
            open_spans[thread].append(
                (event["ts"], mode_label(mode_of_description(name[len(ACTION_SPAN):-1]))))
        elif event["ph"] == "E" and open_spans[thread]:
            ts, mode = open_spans[thread].pop()
            if event["ts"] >= ts and mode != "other":
                expected.observe("gocache_trace_action_duration_seconds",
                                 (event["ts"] - ts) / 1e6, mode=mode, result="unknown")
    return expected


_expected_cache = {}


def expected_for(name):
    """Expected counts of one of go_traces()' files, computed once."""
    if name not in _expected_cache:
        data = read_bytes(go_traces()[name])
        _expected_cache[name] = (expect_chrome_trace(data) if name.endswith("_trace")
                                 else expect_action_graph(data))
    return _expected_cache[name]


# --- reading the exposition ---------------------------------------------------

def exact(samples, name, **labels):
    """The sample of name with exactly these labels, or None."""
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


def file_counts(samples):
    counts = {}
    for (name, labels), v in samples.items():
        if name == "gocache_trace_files_total":
            d = dict(labels)
            counts[(d["format"], d["result"])] = v
    return counts


def files_seen(samples):
    return sum(file_counts(samples).values())


def trace_success(samples):
    return exact(samples, "gocache_scrape_collector_success", collector="trace")


def files_counted(n):
    """A wait_for predicate: at least n files counted, and the collector's last update succeeded."""
    return lambda samples: files_seen(samples) >= n and trace_success(samples) == 1


def action_counts(samples):
    return {(dict(ls)["mode"], dict(ls)["result"]): v for (n, ls), v in samples.items()
            if n == "gocache_trace_actions_total"}


def histogram_series(samples):
    """{(family, labels): (count, sum, {le: cumulative count})} of the trace histograms."""
    series = {}
    for (name, labels), v in samples.items():
        for family in HISTOGRAMS:
            if name == family + "_count":
                series.setdefault((family, labels), [None, None, {}])[0] = v
            elif name == family + "_sum":
                series.setdefault((family, labels), [None, None, {}])[1] = v
            elif name == family + "_bucket":
                d = dict(labels)
                le = d.pop("le")
                key = (family, tuple(sorted(d.items())))
                series.setdefault(key, [None, None, {}])[2][float(le)] = v
    return series


class TraceTest(TempDirTest):
    """A spool in self.spool, an empty build cache, and an exporter running
    only the trace collector."""

    def setUp(self):
        super().setUp()
        self.spool = os.path.join(self.tmp, "spool")
        self.stage = os.path.join(self.tmp, "stage")  # same filesystem: rename is a move
        self.empty = os.path.join(self.tmp, "empty-cache")
        for d in (self.spool, self.stage, self.empty):
            os.mkdir(d)

    def start(self, *args, spool=None):
        spools = [self.spool] if spool is None else spool
        return Exporter("--collector.disable-defaults", "--collector.trace",
                        f"--cache.dir={self.empty}", *(f"--trace.dir={d}" for d in spools),
                        *args)

    def drop(self, name, data, spool=None):
        """Writes data beside the spool and moves it in (a moved-to event)."""
        staged = os.path.join(self.stage, name)
        with open(staged, "wb") as f:
            f.write(data)
        os.rename(staged, os.path.join(spool or self.spool, name))

    def drop_trace(self, name, which, spool=None):
        """Drops a copy of one of go_traces()' files."""
        self.drop(name, read_bytes(go_traces()[which]), spool)

    def listing(self, spool=None):
        return sorted(os.listdir(spool or self.spool))

    def assert_files(self, samples, **want):
        """gocache_trace_files_total: every series present, with the wanted
        counts (format_result=n) and zero elsewhere."""
        expected = {key: float(want.pop(f"{key[0]}_{key[1]}", 0)) for key in FILE_SERIES}
        self.assertEqual(want, {}, "unknown series asked for")
        self.assertEqual(file_counts(samples), expected)

    def assert_counts(self, samples, expected, slack=0.0):
        """Every trace action counter and histogram equals `expected`, and
        there are no others. slack: how far (seconds) an observation may be
        from the value computed here (Chrome trace timestamps are doubles
        that the exporter's JSON reader may round differently)."""
        self.assertEqual(action_counts(samples), dict(expected.actions))
        got = histogram_series(samples)
        self.assertEqual(sorted(got), sorted(expected.observations))
        for key, values in expected.observations.items():
            with self.subTest(series=key):
                count, total, buckets = got[key]
                self.assertEqual(count, len(values))
                want_sum = sum(values)
                self.assertAlmostEqual(
                    total, want_sum,
                    delta=max(1e-6 * abs(want_sum), 1e-9) + slack * len(values))
                self.assertEqual(sorted(buckets), sorted(BUCKETS + [float("inf")]))
                self.assertEqual(buckets[float("inf")], len(values))
                for le in BUCKETS:
                    lo = sum(1 for v in values if v <= le - slack)
                    hi = sum(1 for v in values if v <= le + slack)
                    self.assertTrue(lo <= buckets[le] <= hi,
                                    f"bucket le={le}: {buckets[le]}, want {lo}..{hi}")

    def assert_nothing_counted(self, samples):
        self.assertEqual(action_counts(samples), {})
        self.assertEqual(histogram_series(samples), {})


class ActionGraphTest(TraceTest):

    def test_cold_then_warm_build_counts_every_action_exactly(self):
        cold, warm = expected_for("cold"), expected_for("warm")
        # What the builds must have been for the test to mean anything.
        self.assertGreater(cold.count("build", "miss"), 20)
        self.assertEqual(cold.count("build", "hit"), 0)
        self.assertGreater(warm.count("build", "hit"), 20)
        with self.start() as exporter:
            exporter.wait_for(lambda s: trace_success(s) == 1, what="first update")
            self.drop_trace("cold.json", "cold")
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "the cold build's graph"))
            self.assert_files(samples, actiongraph_ok=1)
            self.assert_counts(samples, cold)
            self.assertEqual(exact(samples, "gocache_trace_actions_total", mode="build",
                                   result="miss"), cold.count("build", "miss"))

            self.drop_trace("warm.json", "warm")
            samples = parse_metrics(exporter.wait_for(files_counted(2), INGEST_TIMEOUT,
                                                      "the warm build's graph"))
            self.assert_files(samples, actiongraph_ok=2)
            self.assert_counts(samples, cold + warm)
            self.assertEqual(exact(samples, "gocache_trace_actions_total", mode="build",
                                   result="hit"), warm.count("build", "hit"))
        self.assertEqual(self.listing(), ["cold.json.done", "warm.json.done"])
        # Renamed, not rewritten.
        self.assertEqual(read_bytes(os.path.join(self.spool, "cold.json.done")),
                         read_bytes(go_traces()["cold"]))

    def test_restart_counts_nothing_twice(self):
        with self.start() as exporter:
            self.drop_trace("cold.json", "cold")
            self.drop_trace("warm.json", "warm")
            exporter.wait_for(files_counted(2), INGEST_TIMEOUT, "both graphs")
        before = {name: os.stat(os.path.join(self.spool, name)) for name in self.listing()}
        self.assertEqual(sorted(before), ["cold.json.done", "warm.json.done"])

        with self.start() as exporter:
            started = time.monotonic()
            # Several poll intervals (the collector looks every second).
            samples = parse_metrics(exporter.wait_for(
                lambda s: trace_success(s) == 1 and time.monotonic() - started >= 3.0,
                timeout=20, what="three seconds of polls"))
            self.assert_files(samples)
            self.assert_nothing_counted(samples)
            after = {name: os.stat(os.path.join(self.spool, name)) for name in self.listing()}
            self.assertEqual(sorted(after), sorted(before))
            for name, st in before.items():
                self.assertEqual((after[name].st_ino, after[name].st_mtime_ns, after[name].st_size),
                                 (st.st_ino, st.st_mtime_ns, st.st_size), name)
            # The new process does count a new file.
            self.drop_trace("again.json", "warm")
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "a new file"))
            self.assert_files(samples, actiongraph_ok=1)
            self.assert_counts(samples, expected_for("warm"))

    def test_zoned_failed_interrupted_and_gzip_graphs(self):
        zoned_data = read_bytes(go_traces()["zoned"])
        # The build ran in a zone west of UTC: its times carry that offset.
        self.assertRegex(zoned_data.decode(), r'"TimeStart": "[^"]*-0[23]:30"')
        zoned = expected_for("zoned")
        self.assertGreater(zoned.count("build", "hit"), 20)
        interrupted = json.loads(read_bytes(go_traces()["interrupted"]))
        # Killed before anything ran: every time is Go's zero time.
        self.assertGreater(len(interrupted), 20)
        self.assertEqual({(a.get("TimeStart"), a.get("TimeDone")) for a in interrupted},
                         {(GO_ZERO_TIME, GO_ZERO_TIME)})
        failed_graph = json.loads(read_bytes(go_traces()["failed"]))
        self.assertTrue(any(a["Mode"] == "build" and a["Package"] == "example.com/tr/bad"
                            and a.get("Cmd") for a in failed_graph))
        failed = expected_for("failed")
        self.assertGreaterEqual(failed.count("build", "miss"), 1)
        # What depended on the failed compile got times but ran nothing and
        # looked nothing up: not a hit.
        skipped = [a for a in failed_graph if a["Mode"] in USES_ACTION_ID and not a.get("Cmd")
                   and not a.get("ActionID") and a.get("TimeStart") != GO_ZERO_TIME]
        self.assertIn("link", {a["Mode"] for a in skipped})
        self.assertEqual(failed.count("link", "hit") + failed.count("link", "miss"), 0)
        cold = read_bytes(go_traces()["cold"])
        half = len(cold) // 2

        with self.start() as exporter:
            self.drop("zoned.json", zoned_data)
            self.drop_trace("interrupted.json", "interrupted")
            self.drop_trace("failed.json", "failed")
            self.drop("one.json.gz", gzip.compress(cold))
            # As `gzip -c a >> f; gzip -c b >> f` leaves it: gzip -d reads both members.
            self.drop("two", gzip.compress(cold[:half]) + gzip.compress(cold[half:]))
            samples = parse_metrics(exporter.wait_for(files_counted(5), INGEST_TIMEOUT,
                                                      "five graphs"))
        # All whole graphs: ok, counting only the actions that ran.
        self.assert_files(samples, actiongraph_ok=5)
        self.assert_counts(samples, zoned + failed + expected_for("cold") + expected_for("cold"))
        self.assertEqual(self.listing(), ["failed.json.done", "interrupted.json.done",
                                          "one.json.gz.done", "two.done", "zoned.json.done"])


class ChromeTraceTest(TraceTest):

    def test_gzip_chrome_trace_counts_action_spans(self):
        data = read_bytes(go_traces()["cold_trace"])
        events = json.loads(data)
        builds = sum(1 for e in events if e.get("ph") == "B" and (
            e.get("name", "").startswith("Executing action (build ")
            or e.get("name") == "Executing action (build)"))
        expected = expected_for("cold_trace")
        self.assertGreater(builds, 20)
        self.assertEqual(len(expected.observations.get(
            ("gocache_trace_action_duration_seconds", (("mode", "build"), ("result", "unknown"))),
            [])), builds)
        with self.start() as exporter:
            self.drop("build.trace.json.gz", gzip.compress(data))
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "the Chrome trace"))
        self.assert_files(samples, chrome_ok=1)
        self.assertEqual(exact(samples, "gocache_trace_action_duration_seconds_count",
                               mode="build", result="unknown"), builds)
        # No hits or misses: a Chrome trace cannot tell them. The timestamps
        # are doubles of microseconds: allow 1 us per span for rounding.
        self.assert_counts(samples, expected, slack=1e-6)
        self.assertEqual(self.listing(), ["build.trace.json.gz.done"])


class BadInputTest(TraceTest):

    def test_bad_files_are_errors_that_count_nothing(self):
        cold = read_bytes(go_traces()["cold"])
        trace = read_bytes(go_traces()["cold_trace"])
        outside = os.path.join(self.tmp, "outside")
        os.mkdir(outside)
        target = os.path.join(outside, "real.json")
        with open(target, "wb") as f:
            f.write(cold)
        target_before = os.stat(target)

        with self.start() as exporter:
            self.drop_trace("good.json", "warm")
            good = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                   "the good graph"))
            self.assert_counts(good, expected_for("warm"))

            # Names never picked up, even long settled (the update that
            # counts the last bad file listed the spool after these were made).
            ignored = [".hidden.json", "writing.json.tmp", "old.json.done", "old.json.error"]
            old = time.time() - 60
            for name in ignored:
                self.drop_trace(name, "warm")
                os.utime(os.path.join(self.spool, name), (old, old))

            self.drop("truncated.json", cold[:len(cold) // 2])
            self.drop("garbage.json", b"this is not JSON\n\x00\xff\xfe{[\n")
            self.drop("object.json", b'{"a":1}')
            self.drop("numbers.json", b"[1,2]")
            self.drop("no-mode.json", b'[{"x":1}]')
            self.drop("empty-array.json", b"[]")
            self.drop("empty.json", b"")
            # Nested far deeper than any trace: refused, without exhausting a stack.
            self.drop("deep.json", b'[{"Mode": "build", "Deps": ' + b"[" * 100000)
            self.drop("truncated.trace.json", trace[:len(trace) // 2])
            link = os.path.join(self.stage, "link.json")
            os.symlink(target, link)
            os.rename(link, os.path.join(self.spool, "link.json"))
            fifo = os.path.join(self.stage, "fifo.json")
            os.mkfifo(fifo)
            os.rename(fifo, os.path.join(self.spool, "fifo.json"))
            bad = ["truncated.json", "garbage.json", "object.json", "numbers.json",
                   "no-mode.json", "empty-array.json", "empty.json", "deep.json",
                   "truncated.trace.json", "link.json", "fifo.json"]
            samples = parse_metrics(exporter.wait_for(files_counted(1 + len(bad)),
                                                      INGEST_TIMEOUT, "the bad files"))
            # The truncated files' formats could be told from their first elements.
            self.assert_files(samples, actiongraph_ok=1, actiongraph_error=1, chrome_error=1,
                              unknown_error=len(bad) - 2)
            # Nothing from the bad files, in particular not the actions of the
            # truncated graph's first half.
            self.assert_counts(samples, expected_for("warm"))
            self.assertEqual(trace_success(samples), 1)
            self.assertIsNone(exporter.proc.poll())
        self.assertEqual(self.listing(),
                         sorted(["good.json.done"] + [name + ".error" for name in bad] + ignored))
        # The link was not followed: renamed itself, its target untouched.
        self.assertEqual(os.readlink(os.path.join(self.spool, "link.json.error")), target)
        self.assertEqual(read_bytes(target), cold)
        target_after = os.stat(target)
        self.assertEqual((target_after.st_ino, target_after.st_mtime_ns),
                         (target_before.st_ino, target_before.st_mtime_ns))
        self.assertEqual(os.listdir(outside), ["real.json"])

    def test_size_limit_on_files_and_on_decompressed_content(self):
        warm = json.loads(read_bytes(go_traces()["warm"]))
        action = next(a for a in warm if a["Mode"] == "build" and not a.get("Cmd"))
        small = json.dumps([{k: action[k] for k in ("ID", "Mode", "Package", "ActionID",
                                                     "TimeStart", "TimeDone", "Cmd")}]).encode()
        self.assertLess(len(small), 1000)
        at_limit = small[:-1] + b" " * (1024 - len(small)) + b"]"
        self.assertEqual(len(at_limit), 1024)
        over_limit = small[:-1] + b" " * (1025 - len(small)) + b"]"
        bomb = small[:-1] + b" " * (200 << 10) + b"]"
        self.assertLess(len(gzip.compress(at_limit)), 1024)
        self.assertLess(len(gzip.compress(over_limit)), 1024)
        self.assertLess(len(gzip.compress(bomb)), 1024)
        one = expect_action_graph(small)
        self.assertEqual(one.count("build", "hit"), 1)

        with self.start("--trace.max-file-bytes=1KiB") as exporter:
            self.drop("at-limit.json", at_limit)
            self.drop("at-limit.json.gz", gzip.compress(at_limit))
            self.drop("over-limit.json", over_limit)
            self.drop("big.json", read_bytes(go_traces()["cold"]))
            self.drop("over-limit.json.gz", gzip.compress(over_limit))
            self.drop("bomb.json.gz", gzip.compress(bomb))
            samples = parse_metrics(exporter.wait_for(files_counted(6), INGEST_TIMEOUT,
                                                      "six files"))
            self.assertEqual(trace_success(samples), 1)
        files = file_counts(samples)
        self.assertEqual(files[("actiongraph", "ok")], 2)
        self.assertEqual(sum(v for (_, result), v in files.items() if result == "error"), 4)
        self.assert_counts(samples, one + one)
        self.assertEqual(self.listing(), [
            "at-limit.json.done", "at-limit.json.gz.done", "big.json.error",
            "bomb.json.gz.error", "over-limit.json.error", "over-limit.json.gz.error"])

class IncompleteFileTest(TraceTest):

    def test_file_still_written_waits_for_close(self):
        data = read_bytes(go_traces()["cold"])
        half = len(data) // 2
        path = os.path.join(self.spool, "growing.json")
        with self.start() as exporter:  # default settle: 5s
            exporter.wait_for(lambda s: trace_success(s) == 1, what="first update")
            with open(path, "wb") as f:
                f.write(data[:half])
                f.flush()
                time.sleep(2.5)
                samples = parse_metrics(exporter.scrape())
                self.assert_files(samples)
                self.assert_nothing_counted(samples)
                self.assertEqual(self.listing(), ["growing.json"])
                f.write(data[half:])
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "the closed file"))
            self.assert_files(samples, actiongraph_ok=1)
            self.assert_counts(samples, expected_for("cold"))
            # Once: a later file is counted, this one not again.
            self.drop_trace("barrier.json", "warm")
            samples = parse_metrics(exporter.wait_for(files_counted(2), INGEST_TIMEOUT,
                                                      "the barrier file"))
        self.assert_files(samples, actiongraph_ok=2)
        self.assert_counts(samples, expected_for("cold") + expected_for("warm"))
        self.assertEqual(self.listing(), ["barrier.json.done", "growing.json.done"])

    def test_file_open_for_writing_past_the_settle_time_waits_for_close(self):
        data = read_bytes(go_traces()["cold"])
        half = len(data) // 2
        path = os.path.join(self.spool, "slow.json")
        with self.start("--trace.settle=1s") as exporter:
            exporter.wait_for(lambda s: trace_success(s) == 1, what="first update")
            with open(path, "wb") as f:
                f.write(data[:half])
                f.flush()
                # Unchanged for more than the settle time, but still open.
                time.sleep(2.5)
                samples = parse_metrics(exporter.scrape())
                self.assert_files(samples)
                self.assert_nothing_counted(samples)
                self.assertEqual(self.listing(), ["slow.json"])
                # Complete JSON, long settled, still open: still waits.
                f.write(data[half:])
                f.flush()
                old = time.time() - 60
                os.utime(f.fileno(), (old, old))
                time.sleep(2.2)
                samples = parse_metrics(exporter.scrape())
                self.assert_files(samples)
                self.assertEqual(self.listing(), ["slow.json"])
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "the closed file"))
        self.assert_files(samples, actiongraph_ok=1)
        self.assert_counts(samples, expected_for("cold"))
        self.assertEqual(self.listing(), ["slow.json.done"])


class SpoolTest(TraceTest):

    def test_on_done_delete_removes_the_file_counted_once(self):
        with self.start("--trace.on-done=delete") as exporter:
            self.drop_trace("warm.json", "warm")
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "the graph"))
            self.assert_files(samples, actiongraph_ok=1)
            self.assertEqual(self.listing(), [])
            self.drop_trace("cold.json", "cold")
            self.drop("bad.json", b"[1]")
            samples = parse_metrics(exporter.wait_for(files_counted(3), INGEST_TIMEOUT,
                                                      "two more files"))
        self.assert_files(samples, actiongraph_ok=2, unknown_error=1)
        self.assert_counts(samples, expected_for("warm") + expected_for("cold"))
        # Bad files are kept, to look at.
        self.assertEqual(self.listing(), ["bad.json.error"])

    def test_missing_spool_fails_the_collector_until_it_exists(self):
        later = os.path.join(self.tmp, "later")
        # A settle time of an hour: only inotify events bring files in.
        with self.start("--trace.settle=1h", spool=[later]) as exporter:
            exporter.wait_for(lambda s: trace_success(s) == 0, what="the collector to fail")
            self.assertEqual(exporter.get("/metrics")[0], 200)
            os.mkdir(later)
            exporter.wait_for(lambda s: trace_success(s) == 1, INGEST_TIMEOUT,
                              "the collector to recover")
            self.drop_trace("warm.json", "warm", spool=later)
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "a file in the new spool"))
            self.assert_files(samples, actiongraph_ok=1)
            self.assert_counts(samples, expected_for("warm"))

            # Deleted and made anew: watched again.
            shutil.rmtree(later)
            exporter.wait_for(lambda s: trace_success(s) == 0, INGEST_TIMEOUT,
                              "the collector to fail again")
            os.mkdir(later)
            exporter.wait_for(lambda s: trace_success(s) == 1, INGEST_TIMEOUT,
                              "the collector to recover again")
            self.drop_trace("cold.json", "cold", spool=later)
            samples = parse_metrics(exporter.wait_for(files_counted(2), INGEST_TIMEOUT,
                                                      "a file in the remade spool"))
        self.assert_files(samples, actiongraph_ok=2)
        self.assert_counts(samples, expected_for("warm") + expected_for("cold"))

    def test_files_dropped_while_down_are_found_by_a_rescan(self):
        # No event will tell of these: the rescan finds them once settled.
        self.drop_trace("offline.json", "warm")
        self.drop_trace("offline.trace.json", "cold_trace")
        with self.start("--trace.settle=1s") as exporter:
            samples = parse_metrics(exporter.wait_for(files_counted(2), INGEST_TIMEOUT,
                                                      "the files already there"))
        self.assert_files(samples, actiongraph_ok=1, chrome_ok=1)
        self.assert_counts(samples, expected_for("warm") + expected_for("cold_trace"),
                           slack=1e-6)
        self.assertEqual(self.listing(), ["offline.json.done", "offline.trace.json.done"])

    def test_several_spools_and_files_closed_in_place(self):
        other = os.path.join(self.tmp, "other-spool")
        os.mkdir(other)
        with self.start("--trace.settle=1h", spool=[self.spool, other]) as exporter:
            self.drop_trace("warm.json", "warm")
            # Written in place: the close-write event brings it in.
            with open(os.path.join(other, "cold.json"), "wb") as f:
                f.write(read_bytes(go_traces()["cold"]))
            samples = parse_metrics(exporter.wait_for(files_counted(2), INGEST_TIMEOUT,
                                                      "a file in each spool"))
        self.assert_files(samples, actiongraph_ok=2)
        self.assert_counts(samples, expected_for("warm") + expected_for("cold"))
        self.assertEqual(self.listing(), ["warm.json.done"])
        self.assertEqual(self.listing(other), ["cold.json.done"])

    def test_file_that_cannot_be_renamed_is_not_counted(self):
        # A directory where the .done file would go makes the rename fail
        # (EISDIR), for root too.
        blocker = os.path.join(self.spool, "warm.json.done")
        os.mkdir(blocker)
        path = os.path.join(self.spool, "warm.json")
        with self.start("--trace.settle=1s") as exporter:
            self.drop_trace("warm.json", "warm")
            samples = parse_metrics(exporter.wait_for(
                lambda s: trace_success(s) == 0, INGEST_TIMEOUT, "the rename to fail"))
            # Not renamed, so not counted: a restart would count it again.
            self.assert_files(samples)
            self.assert_nothing_counted(samples)
            self.assertEqual(self.listing(), ["warm.json", "warm.json.done"])  # and the blocker
            self.assertTrue(os.path.isdir(blocker))
            self.assertIn("cannot rename trace file " + path, exporter.log())
            # Renamable again, and changed (unchanged, it is offered again
            # only a minute later): counted once.
            os.rmdir(blocker)
            os.utime(path)
            samples = parse_metrics(exporter.wait_for(files_counted(1), INGEST_TIMEOUT,
                                                      "the file to be counted"))
        self.assert_files(samples, actiongraph_ok=1)
        self.assert_counts(samples, expected_for("warm"))
        self.assertEqual(self.listing(), ["warm.json.done"])

    def test_promtool_check_metrics_prints_nothing(self):
        with self.start() as exporter:
            self.drop_trace("cold.json", "cold")
            self.drop_trace("warm.json", "warm")
            self.drop_trace("trace.json", "cold_trace")
            self.drop("bad.json", b"nope")
            text = exporter.wait_for(files_counted(4), INGEST_TIMEOUT, "four files")
        samples = parse_metrics(text)
        self.assert_files(samples, actiongraph_ok=2, chrome_ok=1, unknown_error=1)
        for family in ("gocache_trace_files_total", "gocache_trace_actions_total") + HISTOGRAMS:
            self.assertIn(f"# TYPE {family} ", text)
        self.assertEqual(promtool_check(text), (0, ""))


class FlagTest(TraceTest):

    def test_bad_flags_exit_2_naming_the_flag(self):
        cases = {
            ("--trace.on-done=keep",): "--trace.on-done 'keep'",
            ("--trace.max-file-bytes=lots",): "--trace.max-file-bytes 'lots'",
            ("--trace.max-file-bytes=0",): "--trace.max-file-bytes '0'",
            ("--trace.settle=0s",): "--trace.settle '0s'",
            ("--trace.settle=soon",): "--trace.settle 'soon'",
            ("--trace.dir=",): "--trace.dir must not be empty",
        }
        for args, want in cases.items():
            with self.subTest(args=args):
                r = run_exporter(f"--cache.dir={self.empty}", f"--trace.dir={self.spool}", *args)
                self.assertEqual(r.returncode, 2, r.stderr)
                err = r.stderr.decode()
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(want, err)
                self.assertIn("--help", err)
                self.assertEqual(r.stdout, b"")
        self.assertEqual(self.listing(), [])
