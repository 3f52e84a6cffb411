"""The stale collector: `go list`'s Stale and StaleReason for each module and
target, computed in the background without touching the cache. Every count
is checked against the real go command run directly on a copy of the same
cache; failures (no go, no module, a hung or babbling go) fail only the
stale series, quickly, and leave no process behind."""

import collections
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

from harness import (EXPORTER, Exporter, TempDirTest, go_binary, go_env, has, parse_metrics, run_exporter,
                     tool, tree_state, value, write_files)

LIST_FORMAT = "{{.ImportPath}}\t{{.Stale}}\t{{.StaleReason}}"
REASONS = ("stale dependency", "build ID mismatch", "not installed but available in build cache",
           "missing or invalid package binary", "build -a flag in use", "build -o flag in use",
           "binary-only packages are no longer supported")
# The next build is served from the cache: not a predicted rebuild.
CACHED = "not installed but available in build cache"
FAST_SCRAPE = 2.0
INTERVAL = "--stale.interval=500ms"
DAY = 86400

LEAF = """package leaf

import (
\t"fmt"
\t"strings"
)

// Shout upper-cases s.
func Shout(s string) string { return fmt.Sprintf("%s!", strings.ToUpper(s)) }
"""

MID = """package mid

import "example.com/m/internal/leaf"

// Greet greets name loudly.
func Greet(name string) string { return "hello, " + leaf.Shout(name) }
"""

APP = """package main

import (
\t"fmt"

\t"example.com/m/internal/mid"
)

func main() { fmt.Println(mid.Greet("cache")) }
"""


def normalize(reason):
    """The exporter's reason label for a StaleReason: the text before the first ':'."""
    head = reason.split(":", 1)[0].strip()
    return head if head in REASONS else "other"


_host = None


def host_target():
    """(GOOS, GOARCH) of this machine, as the go command says."""
    global _host
    if _host is None:
        env = {k: v for k, v in os.environ.items() if k not in ("GOOS", "GOARCH", "GOFLAGS")}
        out = subprocess.run([go_binary(), "env", "GOOS", "GOARCH"], env=env, capture_output=True,
                             text=True, check=True, timeout=120).stdout.split()
        _host = (out[0], out[1])
    return _host


def other_target():
    return ("linux", "amd64") if host_target() == ("linux", "arm64") else ("linux", "arm64")


def make_module(root):
    """example.com/m: cmd/app -> internal/mid -> internal/leaf -> fmt, strings."""
    write_files(root, {
        "go.mod": "module example.com/m\n\ngo 1.19\n",
        "internal/leaf/leaf.go": LEAF,
        "internal/mid/mid.go": MID,
        "cmd/app/main.go": APP,
    })
    return root


def init_cache(cache):
    """A build cache as the go command leaves it when it first opens one and
    has built nothing yet: its 256 shard directories, all empty."""
    os.makedirs(cache, exist_ok=True)
    for shard in range(256):
        os.makedirs(os.path.join(cache, f"{shard:02x}"), exist_ok=True)
    return cache


def stale_env(tmp):
    """go_env(tmp) with its directories made: the exporter and every go
    command of a test run with it."""
    env = go_env(tmp)
    for name in ("HOME", "GOMODCACHE", "GOPATH"):
        os.makedirs(env[name], exist_ok=True)
    return env


def list_env(env, cache, goos, goarch, mod="readonly"):
    """The environment the exporter runs go list with."""
    return dict(env, GOFLAGS=f"-mod={mod}", GOPROXY="off", GOTOOLCHAIN="local", GOOS=goos,
                GOARCH=goarch, GOCACHE=cache)


_copies = collections.Counter()


