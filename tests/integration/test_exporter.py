"""The exporter against a real Go cache built by the real go toolchain,
scraped over HTTP, with every number checked against an independent tool."""

import concurrent.futures
import gzip
import http.client
import json
import os
import re
import shlex
import socket
import subprocess
import time
import urllib.request

from harness import (EXPORTER, Exporter, TempDirTest, cache_dirs, copy_go_cache,
                     families, find_count, free_port, go_binary, go_env, has, parse_metrics, promtool_check,
                     readme_families, run_exporter, shared_go_cache, tool, value)

# Other processes on a shared machine create and delete files between our
# statvfs and theirs: free inodes may differ by this much, free bytes by
# FREE_BYTES_TOLERANCE. Totals must match exactly.
FREE_INODES_TOLERANCE = 2000
FREE_BYTES_TOLERANCE = 256 << 20


class RealCacheTest(TempDirTest):

    def setUp(self):
        super().setUp()
        _, self.env = shared_go_cache()
        self.cache = self.env["GOCACHE"]
        self.mod = self.env["GOMODCACHE"]
        # The read-only promise (nothing in either cache changed size or
        # mtime) is checked by Exporter and run_exporter themselves.

    def start(self, *args):
        return Exporter(f"--cache.dir={self.cache}", f"--modcache.dir={self.mod}", *args)

    def test_numbers_match_independent_tools(self):
        with self.start() as exporter:
            # The build cache's first scan (followed by events after it) and
            # the module cache's (walked) run on threads of their own.
            text = exporter.wait_for(
                lambda s: has("gocache_dir_inodes", kind="mod")(s)
                and has("gocache_dir_inodes", kind="build")(s), what="first scans")
            stat_f = subprocess.run([tool("stat"), "-f", "-c", "%c %d %S %b %f %a", self.cache],
                                    capture_output=True, text=True, check=True).stdout.split()
            df_i = subprocess.run([tool("df"), "--output=ipcent", self.cache],
                                  capture_output=True, text=True, check=True).stdout.split()[-1]
            findmnt = subprocess.run(
                [tool("findmnt"), "-n", "-o", "TARGET,FSTYPE", "--target", self.cache],
                capture_output=True, text=True, check=True).stdout.split()
        samples = parse_metrics(text)
        files, ffree, bsize, blocks, bfree, bavail = (int(x) for x in stat_f)
        labels = dict(path=self.cache, kind="build")

        self.assertEqual(value(samples, "gocache_filesystem_files", **labels), files)
        self.assertAlmostEqual(value(samples, "gocache_filesystem_files_free", **labels), ffree,
                               delta=FREE_INODES_TOLERANCE)
        ratio = value(samples, "gocache_filesystem_inode_usage_ratio", **labels)
        got_files = value(samples, "gocache_filesystem_files", **labels)
        got_free = value(samples, "gocache_filesystem_files_free", **labels)
        self.assertAlmostEqual(ratio, (got_files - got_free) / got_files, places=12)
        # df rounds IUse% up to a whole percent.
        self.assertLessEqual(abs(ratio * 100 - int(df_i.rstrip("%"))), 1.0)
        self.assertEqual(value(samples, "gocache_filesystem_size_bytes", **labels), blocks * bsize)
        self.assertAlmostEqual(value(samples, "gocache_filesystem_free_bytes", **labels),
                               bfree * bsize, delta=FREE_BYTES_TOLERANCE)
        self.assertAlmostEqual(value(samples, "gocache_filesystem_avail_bytes", **labels),
                               bavail * bsize, delta=FREE_BYTES_TOLERANCE)
        self.assertEqual(value(samples, "gocache_filesystem_readonly", **labels), 0)
        self.assertEqual(value(samples, "gocache_filesystem_files", **labels,
                               mountpoint=findmnt[0], fstype=findmnt[1]), files)

        # The cache does not change after the build: the scan equals find.
        self.assertEqual(value(samples, "gocache_dir_inodes", **labels), find_count(self.cache))
        self.assertGreater(find_count(self.cache), 10, "the go build wrote no cache entries")
        self.assertEqual(value(samples, "gocache_dir_inodes", path=self.mod, kind="mod"),
                         find_count(self.mod))
        share = value(samples, "gocache_dir_inode_share_ratio", **labels)
        self.assertAlmostEqual(share, find_count(self.cache) / (got_files - got_free), places=12)

        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="inode"), 1)
        self.assertGreater(
            value(samples, "gocache_collector_last_success_timestamp_seconds", collector="inode"), 0)
        self.assertEqual(value(samples, "gocache_exporter_build_info"), 1)

    def test_promtool_check_metrics_prints_nothing(self):
        with self.start() as exporter:
            text = exporter.wait_for(has("gocache_dir_inodes", kind="build"), what="first scan")
        code, out = promtool_check(text)
        self.assertEqual((code, out), (0, ""))

    def test_once_prints_the_exposition_and_exits_0(self):
        r = run_exporter(f"--cache.dir={self.cache}", f"--modcache.dir={self.mod}", "--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode()
        samples = parse_metrics(text)
        self.assertEqual(value(samples, "gocache_dir_inodes", path=self.cache),
                         find_count(self.cache))
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="inode"), 1)
        self.assertEqual(promtool_check(text), (0, ""))
        self.assertIn(b"level=info", r.stderr)
        # The README's cron line: a healthy run prints nothing to stderr.
        quiet = run_exporter("--once", "--log.level=warn", f"--cache.dir={self.cache}")
        self.assertEqual((quiet.returncode, quiet.stderr), (0, b""))
        self.assertIn(b"gocache_dir_inodes{", quiet.stdout)

    def test_gzip_when_asked(self):
        with self.start() as exporter:
            status, headers, body = exporter.get(headers={"Accept-Encoding": "gzip"})
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("Content-Encoding"), "gzip")
            self.assertIn("gocache_filesystem_files{", gzip.decompress(body).decode())
            status, headers, body = exporter.get()
            self.assertIsNone(headers.get("Content-Encoding"))
            self.assertIn("gocache_filesystem_files{", body.decode())

    def test_landing_page_and_404(self):
        with self.start("--web.telemetry-path=/probe") as exporter:
            status, headers, body = exporter.get("/")
            self.assertEqual(status, 200)
            self.assertIn('href="/probe"', body.decode())
            self.assertEqual(exporter.get("/probe")[0], 200)
            self.assertEqual(exporter.get("/metrics")[0], 404)
            self.assertEqual(exporter.get("/probe/../etc/passwd")[0], 404)
            self.assertEqual(exporter.get("/nothing-here")[0], 404)

    def test_concurrent_scrapes(self):
        with self.start() as exporter:
            def scrape(_):
                return parse_metrics(exporter.scrape())

            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(scrape, range(64), timeout=120))
        self.assertEqual(len(results), 64)
        for samples in results:
            self.assertEqual(value(samples, "gocache_filesystem_files", path=self.cache),
                             value(results[0], "gocache_filesystem_files", path=self.cache))

    def test_readme_lists_every_family(self):
        with self.start() as exporter:
            text = exporter.wait_for(has("gocache_dir_inodes", kind="build"), what="first scan")
        missing = families(text) - readme_families()
        self.assertEqual(missing, set(), "families the README's metric table does not list")


