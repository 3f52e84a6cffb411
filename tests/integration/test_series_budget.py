"""The series budget of one host: with every collector on, after a go build,
a go test and a go vet of a real module (with a dependency from the module
cache) whose action graphs are dropped into the trace spool, two stale
targets, one build cache and one module cache, the exporter exposes at most
SERIES_BUDGET series. A thousand runners are then at most 300,000 series in
the Prometheus that scrapes them."""

import collections
import json
import os
import subprocess
import sys
import zipfile

from harness import (Exporter, TempDirTest, go_binary, go_env, has, parse_metrics, promtool_check,
                     value, write_files)

SERIES_BUDGET = 300
TARGETS = ("linux/amd64", "linux/arm64")
WAIT = 120.0  # seconds for the exporter to take in the whole workload

DEP = """package dep

import "strings"

// Shout upper-cases s.
func Shout(s string) string { return strings.ToUpper(s) + "!" }
"""

LIB = """package greet

import (
\t"fmt"

\t"example.com/dep"
)

// Hello greets name.
func Hello(name string) string { return fmt.Sprintf("hello, %s", dep.Shout(name)) }
"""

LIB_TEST = """package greet

import "testing"

func TestHello(t *testing.T) {
\tif got := Hello("cache"); got != "hello, CACHE!" {
\t\tt.Fatalf("Hello = %q", got)
\t}
}
"""

MAIN = """package main

import (
\t"fmt"

\t"example.com/budget/greet"
)

func main() { fmt.Println(greet.Hello("world")) }
"""


def make_proxy(root):
    """A GOPROXY=file:// directory serving example.com/dep v1.0.0."""
    base = os.path.join(root, "example.com", "dep", "@v")
    os.makedirs(base)
    mod = "module example.com/dep\n\ngo 1.19\n"
    with open(os.path.join(base, "list"), "w") as f:
        f.write("v1.0.0\n")
    with open(os.path.join(base, "v1.0.0.info"), "w") as f:
        json.dump({"Version": "v1.0.0", "Time": "2026-01-01T00:00:00Z"}, f)
    with open(os.path.join(base, "v1.0.0.mod"), "w") as f:
        f.write(mod)
    with zipfile.ZipFile(os.path.join(base, "v1.0.0.zip"), "w") as z:
        z.writestr("example.com/dep@v1.0.0/go.mod", mod)
        z.writestr("example.com/dep@v1.0.0/dep.go", DEP)
    return "file://" + root


def series_by_family(text):
    """{family: series} of an exposition: histogram samples count under their family."""
    counts = collections.Counter()
    families = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
        elif line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and name[:-len(suffix)] in families:
                    name = name[:-len(suffix)]
            counts[name] += 1
    return counts


class SeriesBudgetTest(TempDirTest):

    def test_a_realistic_host_stays_within_the_budget(self):
        env = go_env(self.tmp)
        for name in ("HOME", "GOMODCACHE", "GOPATH"):
            os.makedirs(env[name], exist_ok=True)
        module = os.path.join(self.tmp, "module")
        write_files(module, {
            "go.mod": "module example.com/budget\n\ngo 1.19\n\nrequire example.com/dep v1.0.0\n",
            "main.go": MAIN,
            "greet/greet.go": LIB,
            "greet/greet_test.go": LIB_TEST,
        })
        spool = os.path.join(self.tmp, "spool")
        os.mkdir(spool)
        fetch_env = dict(env, GOPROXY=make_proxy(os.path.join(self.tmp, "proxy")), GOSUMDB="off",
                         GOFLAGS="-mod=mod")
        for i, args in enumerate((["build", "-o", os.path.join(self.tmp, "app"), "."],
                                  ["test", "./..."], ["vet", "./..."])):
            # Written beside the spool, moved in whole.
            graph = os.path.join(self.tmp, f"{i}.json")
            r = subprocess.run([go_binary(), args[0], f"-debug-actiongraph={graph}", *args[1:]],
                               cwd=module, env=fetch_env, capture_output=True, text=True,
                               timeout=600)
            self.assertEqual(r.returncode, 0, f"go {' '.join(args)}: {r.stderr}")
            os.rename(graph, os.path.join(spool, f"{i}.json"))
        self.assertTrue(os.path.isdir(os.path.join(env["GOMODCACHE"], "example.com",
                                                   "dep@v1.0.0")))

        args = [f"--cache.dir={env['GOCACHE']}", f"--modcache.dir={env['GOMODCACHE']}",
                f"--trace.dir={spool}", f"--stale.module={module}", f"--stale.go={go_binary()}",
                *(f"--stale.target={t}" for t in TARGETS),
                "--collector.cacheprog", f"--cacheprog.socket={self.tmp}/cacheprog.sock",
                "--trim.auto-bytes=100GiB"]

        def settled(samples):
            return (samples.get(("gocache_trace_files_total",
                                 (("format", "actiongraph"), ("result", "ok")))) == 3
                    and all(samples.get(("gocache_stale_list_success",
                                         (("goarch", t.split("/")[1]), ("goos", t.split("/")[0]),
                                          ("module", module)))) == 1 for t in TARGETS)
                    and has("gocache_scan_duration_seconds", path=env["GOCACHE"])(samples)
                    and has("gocache_dir_inodes", path=env["GOMODCACHE"])(samples))

        with Exporter(*args, env=env) as exporter:
            exporter.wait_for(settled, timeout=WAIT, what="the workload to be taken in")
            text = exporter.scrape()
        self.assertEqual(promtool_check(text), (0, ""))
        samples = parse_metrics(text)

        # Every collector is on and succeeded.
        collectors = {dict(ls)["collector"]: v for (n, ls), v in samples.items()
                      if n == "gocache_scrape_collector_success"}
        self.assertEqual(collectors, {c: 1 for c in ("inode", "density", "stale", "trace",
                                                     "cacheprog", "trim")})
        # The workload is what it should be: every cache mode was seen.
        for mode in ("build", "link", "vet", "test run", "other"):
            self.assertGreater(value(samples, "gocache_trace_actions_total", mode=mode,
                                     result="hit") + value(samples, "gocache_trace_actions_total",
                                                           mode=mode, result="miss"), 0, mode)
        self.assertGreater(value(samples, "gocache_trace_actions_total", mode="build",
                                 result="miss"), 50)
        self.assertGreater(value(samples, "gocache_entry_size_bytes_count", path=env["GOCACHE"],
                                 type="output"), 50)

        by_family = series_by_family(text)
        total = sum(by_family.values())
        self.assertEqual(total, len(samples))
        table = "\n".join(f"| {name} | {n} |" for name, n in
                          sorted(by_family.items(), key=lambda kv: (-kv[1], kv[0])))
        print(f"\nseries by family ({total} in all):\n{table}", file=sys.stderr)
        self.assertLessEqual(total, SERIES_BUDGET, f"over the budget:\n{table}")
