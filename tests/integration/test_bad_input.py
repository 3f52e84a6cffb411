"""Bad input gets a clear error and changes nothing; the exporter keeps
serving where it can, and the affected collector reports success 0."""

import os
import shutil
import socket
import time

from harness import (Exporter, TempDirTest, copy_go_cache, find_count, has, parse_metrics,
                     run_exporter, value)

UNPRIVILEGED = "nobody"


class BadInputTest(TempDirTest):

    def test_missing_directory_is_absent_not_failed(self):
        # A fresh runner: the go command has not made its caches yet. That
        # pages nobody: the collectors succeed and say the cache is absent.
        cache, mod = copy_go_cache(self.tmp)
        missing = os.path.join(self.tmp, "no-such-cache")
        missing_mod = os.path.join(self.tmp, "no-such-mod")
        # Automatic trimming on (a trigger no filesystem here reaches): it
        # has nothing to trim in a cache that is not there, and no failure.
        with Exporter(f"--cache.dir={missing}", f"--cache.dir={cache}",
                      f"--modcache.dir={missing_mod}", "--scan.interval=100ms",
                      "--trim.auto-inode-usage=0.999", "--trim.check-interval=100ms") as exporter:
            for _ in range(3):
                samples = parse_metrics(exporter.scrape())
                time.sleep(0.2)  # a few background scans of the missing directories too
            log = exporter.log()
        for collector in ("inode", "density", "trim"):
            self.assertEqual(value(samples, "gocache_scrape_collector_success",
                                   collector=collector), 1, log)
        self.assertEqual(value(samples, "gocache_cache_present", path=missing, kind="build"), 0)
        self.assertEqual(value(samples, "gocache_cache_present", path=missing_mod, kind="mod"), 0)
        self.assertEqual(value(samples, "gocache_cache_present", path=cache, kind="build"), 1)
        self.assertGreater(value(samples, "gocache_filesystem_files", path=cache), 0)
        for absent in (missing, missing_mod):
            # No other series for it, but the trim counters, which stay 0.
            self.assertEqual([n for n, labels in samples if ("path", absent) in labels and
                              n != "gocache_cache_present" and not n.startswith("gocache_trim_")],
                             [])
            self.assertLessEqual({v for (n, labels), v in samples.items()
                                  if ("path", absent) in labels and n.startswith("gocache_trim_")},
                                 {0})
            # One info line for each, not one per scrape; no warning.
            self.assertEqual(log.count(f"does not exist (yet); watching for it\" path={absent} "),
                             1, log)
        self.assertNotIn("level=warn", log)

    def test_file_where_a_directory_is_expected(self):
        not_a_dir = os.path.join(self.tmp, "cache")
        with open(not_a_dir, "w") as f:
            f.write("not a cache\n")
        with Exporter(f"--cache.dir={not_a_dir}", "--scan.interval=100ms") as exporter:
            exporter.wait_for(
                lambda s: value(s, "gocache_scrape_collector_success", collector="inode") == 0,
                what="the failed scan")
            samples = parse_metrics(exporter.wait_for(lambda s: "Not a directory" in exporter.log(),
                                                      what="the log line"))
        self.assertFalse(has("gocache_dir_inodes")(samples))

    def test_unreadable_subdirectory(self):
        cache, _ = copy_go_cache(self.tmp)
        shard = sorted(d for d in os.listdir(cache) if len(d) == 2)[0]
        locked = os.path.join(cache, shard)
        os.chmod(locked, 0)
        # root reads everything: the unreadable part runs as an unprivileged user.
        with Exporter(f"--cache.dir={cache}", "--scan.interval=1h", user=UNPRIVILEGED,
                      binary=self.world_executable_copy()) as exporter:
            text = exporter.wait_for(has("gocache_dir_inodes", path=cache), what="first scan")
            # The failure's log line may still be on its way through the pipe.
            exporter.wait_log("Permission denied")
        samples = parse_metrics(text)
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="inode"), 0)
        # find, as the same user, lists the unreadable directory but nothing in it.
        self.assertEqual(value(samples, "gocache_dir_inodes", path=cache),
                         find_count(cache, user=UNPRIVILEGED))
        self.assertLess(find_count(cache, user=UNPRIVILEGED), find_count(cache))
        # The cache is left as it was: Exporter checks that for every test.

    def test_port_in_use(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            r = run_exporter(f"--web.listen-address=127.0.0.1:{port}", f"--cache.dir={self.tmp}")
        self.assertEqual(r.returncode, 1)
        last = r.stderr.decode().strip().splitlines()[-1]
        self.assertEqual(
            last, f"gocache_exporter: cannot listen on 127.0.0.1:{port}: cannot bind to "
            f"127.0.0.1:{port}: 98 (Address already in use)")

    def test_flag_errors_exit_2_naming_the_flag(self):
        cases = {
            ("--bogus",): "unknown flag --bogus",
            ("--web.listen-address=nowhere",): "--web.listen-address 'nowhere'",
            ("--log.level=loud",): "--log.level 'loud'",
            ("--log.format=xml",): "--log.format 'xml'",
            ("--scan.interval=soon",): "--scan.interval 'soon'",
            ("--scrape.timeout=0",): "--scrape.timeout '0'",
            ("--web.telemetry-path=metrics",): "--web.telemetry-path",
            ("--collector.inode", "--no-collector.inode"): "--collector.inode and --no-collector.inode",
            ("--cache.dir",): "cache.dir",
            ("extra",): "unexpected argument 'extra'",
        }
        for args, want in cases.items():
            with self.subTest(args=args):
                r = run_exporter(*args)
                self.assertEqual(r.returncode, 2)
                err = r.stderr.decode()
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(want, err)
                self.assertIn("--help", err)
                self.assertEqual(r.stdout, b"")

    def test_the_old_name_of_scan_interval_works_and_says_so_once(self):
        cache, _ = copy_go_cache(self.tmp)
        with Exporter(f"--cache.dir={cache}", "--density.interval=100ms") as exporter:
            before = find_count(cache)
            exporter.wait_for(has("gocache_dir_inodes", path=cache), what="the first scan")
            # The value took effect: a new file is counted within seconds, where
            # the default interval (5m) would not see it during this test.
            with open(os.path.join(cache, "ff", "new-file"), "w") as f:
                f.write("x")
            exporter.accept_cache_changes("the test added a file")
            exporter.wait_for(lambda s: value(s, "gocache_dir_inodes", path=cache) == before + 1,
                              timeout=10, what="a rescan at --density.interval=100ms")
            lines = [l for l in exporter.log().splitlines() if "deprecated" in l]
        self.assertEqual(len(lines), 1, exporter.log())
        self.assertIn(
            'level=warn msg="flag is deprecated" flag=--density.interval use=--scan.interval',
            lines[0])
        r = run_exporter("--density.interval=1m", "--scan.interval=1m")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--density.interval is the old name of --scan.interval", r.stderr.decode())

    def test_the_same_directory_twice_is_refused(self):
        cache, _ = copy_go_cache(self.tmp)
        link = os.path.join(self.tmp, "link")
        os.symlink(cache, link)
        for args, want in (
                ((f"--cache.dir={cache}/", f"--cache.dir={cache}"),
                 f"--cache.dir={cache}/ and --cache.dir={cache} name the same directory"),
                ((f"--cache.dir={cache}", f"--modcache.dir={cache}"),
                 f"--cache.dir={cache} and --modcache.dir={cache} name the same directory"),
                ((f"--modcache.dir={link}", f"--cache.dir={cache}"),
                 f"--cache.dir={cache} and --modcache.dir={link} name the same directory")):
            with self.subTest(args=args):
                r = run_exporter(*args, "--once")
                self.assertEqual((r.returncode, r.stdout), (2, b""))
                err = r.stderr.decode()
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(want, err)

    def test_a_cache_inside_another_is_counted_once(self):
        # A GOMODCACHE below the GOCACHE directory: each tree counted once,
        # the inner one as its own, the outer one without it.
        cache, _ = copy_go_cache(self.tmp)
        inner = os.path.join(cache, "mod")
        download = os.path.join(inner, "cache", "download", "example.com", "m", "@v")
        os.makedirs(download)
        for name in ("list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"):
            with open(os.path.join(download, name), "w") as f:
                f.write(name)
        r = run_exporter("--once", f"--cache.dir={cache}", f"--modcache.dir={inner}")
        self.assertEqual(r.returncode, 0, r.stderr)
        samples = parse_metrics(r.stdout.decode())
        inner_count = find_count(inner)
        self.assertEqual(value(samples, "gocache_dir_inodes", path=inner, kind="mod"), inner_count)
        self.assertEqual(value(samples, "gocache_dir_inodes", path=cache, kind="build"),
                         find_count(cache) - inner_count)
        # Every file of the outer cache but the inner one's is counted by type.
        outer_files = sum(len(files) for d, dirs, files in os.walk(cache)
                          if not (d == inner or d.startswith(inner + os.sep)))
        self.assertEqual(sum(value(samples, "gocache_entries", path=cache, type=t)
                             for t in ("action", "output", "other")), outer_files)
        self.assertEqual(value(samples, "gocache_entry_bytes", path=inner, type="other"),
                         sum(len(n) for n in ("list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip")))
        self.assertIn(f'msg="cache inside another: watched once, not counted again in the outer '
                      f'one" path={inner} inside={cache}', r.stderr.decode())

    def test_help_and_version(self):
        r = run_exporter("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--web.listen-address", "--web.telemetry-path", "--cache.dir",
                     "--modcache.dir", "--log.level", "--log.format", "--once", "--version",
                     "--collector.inode", "--no-collector.inode"):
            self.assertIn(flag, r.stdout.decode())
        # No flag shows an empty default.
        self.assertNotIn('(default: "")', r.stdout.decode())
        r = run_exporter("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^gocache_exporter, version \d+\.\d+\.\d+ ")

    def test_help_names_the_commands(self):
        # --help and `help` print the same text, which names the commands.
        r = run_exporter("--help")
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(run_exporter("help").stdout, r.stdout)
        text = r.stdout.decode()
        self.assertIn("gocache_exporter check|trim [flags]", text)
        self.assertRegex(text, r"\nCommands:\n  check +\S.*\n  trim +\S.*\n(.*\n)*  help \[COMMAND\]")
        # `help COMMAND` is `COMMAND --help`.
        for command in ("check", "trim"):
            with self.subTest(command=command):
                r = run_exporter("help", command)
                self.assertEqual((r.returncode, r.stderr), (0, b""))
                self.assertEqual(r.stdout, run_exporter(command, "--help").stdout)
                self.assertIn(f"gocache_exporter {command}", r.stdout.decode())
                self.assertIn("--cache.dir", r.stdout.decode())
        for args, want in ((("help", "bogus"), "help: unknown command 'bogus'"),
                           (("help", "check", "trim"), "help takes one command at most")):
            with self.subTest(args=args):
                r = run_exporter(*args)
                self.assertEqual((r.returncode, r.stdout), (2, b""))
                err = r.stderr.decode()
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(want, err)

    def test_disabled_collector_is_not_run(self):
        r = run_exporter(f"--cache.dir={self.tmp}", "--once", "--no-collector.inode")
        self.assertEqual(r.returncode, 0)
        samples = parse_metrics(r.stdout.decode())
        self.assertFalse(has("gocache_scrape_collector_success", collector="inode")(samples))
        self.assertFalse(has("gocache_filesystem_files")(samples))
        self.assertEqual(value(samples, "gocache_exporter_build_info"), 1)