class DiscoveryTest(TempDirTest):

    def test_asks_go_env_when_go_is_on_path(self):
        env = go_env(self.tmp)
        env["PATH"] = os.path.dirname(go_binary()) + ":/usr/bin:/bin"
        want = subprocess.run([go_binary(), "env", "GOCACHE", "GOMODCACHE"], env=env,
                              capture_output=True, text=True, check=True).stdout.split("\n")
        with Exporter(env=env) as exporter:
            log = exporter.log()
        self.assertIn(f"path={want[0]} kind=build", log)
        self.assertIn(f"path={want[1]} kind=mod", log)

    def test_documented_defaults_without_go(self):
        empty = os.path.join(self.tmp, "bin")
        os.mkdir(empty)
        env = {"PATH": empty, "HOME": os.path.join(self.tmp, "home")}
        with Exporter(env=env) as exporter:
            log = exporter.log()
        self.assertIn(f"path={self.tmp}/home/.cache/go-build kind=build", log)
        self.assertIn(f"path={self.tmp}/home/go/pkg/mod kind=mod", log)
        env["XDG_CACHE_HOME"] = os.path.join(self.tmp, "xdg")
        env["GOPATH"] = os.path.join(self.tmp, "gp1") + ":" + os.path.join(self.tmp, "gp2")
        with Exporter(env=env) as exporter:
            log = exporter.log()
        self.assertIn(f"path={self.tmp}/xdg/go-build kind=build", log)
        self.assertIn(f"path={self.tmp}/gp1/pkg/mod kind=mod", log)

    def test_directory_that_appears_later_is_picked_up(self):
        cache = os.path.join(self.tmp, "cache")
        with Exporter(f"--cache.dir={cache}", "--scan.interval=200ms") as exporter:
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="inode"), 1)
            self.assertEqual(value(samples, "gocache_cache_present", path=cache), 0)
            self.assertNotIn("gocache_filesystem_files", {n for n, _ in samples})
            exporter.scrape()
            copy_go_cache(self.tmp)  # a fresh runner's first build, or a cache restore
            exporter.accept_cache_changes("the test puts a cache in place while the exporter runs")
            want = find_count(cache)
            text = exporter.wait_for(
                lambda s: value(s, "gocache_cache_present", path=cache) == 1
                and has("gocache_dir_inodes", path=cache)(s)
                and value(s, "gocache_dir_inodes", path=cache) == want, what="the new cache")
            log = exporter.log()
        samples = parse_metrics(text)
        self.assertEqual(value(samples, "gocache_dir_inodes", path=cache), want)
        for collector in ("inode", "density"):
            self.assertEqual(value(samples, "gocache_scrape_collector_success",
                                   collector=collector), 1)
        # No failure at any point; one line when the exporter finds the
        # directory missing, one when it appears.
        self.assertNotIn("collector failed", log)
        self.assertEqual(log.count("does not exist"), 1, log)
        self.assertEqual(log.count("cache directory appeared"), 1, log)