def direct_list(tmp, module, env, cache, goos, goarch, mod="readonly", check=True):
    """The exporter's go list, run directly on a copy of the cache (running it
    on the cache itself would refresh mtimes and add entries). Returns
    (packages listed, {normalized reason: stale packages}, raw lines)."""
    _copies[tmp] += 1
    copy = os.path.join(tmp, f"direct-cache-{_copies[tmp]}")
    shutil.copytree(cache, copy, copy_function=shutil.copy2, symlinks=True)
    try:
        r = subprocess.run([go_binary(), "list", "-e", "-deps", "-f", LIST_FORMAT, "./..."],
                           cwd=module, env=list_env(env, copy, goos, goarch, mod),
                           capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    if check and r.returncode != 0:
        raise AssertionError(f"go list failed ({r.returncode}): {r.stderr}")
    lines = [line for line in r.stdout.split("\n") if line]
    stale = collections.Counter()
    for line in lines:
        fields = line.split("\t", 2)
        if len(fields) != 3 or fields[1] not in ("true", "false"):
            raise AssertionError(f"go list printed {line!r}")
        if fields[1] == "true":
            stale[normalize(fields[2])] += 1
    return len(lines), dict(stale), lines


def sample(samples, name, **labels):
    """The value of the one sample of name with these labels, or None."""
    found = [v for (n, ls), v in samples.items()
             if n == name and all((k, str(val)) in ls for k, val in labels.items())]
    if len(found) > 1:
        raise AssertionError(f"more than one {name}{labels}")
    return found[0] if found else None


def stale_counts(samples, module, goos, goarch):
    """{reason: count} of gocache_stale_packages for one module and target,
    zero counts left out."""
    counts = {}
    for (name, ls), v in samples.items():
        labels = dict(ls)
        if (name == "gocache_stale_packages" and labels.get("module") == module
                and labels.get("goos") == goos and labels.get("goarch") == goarch):
            if set(labels) != {"module", "goos", "goarch", "reason"}:
                raise AssertionError(f"gocache_stale_packages labels {sorted(labels)}")
            if labels["reason"] in counts:
                raise AssertionError(f"two series for reason {labels['reason']!r}")
            if labels["reason"] not in REASONS + ("other",):
                raise AssertionError(f"reason outside the bounded set: {labels['reason']!r}")
            counts[labels["reason"]] = v
    return {r: c for r, c in counts.items() if c != 0}


def predicted_rebuilds(samples, module, goos, goarch):
    return sum(c for r, c in stale_counts(samples, module, goos, goarch).items() if r != CACHED)


def list_success(module, goos, goarch, want=None):
    """A wait_for predicate: the module/target's list has completed (with
    gocache_stale_list_success == want, when want is given)."""
    def predicate(samples):
        got = sample(samples, "gocache_stale_list_success", module=module, goos=goos,
                     goarch=goarch)
        return got is not None and (want is None or got == want)
    return predicate


def targets_listed(samples, module):
    return {(dict(ls)["goos"], dict(ls)["goarch"]) for (n, ls), _ in samples.items()
            if n == "gocache_stale_list_success" and dict(ls).get("module") == module}


def age_tree(root, seconds):
    """Sets every file's and directory's mtime (and atime) `seconds` back."""
    when = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
    os.utime(root, (when, when))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class StaleTest(TempDirTest):
    """Shared set-up: a module, a cache and the environment of both."""

    def setUp(self):
        super().setUp()
        self.env = stale_env(self.tmp)
        self.cache = self.env["GOCACHE"]
        self.module = make_module(os.path.join(self.tmp, "m"))
        self.goos, self.goarch = host_target()
        self.target = f"{self.goos}/{self.goarch}"

    def start(self, *args, env=None, binary=None, go=True, cache_changes=None):
        base = [f"--cache.dir={self.cache}", f"--modcache.dir={self.env['GOMODCACHE']}",
                "--scan.interval=1h"]
        if go:
            base.append(f"--stale.go={go_binary()}")
        return Exporter(*base, *args, env=env or self.env, binary=binary,
                        cache_changes=cache_changes)

    def build(self, module=None):
        subprocess.run([go_binary(), "build", "./..."], cwd=module or self.module,
                       env=list_env(self.env, self.cache, self.goos, self.goarch), check=True,
                       timeout=600, capture_output=True)

    def direct(self, module=None, goos=None, goarch=None, **kw):
        return direct_list(self.tmp, module or self.module, self.env, self.cache,
                           goos or self.goos, goarch or self.goarch, **kw)

    def assert_matches_go_list(self, samples, module=None, goos=None, goarch=None, **kw):
        """The exporter's numbers for one module/target equal go list's, run directly."""
        module, goos, goarch = module or self.module, goos or self.goos, goarch or self.goarch
        packages, stale, lines = self.direct(module, goos, goarch, **kw)
        labels = dict(module=module, goos=goos, goarch=goarch)
        self.assertEqual(value(samples, "gocache_stale_list_success", **labels), 1)
        self.assertEqual(value(samples, "gocache_packages", **labels), packages, "\n".join(lines))
        self.assertEqual(stale_counts(samples, module, goos, goarch), stale, "\n".join(lines))
        duration = value(samples, "gocache_stale_list_duration_seconds", **labels)
        self.assertGreater(duration, 0)
        self.assertLess(duration, 300)
        return packages, stale, lines


class StaleCountsTest(StaleTest):

    def test_counts_equal_go_list_before_build_after_build_and_after_edit(self):
        init_cache(self.cache)
        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        INTERVAL) as exporter:
            # Before any build: everything is stale, for the reasons go list gives.
            samples = parse_metrics(exporter.wait_for(
                list_success(self.module, self.goos, self.goarch), what="the first list"))
            packages, stale, lines = self.assert_matches_go_list(samples)
            self.assertGreater(packages, 20, "the standard library dependencies are listed")
            self.assertGreater(sum(c for r, c in stale.items() if r != CACHED), 0, lines)
            self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="stale"),
                             1)
            self.assertGreater(value(samples, "gocache_collector_last_success_timestamp_seconds",
                                     collector="stale"), 0)

            # After a build, nothing needs rebuilding: at most cmd/app is "not
            # installed but available in build cache".
            self.build()
            exporter.accept_cache_changes("the test builds into the cache")
            samples = parse_metrics(exporter.wait_for(
                lambda s: list_success(self.module, self.goos, self.goarch, 1)(s)
                and predicted_rebuilds(s, self.module, self.goos, self.goarch) == 0,
                what="a list after the build"))
            packages_after, stale, lines = self.assert_matches_go_list(samples)
            self.assertEqual(packages_after, packages)
            self.assertEqual(set(stale) - {CACHED}, set(), lines)

            # The leaf changes: it is stale, and so are its two dependents.
            with open(os.path.join(self.module, "internal", "leaf", "leaf.go"), "a") as f:
                f.write("\n// Whisper lower-cases s.\n"
                        "func Whisper(s string) string { return strings.ToLower(s) }\n")
            samples = parse_metrics(exporter.wait_for(
                lambda s: stale_counts(s, self.module, self.goos, self.goarch).get(
                    "stale dependency", 0) >= 2, what="a list after the edit"))
            _, stale, lines = self.assert_matches_go_list(samples)
            self.assertGreaterEqual(stale.get("stale dependency", 0), 2)
            by_path = {line.split("\t")[0]: line.split("\t", 2)[1:] for line in lines}
            self.assertEqual(by_path["example.com/m/internal/leaf"][0], "true", lines)
            for dependent in ("example.com/m/internal/mid", "example.com/m/cmd/app"):
                self.assertTrue(by_path[dependent][1].startswith("stale dependency"), lines)
            self.assertEqual(sum(stale.values()), 3, lines)

    def test_second_target_has_its_own_series(self):
        init_cache(self.cache)
        self.build()
        goos2, goarch2 = other_target()
        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        f"--stale.target={goos2}/{goarch2}", INTERVAL) as exporter:
            samples = parse_metrics(exporter.wait_for(
                lambda s: list_success(self.module, self.goos, self.goarch)(s)
                and list_success(self.module, goos2, goarch2)(s), what="both targets listed"))
        self.assertEqual(targets_listed(samples, self.module),
                         {(self.goos, self.goarch), (goos2, goarch2)})
        _, host_stale, _ = self.assert_matches_go_list(samples)
        self.assertEqual(set(host_stale) - {CACHED}, set())
        # Nothing was built for the other target: all of it is to be built.
        packages, stale, lines = self.assert_matches_go_list(samples, goos=goos2, goarch=goarch2)
        self.assertGreater(sum(c for r, c in stale.items() if r != CACHED), 0, lines)
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="stale"), 1)

    def test_defaults_go_on_path_and_the_host_target(self):
        init_cache(self.cache)
        env = dict(self.env, PATH=os.path.dirname(go_binary()) + ":/usr/bin:/bin")
        with self.start(f"--stale.module={self.module}", env=env, go=False) as exporter:
            samples = parse_metrics(exporter.wait_for(has("gocache_stale_list_success"),
                                                      what="the first list"))
        self.assertEqual(targets_listed(samples, self.module), {(self.goos, self.goarch)})
        self.assert_matches_go_list(samples)

    def test_modules_are_listed_each_with_its_label(self):
        init_cache(self.cache)
        other = os.path.join(self.tmp, "other")
        write_files(other, {
            "go.mod": "module example.com/other\n\ngo 1.19\n",
            "one.go": "package other\n\nimport \"sort\"\n\n"
                      "// Sorted sorts xs.\nfunc Sorted(xs []int) []int { sort.Ints(xs); return xs }\n",
        })
        with self.start(f"--stale.module={self.module}", f"--stale.module={other}",
                        f"--stale.target={self.target}", INTERVAL) as exporter:
            samples = parse_metrics(exporter.wait_for(
                lambda s: list_success(self.module, self.goos, self.goarch)(s)
                and list_success(other, self.goos, self.goarch)(s), what="both modules listed"))
        self.assert_matches_go_list(samples)
        self.assert_matches_go_list(samples, module=other)
        self.assertNotEqual(value(samples, "gocache_packages", module=other),
                            value(samples, "gocache_packages", module=self.module))

    def test_vendor_directory_means_mod_vendor(self):
        init_cache(self.cache)
        vendored = os.path.join(self.tmp, "v")
        write_files(vendored, {
            "go.mod": "module example.com/v\n\ngo 1.19\n\nrequire example.com/dep v1.0.0\n",
            "vendor/modules.txt": "# example.com/dep v1.0.0\n## explicit; go 1.19\nexample.com/dep\n",
            # hash/crc32 is only reachable through the vendored package.
            "vendor/example.com/dep/dep.go": "package dep\n\nimport \"hash/crc32\"\n\n"
            "// Sum is the IEEE CRC-32 of b.\nfunc Sum(b []byte) uint32 { return crc32.ChecksumIEEE(b) }\n",
            "cmd/tool/main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/dep\"\n)\n\n"
            "func main() { fmt.Println(dep.Sum(nil)) }\n",
        })
        vendor_count = self.direct(vendored, mod="vendor")[0]
        readonly_count = self.direct(vendored, mod="readonly", check=False)[0]
        self.assertNotEqual(vendor_count, readonly_count, "the test cannot tell the modes apart")
        with self.start(f"--stale.module={vendored}", f"--stale.target={self.target}",
                        INTERVAL) as exporter:
            samples = parse_metrics(exporter.wait_for(
                list_success(vendored, self.goos, self.goarch), what="the first list"))
        packages, _, _ = self.assert_matches_go_list(samples, module=vendored, mod="vendor")
        self.assertEqual(packages, vendor_count)

    def test_once_includes_the_stale_metrics(self):
        init_cache(self.cache)
        r = run_exporter(f"--cache.dir={self.cache}", f"--modcache.dir={self.env['GOMODCACHE']}",
                         f"--stale.module={self.module}", f"--stale.target={self.target}",
                         f"--stale.go={go_binary()}", "--once", env=self.env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_matches_go_list(parse_metrics(r.stdout.decode()))

    def test_no_module_no_stale_series(self):
        init_cache(self.cache)
        with self.start() as exporter:
            exporter.wait_for(has("gocache_dir_inodes", path=self.cache), what="first scan")
            samples = parse_metrics(exporter.scrape())
        names = {n for n, _ in samples}
        for name in ("gocache_packages", "gocache_stale_packages", "gocache_stale_list_success",
                     "gocache_stale_list_duration_seconds"):
            self.assertNotIn(name, names)


class NonPerturbationTest(StaleTest):
    """The exporter never changes the cache, not even an mtime: the go
    command's trim must see the cache as the builds used it. (Exporter
    checks the cache for every test; these check the module as well.)"""

    def prepare(self):
        """A cache the module was built into, every mtime 2 days old, so that
        any read by a go command outside isolation would refresh some."""
        init_cache(self.cache)
        self.build()
        with open(os.path.join(self.module, "go.sum"), "wb"):
            pass
        age_tree(self.cache, 2 * DAY)
        self.module_before = tree_state(self.module)
        self.go_mod = read_bytes(os.path.join(self.module, "go.mod"))
        self.go_sum = read_bytes(os.path.join(self.module, "go.sum"))

    def assert_unchanged(self):
        """The module is as it was (the cache is Exporter's check)."""
        self.assertEqual(self.module_before, tree_state(self.module), "the module changed")
        self.assertEqual(read_bytes(os.path.join(self.module, "go.mod")), self.go_mod)
        self.assertEqual(read_bytes(os.path.join(self.module, "go.sum")), self.go_sum)

    def wait_for_lists(self, exporter, count):
        """Scrapes until `count` successful updates of the stale collector
        were seen; returns the samples of the last scrape."""
        seen = set()

        def predicate(samples):
            if sample(samples, "gocache_stale_list_success", module=self.module) == 1:
                stamp = sample(samples, "gocache_collector_last_success_timestamp_seconds",
                               collector="stale")
                if stamp is not None:
                    seen.add(stamp)
            return len(seen) >= count

        return parse_metrics(exporter.wait_for(predicate, timeout=60,
                                               what=f"{count} completed lists"))

    def test_lists_change_no_mtime_in_the_cache_or_the_module(self):
        self.prepare()
        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        INTERVAL) as exporter:
            samples = self.wait_for_lists(exporter, 3)
        self.assert_unchanged()
        self.assertEqual(value(samples, "gocache_stale_list_success", module=self.module), 1)
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="stale"), 1)
        # The list read the real cache: it saw the build.
        self.assertEqual(predicted_rebuilds(samples, self.module, self.goos, self.goarch), 0)
        self.assert_matches_go_list(samples)
        # The check has teeth: go list run directly on a copy refreshes mtimes.
        copy = os.path.join(self.tmp, "copy")
        shutil.copytree(self.cache, copy, copy_function=shutil.copy2)
        aged = tree_state(copy)
        subprocess.run([go_binary(), "list", "-e", "-deps", "-f", LIST_FORMAT, "./..."],
                       cwd=self.module, env=list_env(self.env, copy, self.goos, self.goarch),
                       check=True, capture_output=True, timeout=300)
        self.assertNotEqual(aged, tree_state(copy))

    def test_cache_without_shard_directories(self):
        # A brand-new cache directory, and one just emptied by `go clean
        # -cache`: the go command would create the shard directories; the
        # exporter may not, and must still list.
        def empty(cache):
            os.makedirs(cache)

        def cleaned(cache):
            init_cache(cache)
            self.build()
            subprocess.run([go_binary(), "clean", "-cache"], cwd=self.module,
                           env=list_env(self.env, cache, self.goos, self.goarch), check=True,
                           timeout=300, capture_output=True)

        for name, make in (("empty", empty), ("go clean -cache", cleaned)):
            with self.subTest(cache=name):
                self.cache = os.path.join(self.tmp, name.replace(" ", "_"))
                make(self.cache)
                self.assertFalse(os.path.exists(os.path.join(self.cache, "00")))
                # Exporter checks that the cache is left as it is: no shard made.
                with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                                INTERVAL) as exporter:
                    samples = parse_metrics(exporter.wait_for(
                        list_success(self.module, self.goos, self.goarch), what="the first list"))
                    log = exporter.log()
                self.assertEqual(value(samples, "gocache_stale_list_success", module=self.module),
                                 1, log)
                self.assert_matches_go_list(samples)

    def test_without_isolation_it_refuses_unless_allowed(self):
        # In a user namespace that may create no user or mount namespace,
        # the exporter cannot isolate go list: it reports failure and leaves
        # the cache alone, unless --stale.allow-mtime-refresh.
        self.prepare()
        restricted = [tool("unshare"), "--user", "--map-root-user", "--", "/bin/sh", "-c",
                      "echo 0 >/proc/sys/user/max_user_namespaces && "
                      "echo 0 >/proc/sys/user/max_mnt_namespaces && exec \"$@\"", "sh"]
        probe = subprocess.run(restricted + ["true"], capture_output=True, timeout=60)
        self.assertEqual(probe.returncode, 0, f"no user namespace here: {probe.stderr!r}")
        probe = subprocess.run(restricted + [tool("unshare"), "-m", "true"],
                               capture_output=True, timeout=60)
        self.assertNotEqual(probe.returncode, 0, "the restricted namespace allows mount namespaces")
        wrapper = os.path.join(self.tmp, "restricted-exporter")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in restricted)
                    + f" {shlex.quote(EXPORTER)} \"$@\"\n")
        os.chmod(wrapper, 0o755)

        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        INTERVAL, binary=wrapper) as exporter:
            samples = parse_metrics(exporter.wait_for(
                list_success(self.module, self.goos, self.goarch), what="the first list"))
            first = value(samples, "gocache_scrape_collector_duration_seconds", collector="stale")
            # A few more attempts, none of which may touch the cache.
            exporter.wait_for(
                lambda s: sample(s, "gocache_scrape_collector_duration_seconds",
                                 collector="stale") != first, what="a second attempt")
            time.sleep(1.5)
            samples = parse_metrics(exporter.scrape())
            log = exporter.log()
        self.assert_unchanged()
        self.assertEqual(value(samples, "gocache_stale_list_success", module=self.module), 0)
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="stale"), 0)
        self.assertTrue(warnings(log, "stale", r"namespace|isolat|mtime"), log)

        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        INTERVAL, "--stale.allow-mtime-refresh", binary=wrapper,
                        cache_changes="--stale.allow-mtime-refresh: go list runs on the cache "
                        "itself and refreshes the mtimes of what it reads") as exporter:
            samples = parse_metrics(exporter.wait_for(
                list_success(self.module, self.goos, self.goarch), what="the first list"))
            log = exporter.log()
        self.assertEqual(value(samples, "gocache_stale_list_success", module=self.module), 1, log)
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="stale"), 1)
        self.assert_matches_go_list(samples)


