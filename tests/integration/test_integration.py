"""The exporter against a real Go cache built by the real go toolchain,
scraped over HTTP, with every number checked against an independent tool."""

import concurrent.futures
import gzip
import os
import re
import subprocess
import time

from harness import (SOURCE_DIR, Exporter, TempDirTest, copy_go_cache, families, find_count,
                     go_binary, go_env, has, parse_metrics, promtool_check, run_exporter,
                     shared_go_cache, tool, tree_state, value)

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
        self.before = {p: tree_state(p) for p in (self.cache, self.mod)}

    def tearDown(self):
        # The read-only promise: nothing in a cache changed size or mtime.
        for path, state in self.before.items():
            self.assertEqual(state, tree_state(path), f"exporter changed {path}")

    def start(self, *args):
        return Exporter(f"--cache.dir={self.cache}", f"--modcache.dir={self.mod}", *args)

    def test_numbers_match_independent_tools(self):
        with self.start() as exporter:
            text = exporter.wait_for(has("gocache_dir_inodes", kind="mod"), what="first scan")
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
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            listed = set(re.findall(r"^\| `?([a-z_:]+)`? \|", f.read(), re.M))
        missing = families(text) - listed
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
        with Exporter(f"--cache.dir={cache}", "--density.interval=200ms") as exporter:
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="inode"), 0)
            self.assertNotIn("gocache_filesystem_files", {n for n, _ in samples})
            exporter.scrape()
            copy_go_cache(self.tmp)  # a fresh runner's first build, or a cache restore
            want = find_count(cache)
            text = exporter.wait_for(
                lambda s: value(s, "gocache_scrape_collector_success", collector="inode") == 1
                and value(s, "gocache_scrape_collector_success", collector="density") == 1
                and has("gocache_dir_inodes", path=cache)(s)
                and value(s, "gocache_dir_inodes", path=cache) == want, what="the new cache")
            # The log is read from the exporter's stderr by a thread of its own.
            deadline = time.monotonic() + 5
            while exporter.log().count("collector recovered") < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            log = exporter.log()
        self.assertEqual(value(parse_metrics(text), "gocache_dir_inodes", path=cache), want)
        # One line per affected collector when it fails, one when it recovers;
        # not one per scrape.
        for collector in ("inode", "density"):
            self.assertEqual(log.count(f"collector failed\" collector={collector} "), 1, log)
            self.assertEqual(log.count(f"collector recovered\" collector={collector}\n"), 1, log)
        self.assertEqual(log.count("does not exist"), 1, log)