def first_file(root, suffix):
    """The first (sorted) non-empty file below root whose name ends with suffix."""
    return sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names
                  if n.endswith(suffix) and os.path.getsize(os.path.join(d, n)) > 0)[0]


def touch(path):
    """The mtime one nanosecond later, nothing else."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))


class JsonLogTest(TempDirTest):

    def test_json_log_records_are_json_with_numbers_and_booleans(self):
        port = free_port()
        missing = os.path.join(self.tmp, "cache")
        proc = subprocess.Popen([EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                                 "--log.format=json", f"--cache.dir={missing}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                timeout=5) as r:
                        self.assertEqual(r.status, 200)
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                self.fail("the exporter did not answer")
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)
        records = [json.loads(line) for line in err.decode().splitlines()]
        listening = [r for r in records if r["msg"] == "listening"]
        self.assertEqual(len(listening), 1, records)
        self.assertEqual((listening[0]["ports"], listening[0]["tls"], listening[0]["basic_auth"]),
                         (port, False, False))
        self.assertEqual([r["path"] for r in records if "does not exist" in r["msg"]], [missing])
        self.assertTrue(all(isinstance(r["ts"], str) and r["level"] == "info" for r in records))


class Ipv6Test(TempDirTest):

    def serve(self, address):
        """(process, port) of the exporter listening at address, once it does."""
        proc = subprocess.Popen([EXPORTER, f"--web.listen-address={address}",
                                 f"--cache.dir={self.tmp}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.stop, proc)
        for line in proc.stderr:
            m = re.search(r"msg=listening .*ports=(\d+)", line)
            if m:
                return proc, int(m.group(1))
        self.fail(f"the exporter did not listen on {address}: exit {proc.wait(timeout=10)}")

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stderr.close()

    def get(self, host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def test_serves_ipv6(self):
        for address, host in (("[::1]:0", "::1"), ("[::]:0", "::1")):
            with self.subTest(address=address):
                proc, port = self.serve(address)
                status, text = self.get(host, port)
                self.assertEqual(status, 200)
                self.assertEqual(value(parse_metrics(text), "gocache_exporter_build_info"), 1)
                # An IPv6 listener only: IPv4 clients need an IPv4 address.
                with self.assertRaises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
                proc.terminate()
                self.assertEqual(proc.wait(timeout=10), 0)
                self.stop(proc)
        # A bracketed address that is not IPv6 is a usage error.
        r = run_exporter("--web.listen-address=[127.0.0.1]:9959", "--once")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid IPv6 address", r.stderr.decode())


class ReadOnlyCheckTest(TempDirTest):
    """The read-only promise every other test relies on (Exporter and
    run_exporter compare each cache before and after) has teeth: a change
    made while the exporter runs fails it, and says where."""

    def assert_broken(self, caught, cache, path):
        message = str(caught.exception)
        self.assertIn("the read-only promise broke", message)
        self.assertIn(f"\n{cache}: ", message)
        self.assertIn(f"\n  {os.path.relpath(path, cache)}: ", message)

    def test_a_change_while_the_exporter_runs_fails_the_check(self):
        def shorten(path):  # the size alone: the mtime is put back
            st = os.stat(path)
            os.truncate(path, st.st_size - 1)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

        def add(path):
            with open(path, "w") as f:
                f.write("new\n")

        bare = os.path.join(self.tmp, "bin")  # no go on PATH: the documented defaults
        os.mkdir(bare)
        # (how the caches are given, what changes in which of them)
        cases = [
            ("--cache.dir DIR, an mtime", lambda c, m: (["--cache.dir", c], None),
             lambda c, m: first_file(c, "-a"), touch),
            ("--cache.dir=DIR, a size", lambda c, m: ([f"--cache.dir={c}"], None),
             lambda c, m: first_file(c, "-d"), shorten),
            ("--modcache.dir DIR, a new file",
             lambda c, m: ([f"--cache.dir={c}", "--modcache.dir", m], None),
             lambda c, m: os.path.join(m, "new"), add),
            ("GOCACHE from the environment, a removed file",
             lambda c, m: ([], {"PATH": bare, "HOME": self.tmp, "GOCACHE": c, "GOMODCACHE": m}),
             lambda c, m: first_file(c, "-a"), os.remove),
        ]
        for i, (name, given, where, change) in enumerate(cases):
            with self.subTest(name):
                cache, mod = copy_go_cache(os.path.join(self.tmp, str(i)))
                args, env = given(cache, mod)
                path = where(cache, mod)
                with self.assertRaises(AssertionError) as caught:
                    with Exporter(*args, "--scan.interval=1h", env=env) as exporter:
                        exporter.wait_for(has("gocache_dir_inodes", path=cache), what="first scan")
                        change(path)
                self.assert_broken(caught, cache if path.startswith(cache + os.sep) else mod,
                                   path)

    def test_run_exporter_checks_once_and_the_check_command(self):
        cache, _ = copy_go_cache(self.tmp)
        entry = first_file(cache, "-a")
        # The real exporter, then an mtime change, as if it had made one.
        wrapper = os.path.join(self.tmp, "touching-exporter")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\n{shlex.quote(EXPORTER)} "$@"\ns=$?\n'
                    f'touch {shlex.quote(entry)}\nexit $s\n')
        os.chmod(wrapper, 0o755)
        for args, env in ((["--once", f"--cache.dir={cache}"], None),
                          (["check", "--cache.dir", cache], None),
                          (["check"], dict(os.environ, GOCACHE=cache))):
            with self.subTest(args=args):
                with self.assertRaises(AssertionError) as caught:
                    run_exporter(*args, env=env, binary=wrapper)
                self.assert_broken(caught, cache, entry)

    def test_declared_changes(self):
        cache, _ = copy_go_cache(self.tmp)
        first, second = first_file(cache, "-a"), first_file(cache, "-d")
        with Exporter(f"--cache.dir={cache}", cache_changes="the self-test touches entries"):
            touch(first)
        with Exporter(f"--cache.dir={cache}") as exporter:
            touch(first)
            exporter.accept_cache_changes("the self-test touched an entry")
        # Only what came before is accepted.
        with self.assertRaises(AssertionError) as caught:
            with Exporter(f"--cache.dir={cache}") as exporter:
                touch(first)
                exporter.accept_cache_changes("the self-test touched an entry")
                touch(second)
        self.assert_broken(caught, cache, second)
        self.assertNotIn(os.path.relpath(first, cache), str(caught.exception))
        with self.assertRaises(AssertionError):
            Exporter(f"--cache.dir={cache}", cache_changes="")

    def test_the_caches_a_command_line_names(self):
        self.assertEqual(cache_dirs(["--cache.dir=/c/a", "--modcache.dir", "/c/b",
                                     "--trace.dir=/spool", "--once", "--cache.dir", "/c/a/"]),
                         ["/c/a", "/c/b"])
        self.assertEqual(cache_dirs(["--cache.dir=rel"]), [os.path.abspath("rel")])
        self.assertEqual(cache_dirs(["--modcache.dir=/m"], {"GOCACHE": "/other"}), ["/m"])
        home = {"HOME": "/h"}
        self.assertEqual(cache_dirs([], home), ["/h/.cache/go-build", "/h/go/pkg/mod"])
        self.assertEqual(cache_dirs([], dict(home, XDG_CACHE_HOME="/x", GOPATH="/g1:/g2")),
                         ["/x/go-build", "/g1/pkg/mod"])
        self.assertEqual(cache_dirs([], dict(home, GOCACHE="off", GOMODCACHE="/m")), ["/m"])
        self.assertEqual(cache_dirs(["check"], dict(home, GOCACHE="/c")), ["/c"])
        self.assertEqual(cache_dirs(["trim", "--max-bytes=1"], home), ["/h/.cache/go-build"])
        # Without an environment of the test's, the host's own caches: not the test's.
        self.assertEqual(cache_dirs(["--once"]), [])