def warnings(log, mention, cause):
    """Log lines at warn or error level that mention `mention` and match the
    regular expression `cause` (case-insensitive)."""
    return [line for line in log.splitlines()
            if re.search(r"level=(warn|error)", line) and mention in line
            and re.search(cause, line, re.I)]


def matching_processes(pattern, exclude=()):
    r = subprocess.run([tool("pgrep"), "-f", pattern], capture_output=True, text=True, timeout=30)
    return [int(p) for p in r.stdout.split() if int(p) not in exclude]


def kill_matching(pattern):
    """Cleanup after a failed test: nothing it started may outlive it."""
    for pid in matching_processes(pattern):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def zombie_children(pid):
    zombies = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = f.read().split()
        except FileNotFoundError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if state == "Z":
                zombies.append(int(child))
    return zombies


class StaleFailureTest(StaleTest):
    """Each failure: list success 0, collector success 0, a log line naming
    the cause, and scrapes that stay fast."""

    def setUp(self):
        super().setUp()
        init_cache(self.cache)

    def assert_failed(self, exporter, module, mention, cause):
        samples = parse_metrics(exporter.wait_for(
            list_success(module, self.goos, self.goarch), what="the failed list"))
        self.assertEqual(value(samples, "gocache_stale_list_success", module=module,
                               goos=self.goos, goarch=self.goarch), 0, exporter.log())
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="stale"), 0)
        started = time.monotonic()
        samples = parse_metrics(exporter.scrape())
        self.assertLess(time.monotonic() - started, FAST_SCRAPE)
        self.assertEqual(value(samples, "gocache_stale_list_success", module=module), 0)
        # The other collectors are not affected.
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="inode"), 1)
        log = exporter.log()
        self.assertTrue(warnings(log, mention, cause), f"no warning naming {mention}:\n{log}")
        return samples

    def fake_go(self, name, script):
        """A shell script standing in for the go command, in a directory of its own."""
        directory = os.path.join(self.tmp, name)
        os.makedirs(directory)
        # A sleep whose command line names this directory, so pgrep finds it.
        os.symlink(tool("sleep"), os.path.join(directory, "sleeper"))
        path = os.path.join(directory, "go")
        self.addCleanup(kill_matching, directory + "/")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + script.replace("SLEEPER", os.path.join(directory, "sleeper")))
        os.chmod(path, 0o755)
        return directory, path

    def test_go_binary_missing(self):
        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        INTERVAL, "--stale.go=/nonexistent/go", go=False) as exporter:
            self.assert_failed(exporter, self.module, "/nonexistent/go",
                               r"no such file|not found|does not exist|cannot|not executable")

    def test_module_directory_missing(self):
        missing = os.path.join(self.tmp, "no-such-module")
        with self.start(f"--stale.module={missing}", f"--stale.module={self.module}",
                        f"--stale.target={self.target}", INTERVAL) as exporter:
            samples = self.assert_failed(exporter, missing, missing,
                                         r"no such file|not found|does not exist|cannot")
            samples = parse_metrics(exporter.wait_for(
                list_success(self.module, self.goos, self.goarch), what="the good module"))
        # The good module next to it is listed as usual.
        self.assertEqual(value(samples, "gocache_stale_list_success", module=self.module), 1)
        self.assertFalse(os.path.exists(missing))

    def assert_running_and_scrapes_fast(self, exporter, pattern, mine):
        deadline = time.monotonic() + 10
        while not matching_processes(pattern, mine) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(matching_processes(pattern, mine), "the fake go never ran")
        started = time.monotonic()
        exporter.scrape()
        self.assertLess(time.monotonic() - started, FAST_SCRAPE)

    def hang(self, script):
        directory, go = self.fake_go("hang", script)
        pattern = directory + "/"
        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        "--stale.interval=1h", "--stale.timeout=1s", f"--stale.go={go}",
                        go=False) as exporter:
            mine = (exporter.proc.pid,)
            # The fake go runs, and a scrape meanwhile does not wait for it.
            self.assert_running_and_scrapes_fast(exporter, pattern, mine)

            self.assert_failed(exporter, self.module, "stale", r"time[sd]? ?out|timeout|deadline")
            # Killed, process group and all, and reaped.
            deadline = time.monotonic() + 20
            while ((matching_processes(pattern, mine) or zombie_children(exporter.proc.pid))
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            left = subprocess.run([tool("ps"), "-o", "pid,pgid,stat,args", "-p",
                                   ",".join(map(str, matching_processes(pattern, mine))) or "1"],
                                  capture_output=True, text=True, timeout=30).stdout
            self.assertEqual(matching_processes(pattern, mine), [], left)
            self.assertEqual(zombie_children(exporter.proc.pid), [])
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(value(samples, "gocache_stale_list_success", module=self.module), 0)
            self.assertLess(value(samples, "gocache_stale_list_duration_seconds",
                                  module=self.module), 20)

    def test_hung_go_is_killed_after_the_timeout(self):
        # A background child as well: the whole process group must go.
        self.hang("SLEEPER 300 &\nSLEEPER 300\n")

    def test_hung_go_ignoring_sigterm_is_killed(self):
        # SIGTERM is ignored by the script and, inherited, by its children: SIGKILL must follow.
        self.hang("trap '' TERM\nSLEEPER 301 &\nSLEEPER 301\n")

    def test_stopping_during_a_hung_list_leaves_nothing_behind(self):
        directory, go = self.fake_go("hang", "SLEEPER 302 &\nSLEEPER 302\n")
        pattern = directory + "/"
        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        "--stale.timeout=5m", f"--stale.go={go}", go=False) as exporter:
            mine = (exporter.proc.pid,)
            self.assert_running_and_scrapes_fast(exporter, pattern, mine)
        # The exporter stopped on SIGTERM (Exporter.__exit__ checks it), and took its go along.
        deadline = time.monotonic() + 10
        while matching_processes(pattern) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(matching_processes(pattern), [])

    def test_garbage_output(self):
        garbage = os.path.join(self.tmp, "garbage.bin")
        with open(garbage, "wb") as f:
            f.write(b"this is not go list output\nno tabs here either\n")
            f.write(bytes(range(256)) * 16)
            f.write(b"\nexample.com/m\tmaybe\tsomething\n\t\t\n" + b"x" * 10000 + b"\n")
        _, go = self.fake_go("garbage", f"cat '{garbage}'\nexit 0\n")
        with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                        INTERVAL, f"--stale.go={go}", go=False) as exporter:
            self.assert_failed(exporter, self.module, "stale",
                               r"pars|unexpected|malformed|invalid|unrecogni|format|garbage|output")
            # It keeps serving, list after list.
            time.sleep(1.5)
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(value(samples, "gocache_stale_list_success", module=self.module), 0)
            self.assertIsNone(exporter.proc.poll())


class StaleFlagTest(TempDirTest):

    def test_flag_errors_exit_2_naming_the_flag(self):
        module = self.tmp
        cases = {
            ("--stale.target=linux",): "--stale.target",
            ("--stale.target=linux/",): "--stale.target",
            ("--stale.target=/amd64",): "--stale.target",
            ("--stale.interval=bogus",): "--stale.interval",
            ("--stale.timeout=bogus",): "--stale.timeout",
        }
        for args, want in cases.items():
            with self.subTest(args=args):
                r = run_exporter(f"--stale.module={module}", *args)
                self.assertEqual(r.returncode, 2, r.stderr)
                err = r.stderr.decode()
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(want, err)
                self.assertIn("--help", err)
                self.assertEqual(r.stdout, b"")

    def test_help_lists_the_flags(self):
        r = run_exporter("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--stale.module", "--stale.target", "--stale.go", "--stale.interval",
                     "--stale.timeout", "--stale.allow-mtime-refresh", "--collector.stale",
                     "--no-collector.stale"):
            self.assertIn(flag, r.stdout.decode())
