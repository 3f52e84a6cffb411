"""Fault tests (issue 8): the real exporter, scraped over HTTP, while its
world breaks under it. The cache directory deleted (and recreated) during a
scan, shards replaced by a file or a symbolic link, permissions taken away
during a scan, the trace spool on a filesystem with no space and no inodes
left, and the spool flooded with 10,000 files. Each time: no crash, error
counts exactly what the code defines, and recovery once the fault is gone.

"During a scan" is made exact rather than likely: the test watches the
exporter's open directories in /proc/PID/fd and stops the process (SIGSTOP)
at a moment when both of the scan's threads are inside shard directories.
The scanner shares the root's subdirectories out in readdir order through
one counter, so at that moment every subdirectory before the later of the
two open shards has been walked and none after it has been touched: the
fault is then injected into known places, and the stopped process resumed
(SIGCONT)."""

import errno
import gzip
import os
import re
import shutil
import signal
import stat
import subprocess
import time

from harness import (ENTRY, EXPORTER, SHARD, SOURCE_DIR, TYPES, Exporter, TempDirTest,
                     expected_census, find_count, has, make_synthetic_cache, parse_metrics,
                     run_exporter)
from test_trace import (action_counts, expect_action_graph, expect_chrome_trace, file_counts,
                        histogram_series)

UNPRIVILEGED = "nobody"
FIXTURES = os.path.join(SOURCE_DIR, "tests", "fixtures", "trace")
# Every wait below is bounded by one of these.
FREEZE_TIMEOUT = 60.0  # finding a moment mid-scan to stop the exporter at
STOP_TIMEOUT = 10.0  # for every thread to stop after SIGSTOP
SETTLE_TIMEOUT = 30.0  # for the exporter to show a state
INGEST_TIMEOUT = 120.0  # for 10,000 trace files



# --- reading the exposition ---------------------------------------------------

def exact(samples, name, **labels):
    """The sample of name with exactly these labels, or None."""
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


def success(samples, collector):
    return exact(samples, "gocache_scrape_collector_success", collector=collector)


def scan_errors(samples, cache):
    return exact(samples, "gocache_scan_errors_total", path=cache)


def scan_duration(samples, cache):
    return exact(samples, "gocache_scan_duration_seconds", path=cache)


# --- what a scan must report, computed independently ---------------------------

def census_mismatches(samples, cache, want):
    """How the scrape differs from `want` (empty when it agrees exactly)."""
    got = {}
    for t in TYPES:
        got[f"entries {t}"] = (exact(samples, "gocache_entries", path=cache, type=t),
                               want["entries"][t])
        got[f"bytes {t}"] = (exact(samples, "gocache_entry_bytes", path=cache, type=t),
                             want["bytes"][t])
    for kind in ("action_without_output", "output_without_action", "size_mismatch"):
        got[kind] = (exact(samples, "gocache_orphan_entries", path=cache, type=kind), want[kind])
    got["corrupt"] = (exact(samples, "gocache_corrupt_entries", path=cache), want["corrupt"])
    got["shards"] = (exact(samples, "gocache_shards", path=cache), want["shards"])
    got["shard_dir_bytes"] = (exact(samples, "gocache_shard_dir_bytes", path=cache),
                              want["shard_dir_bytes"])
    got["allocated"] = (exact(samples, "gocache_allocated_bytes", path=cache), want["allocated"])
    got["ages"] = (exact(samples, "gocache_entry_age_seconds_count", path=cache),
                   want["entries"]["action"] + want["entries"]["output"])
    got["dir_inodes"] = (exact(samples, "gocache_dir_inodes", path=cache, kind="build"),
                         want["inodes"])
    return {k: v for k, v in got.items() if v[0] != v[1]}


# --- the exporter's process ----------------------------------------------------

def open_paths(pid):
    """What the process's file descriptors name now."""
    paths = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return paths
    for fd in fds:
        try:
            paths.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return paths


def open_shards(pid, cache):
    """The shard directories of `cache` the process has open."""
    return [os.path.basename(p) for p in open_paths(pid)
            if os.path.dirname(p) == cache and SHARD.fullmatch(os.path.basename(p))]


def scan_idle(pid, cache):
    """True when the process holds nothing of `cache` open: no walk is under way."""
    return not any(p == cache or p.startswith(cache + "/") for p in open_paths(pid))


def thread_states(pid):
    states = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            pass  # the thread ended
    return states


def stop_process(pid):
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + STOP_TIMEOUT
    while not all(s in "Tt" for s in thread_states(pid)):
        if time.monotonic() > deadline:
            raise AssertionError(f"the exporter did not stop: {thread_states(pid)}")
        time.sleep(0.001)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def sanitized_binary():
    """Whether the binary under test links a sanitizer runtime (make test-asan),
    whose allocator keeps freed memory in quarantine (256 MiB by default)."""
    r = subprocess.run(["ldd", EXPORTER], capture_output=True, text=True, timeout=30)
    return bool(re.search(r"lib(asan|ubsan|lsan|tsan)\.so", r.stdout))


def subdirectories(cache):
    """The root's subdirectories in readdir order: the order the scanner
    shares them out in (os.listdir reads the same directory the same way)."""
    return [n for n in os.listdir(cache) if stat.S_ISDIR(os.lstat(os.path.join(cache, n)).st_mode)]


class FaultTest(TempDirTest):

    def mount_tmpfs(self, options):
        return super().mount_tmpfs(options, name="gocache-faults")

    def freeze(self, exporter, ready):
        """Stops the exporter at a moment when ready() returns something
        other than None, and returns that; the caller must resume it."""
        pid = exporter.proc.pid
        deadline = time.monotonic() + FREEZE_TIMEOUT
        attempts = 0
        while time.monotonic() < deadline:
            self.assertIsNone(exporter.proc.poll(), exporter.log())
            if ready() is not None:  # cheap look first, while it runs
                attempts += 1
                try:
                    stop_process(pid)
                    got = ready()
                except BaseException:
                    os.kill(pid, signal.SIGCONT)
                    raise
                if got is not None:
                    return got
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.0002)
        raise AssertionError(f"no moment to stop the exporter at ({attempts} attempts)")

    def freeze_mid_scan(self, exporter, cache, order, before=1, after=1):
        """Stops the exporter while both scan threads are inside shards of
        `cache`, with at least `before` subdirectories walked and `after`
        shard directories untouched. Returns (walked, current, untouched):
        names of subdirectories already walked, the two being walked, and
        those the scan has not reached."""
        position = {name: i for i, name in enumerate(order)}

        def ready():
            shards = open_shards(exporter.proc.pid, cache)
            if len(shards) != 2 or not all(s in position for s in shards):
                return None
            i, j = sorted(position[s] for s in shards)
            walked = [n for n in order[:j] if n != order[i]]
            untouched = order[j + 1:]
            if len(walked) < before or sum(1 for n in untouched if SHARD.fullmatch(n)) < after:
                return None
            return walked, [order[i], order[j]], untouched

        return self.freeze(exporter, ready)

    def resume(self, exporter):
        os.kill(exporter.proc.pid, signal.SIGCONT)

    def poll(self, exporter, predicate, what, timeout=SETTLE_TIMEOUT, seen=None):
        """Scrapes until predicate(samples) holds; every scrape's samples go
        to seen (a list) when given. Returns the samples that held."""
        deadline = time.monotonic() + timeout
        while True:
            self.assertIsNone(exporter.proc.poll(), f"the exporter died:\n{exporter.log()}")
            samples = parse_metrics(exporter.scrape())
            if seen is not None:
                seen.append(samples)
            if predicate(samples):
                return samples
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last scrape: " + str(
                    {k: v for k, v in samples.items() if k[0].startswith("gocache_s")}))
            time.sleep(0.02)

    def wait_census(self, exporter, cache, want, what, seen=None, collectors_ok=True):
        """Waits until a scrape shows exactly `want` (and, unless
        collectors_ok is None, both collectors' success as given)."""
        def holds(samples):
            if census_mismatches(samples, cache, want):
                return False
            if collectors_ok is None:
                return True
            return (success(samples, "density"), success(samples, "inode")) == (
                (1, 1) if collectors_ok else (0, 0))
        try:
            return self.poll(exporter, holds, what, seen=seen)
        except AssertionError:
            samples = parse_metrics(exporter.scrape())
            raise AssertionError(f"{what}: {census_mismatches(samples, cache, want)} "
                                 f"success density={success(samples, 'density')} "
                                 f"inode={success(samples, 'inode')}\n{exporter.log()}")

    def wait_next_scans(self, exporter, cache, scans, seen=None):
        """Waits until `scans` more scans of `cache` have been published
        (each changes gocache_scan_duration_seconds); returns the last samples."""
        samples = parse_metrics(exporter.scrape())
        for n in range(scans):
            before = scan_duration(samples, cache)
            samples = self.poll(exporter,
                                lambda s, b=before: scan_duration(s, cache) not in (b, None),
                                f"scan {n + 1} of {scans}", seen=seen)
        return samples


# --- the build cache under the scan ------------------------------------------

class CacheDirectoryFaultTest(FaultTest):
    """Scans as root: the cache deleted, recreated and its shards replaced."""

    def setUp(self):
        super().setUp()
        # Caches in memory: thousands of files made in a moment, however
        # busy the disk.
        self.fs = self.mount_tmpfs("size=256m,mode=755")

    def make_cache(self, pairs, **kwargs):
        cache = os.path.join(self.fs, "cache")
        make_synthetic_cache(cache, pairs=pairs, missing_outputs=3, orphan_outputs=2,
                             mismatches=2, corrupt=4, **kwargs)
        return cache

    def start(self, cache, *args, **kwargs):
        # The walk itself is under test: no events.
        return Exporter(f"--cache.dir={cache}", "--scan.interval=50ms", "--no-scan.events", *args,
                        **kwargs)

    def test_cache_deleted_during_a_scan_is_absent_until_it_is_recreated(self):
        cache = self.make_cache(3000)
        order = subdirectories(cache)
        want = expected_census(cache)
        seen = []
        with self.start(cache) as exporter:
            self.wait_census(exporter, cache, want, "the first scan", seen)
            walked, current, untouched = self.freeze_mid_scan(exporter, cache, order)
            try:
                # Mid-walk: shards behind, two open, the rest ahead.
                self.assertGreater(len(walked), 0)
                self.assertGreater(len(untouched), 0)
                shutil.rmtree(cache)
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test deleted the cache")

            # The interrupted walk ends on a tree that is gone (vanished files
            # are not errors); the next scan finds no directory at all: a
            # cache that does not exist, as on a fresh runner, not a failure.
            missing = self.poll(exporter, lambda s: exact(s, "gocache_cache_present", path=cache, kind="build")
                                == 0 and exact(s, "gocache_entries", path=cache,
                                               type="action") is None,
                                "the cache to be reported absent", seen=seen)
            self.assertFalse(has("gocache_filesystem_files", path=cache)(missing))
            self.assertFalse(any(n == "gocache_dir_inodes" for n, _ in missing))
            self.assertEqual(exporter.get("/metrics")[0], 200)
            # Still absent a second later: nothing appears from nowhere.
            time.sleep(1.0)
            missing = parse_metrics(exporter.scrape())
            self.assertEqual(exact(missing, "gocache_cache_present", path=cache, kind="build"), 0)
            self.assertFalse(any(n.startswith("gocache_entr") for n, _ in missing))
            log = exporter.log()
            # The condition is logged once, not at every scrape or scan.
            self.assertEqual(log.count(f'cache directory does not exist (yet); watching for it" '
                                       f'path={cache} '), 1, log)

            # Made anew, with other contents: picked up, and counted afresh.
            make_synthetic_cache(cache, pairs=1200, shards=200, corrupt=1, missing_outputs=5)
            exporter.accept_cache_changes("the test made the cache anew")
            want = expected_census(cache)
            self.assertEqual(want["shards"], 200)
            samples = self.wait_census(exporter, cache, want, "the recreated cache", seen)
            self.assertEqual(exact(samples, "gocache_last_trim_timestamp_seconds", path=cache),
                             1700000000)
            self.assertEqual(exact(samples, "gocache_cache_present", path=cache, kind="build"), 1)
            self.assertEqual(find_count(cache), want["inodes"])
            log = exporter.log()
        # Nothing vanished was ever taken for an unreadable entry, and no
        # collector failed on the way.
        self.assertEqual({scan_errors(s, cache) for s in seen} - {None}, {0})
        for collector in ("inode", "density"):
            self.assertEqual({success(s, collector) for s in seen} - {None}, {1}, collector)
        self.assertNotIn("collector failed", log)
        self.assertIn(f'msg="cache directory appeared" path={cache} ', log)

    def test_cache_replaced_during_a_scan_is_counted_afresh_without_failing(self):
        cache = self.make_cache(3000)
        order = subdirectories(cache)
        want = expected_census(cache)
        seen = []
        with self.start(cache) as exporter:
            self.wait_census(exporter, cache, want, "the first scan", seen)
            self.freeze_mid_scan(exporter, cache, order)
            try:
                # Deleted and made anew while the walk is under way: the walk
                # goes on in the old tree, which is then removed too.
                old = os.path.join(self.fs, "old-cache")
                os.rename(cache, old)
                make_synthetic_cache(cache, pairs=800, shards=128, orphan_outputs=6,
                                     mismatches=4, trim_time=1800000000)
                shutil.rmtree(old)
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test replaced the cache")
            want = expected_census(cache)
            self.assertEqual(want["shards"], 128)
            samples = self.wait_census(exporter, cache, want, "the new cache", seen)
            self.assertEqual(exact(samples, "gocache_last_trim_timestamp_seconds", path=cache),
                             1800000000)
            # And it stays so.
            samples = self.wait_next_scans(exporter, cache, 3, seen)
            self.assertEqual(census_mismatches(samples, cache, want), {})
            log = exporter.log()
        # The directory never went missing, and nothing was unreadable: the
        # collectors never failed.
        self.assertEqual({success(s, "density") for s in seen}, {1})
        self.assertEqual({success(s, "inode") for s in seen}, {1})
        self.assertEqual({scan_errors(s, cache) for s in seen} - {None}, {0})
        self.assertNotIn("collector failed", log)

    def test_shards_replaced_by_a_file_and_symbolic_links_during_a_scan(self):
        cache = self.make_cache(3000)
        order = subdirectories(cache)
        pristine = expected_census(cache)
        aside = os.path.join(self.fs, "aside")
        os.mkdir(aside)
        seen = []
        with self.start(cache) as exporter:
            self.wait_census(exporter, cache, pristine, "the first scan", seen)
            walked, current, untouched = self.freeze_mid_scan(exporter, cache, order)
            past = next(n for n in walked if SHARD.fullmatch(n))
            ahead = [n for n in untouched if SHARD.fullmatch(n)][-1]
            now = current[0]
            try:
                for name in (past, ahead, now):
                    os.rename(os.path.join(cache, name), os.path.join(aside, name))
                # Walked already: now a regular file.
                with open(os.path.join(cache, past), "wb") as f:
                    f.write(b"not a shard\n")
                # Not reached yet: a link to a real shard directory, full of
                # entries (which must not be counted).
                os.symlink(os.path.join(aside, ahead), os.path.join(cache, ahead))
                # Being walked now: a link to the cache itself (a loop, for
                # anything that follows links).
                os.symlink(".", os.path.join(cache, now))
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test replaced three shards")
            moved = [(n, f) for n in (past, ahead, now) for f in os.listdir(os.path.join(aside, n))]
            moved_entries = sum(1 for n, f in moved if ENTRY.fullmatch(f) and f[:2] == n)
            self.assertGreater(moved_entries, 0)

            faulty = expected_census(cache)
            self.assertEqual(faulty["shards"], pristine["shards"] - 3)
            self.assertEqual(faulty["entries"]["action"] + faulty["entries"]["output"],
                             pristine["entries"]["action"] + pristine["entries"]["output"]
                             - moved_entries)
            # The file and the links are "other" files; what the shards held is gone.
            self.assertEqual(faulty["entries"]["other"], pristine["entries"]["other"] + 3
                             - (len(moved) - moved_entries))
            samples = self.wait_census(exporter, cache, faulty, "scans of the damaged cache", seen)
            self.assertEqual(find_count(cache), faulty["inodes"])
            # The walk under way found the shard it had not reached replaced
            # by a link: one entry it could not read, exactly. The shard it
            # was in, and the one behind it, cost nothing.
            self.assertEqual(scan_errors(samples, cache), 1)
            # Later scans see a file and two links, which are not errors.
            samples = self.wait_next_scans(exporter, cache, 3, seen)
            self.assertEqual(census_mismatches(samples, cache, faulty), {})
            self.assertEqual(scan_errors(samples, cache), 1)
            self.assertEqual((success(samples, "density"), success(samples, "inode")), (1, 1))

            # The fault removed: every shard back as it was.
            for name in (past, ahead, now):
                os.unlink(os.path.join(cache, name))
                os.rename(os.path.join(aside, name), os.path.join(cache, name))
            exporter.accept_cache_changes("the test put the shards back")
            self.assertEqual(expected_census(cache), pristine)
            samples = self.wait_census(exporter, cache, pristine, "the repaired cache", seen)
            samples = self.wait_next_scans(exporter, cache, 2, seen)
            self.assertEqual(census_mismatches(samples, cache, pristine), {})
            self.assertEqual(scan_errors(samples, cache), 1)
            self.assertEqual((success(samples, "density"), success(samples, "inode")), (1, 1))
        # The counter only ever went from 0 to 1.
        self.assertEqual({scan_errors(s, cache) for s in seen} - {None}, {0, 1})


class PermissionFaultTest(FaultTest):
    """Permissions taken away during a scan by an unprivileged exporter (root
    reads everything)."""

    def setUp(self):
        super().setUp()
        self.binary = self.world_executable_copy()

    def start(self, cache):
        # The walk under test (test_census_events follows permissions by events).
        return Exporter(f"--cache.dir={cache}", "--scan.interval=50ms", "--no-scan.events",
                        user=UNPRIVILEGED, binary=self.binary)

    def fresh_look(self, cache):
        """What a newly started exporter, as the same user, reports for the
        cache as it is now (one scan, --once)."""
        r = run_exporter("--once", f"--cache.dir={cache}", user=UNPRIVILEGED, binary=self.binary,
                         timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return parse_metrics(r.stdout.decode())

    def make_cache(self):
        cache = os.path.join(self.mount_tmpfs("size=256m,mode=755"), "cache")
        make_synthetic_cache(cache, pairs=3000, missing_outputs=2, corrupt=2)
        return cache

    def test_shards_made_unreadable_during_a_scan(self):
        cache = self.make_cache()
        order = subdirectories(cache)
        pristine = expected_census(cache)
        seen = []
        with self.start(cache) as exporter:
            self.wait_census(exporter, cache, pristine, "the first scan", seen)
            walked, current, untouched = self.freeze_mid_scan(exporter, cache, order, before=2,
                                                              after=3)
            behind = [n for n in walked if SHARD.fullmatch(n)][:2]
            ahead = [n for n in untouched if SHARD.fullmatch(n)][-3:]
            try:
                for name in behind + ahead:
                    os.chmod(os.path.join(cache, name), 0)
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test locked five shards")
            locked = len(behind) + len(ahead)

            # Every later scan lists the locked shards but cannot enter them.
            faulty = expected_census(cache, unreadable=behind + ahead)
            self.assertEqual(faulty["shards"], pristine["shards"])
            self.assertLess(faulty["entries"]["action"], pristine["entries"]["action"])
            self.assertEqual(find_count(cache, user=UNPRIVILEGED), faulty["inodes"])
            samples = self.wait_census(exporter, cache, faulty, "scans of the locked cache", seen,
                                       collectors_ok=False)
            samples = self.wait_next_scans(exporter, cache, 3, seen)
            self.assertEqual(census_mismatches(samples, cache, faulty), {})
            self.assertEqual((success(samples, "density"), success(samples, "inode")), (0, 0))
            log = exporter.log()
            self.assertIn("Permission denied", log)
            self.assertIn(f"scan {cache}: {locked} entries could not be read", log)

            # Unlocked while no walk is under way (the process is stopped
            # with nothing of the cache open), so that no scan sees half of it.
            self.freeze(exporter, lambda: True if scan_idle(exporter.proc.pid, cache) else None)
            try:
                for name in behind + ahead:
                    os.chmod(os.path.join(cache, name), 0o755)
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test unlocked the shards")
            samples = self.wait_census(exporter, cache, pristine, "the unlocked cache", seen)
            final = scan_errors(samples, cache)
            samples = self.wait_next_scans(exporter, cache, 3, seen)
            self.assertEqual(census_mismatches(samples, cache, pristine), {})
            self.assertEqual((success(samples, "density"), success(samples, "inode")), (1, 1))
            # Recovered: the counter stops.
            self.assertEqual(scan_errors(samples, cache), final)
            log = exporter.log()
        # The scan under way could not enter the shards it had not reached
        # (len(ahead)); every complete scan after it, none of the locked ones.
        errors = sorted({scan_errors(s, cache) for s in seen} - {None})
        self.assertEqual(errors[0], 0)
        self.assertGreaterEqual(final, len(ahead) + locked)
        for e in errors[1:]:
            self.assertEqual((e - len(ahead)) % locked, 0, errors)
        for collector in ("inode", "density"):
            self.assertIn(f'msg="collector recovered" collector={collector}', log)

    def test_action_entries_made_unreadable_while_the_exporter_runs(self):
        cache = self.make_cache()
        pristine = expected_census(cache)
        # One valid action entry in each of six shards.
        locked = []
        for shard in sorted(n for n in os.listdir(cache) if SHARD.fullmatch(n))[10:16]:
            name = next(n for n in sorted(os.listdir(os.path.join(cache, shard)))
                        if n.endswith("-a") and ENTRY.fullmatch(n))
            locked.append(os.path.join(cache, shard, name))
        seen = []
        with self.start(cache) as exporter:
            self.wait_census(exporter, cache, pristine, "the first scan", seen)
            # Between two scans, so that every scan after sees all of it.
            self.freeze(exporter, lambda: True if scan_idle(exporter.proc.pid, cache) else None)
            try:
                for path in locked:
                    os.chmod(path, 0)
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test locked six action entries")
            # A fresh look at the same tree cannot read the six entries (nor
            # could a go command running as this user): six errors, the
            # collectors failing.
            fresh = self.fresh_look(cache)
            self.assertEqual(scan_errors(fresh, cache), len(locked))
            self.assertEqual((success(fresh, "density"), success(fresh, "inode")), (0, 0))

            first = self.wait_next_scans(exporter, cache, 1, seen)
            samples = self.wait_next_scans(exporter, cache, 2, seen)
            got = {"density success": success(samples, "density"),
                   "inode success": success(samples, "inode"),
                   "errors counted": scan_errors(samples, cache) > scan_errors(first, cache)}
            self.assertEqual(
                got, {"density success": 0, "inode success": 0, "errors counted": True},
                "the running exporter does not see what a fresh one does: action entries it "
                "read before are taken from its index by their unchanged mtime, so it never "
                "notices that it can no longer read them (chmod changes only the ctime)")

            self.freeze(exporter, lambda: True if scan_idle(exporter.proc.pid, cache) else None)
            try:
                for path in locked:
                    os.chmod(path, 0o644)
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test unlocked the action entries")
            samples = self.wait_census(exporter, cache, pristine, "the unlocked entries", seen)
            final = scan_errors(samples, cache)
            samples = self.wait_next_scans(exporter, cache, 3, seen)
            self.assertEqual(scan_errors(samples, cache), final)
            self.assertEqual((success(samples, "density"), success(samples, "inode")), (1, 1))
        for e in {scan_errors(s, cache) for s in seen} - {None}:
            self.assertEqual(e % len(locked), 0)

    def test_cache_root_made_unreadable_during_a_scan(self):
        cache = self.make_cache()
        order = subdirectories(cache)
        pristine = expected_census(cache)
        seen = []
        with self.start(cache) as exporter:
            self.wait_census(exporter, cache, pristine, "the first scan", seen)
            walked, current, untouched = self.freeze_mid_scan(exporter, cache, order)
            try:
                os.chmod(cache, 0)
            finally:
                self.resume(exporter)
            exporter.accept_cache_changes("the test locked the cache")
            # The walk under way holds the root open but may not look up a
            # name in it any more: each subdirectory it had not reached is an
            # error; the shards it was in are read to their end. Later scans
            # cannot open the root at all, which fails both collectors and
            # leaves no density series (a root that cannot be read is not
            # counted in gocache_scan_errors_total).
            samples = self.poll(exporter, lambda s: (success(s, "density"), success(s, "inode"))
                                == (0, 0) and exact(s, "gocache_entries", path=cache,
                                                    type="action") is None,
                                "both collectors to fail", seen=seen)
            # statvfs still answers: the filesystem's series stay.
            self.assertTrue(has("gocache_filesystem_files", path=cache)(samples))
            self.assertFalse(any(n == "gocache_dir_inodes" for n, _ in samples))
            self.assertIsNone(scan_errors(samples, cache))
            time.sleep(0.5)
            parse_metrics(exporter.scrape())
            log = exporter.log()
            # Logged once by each collector, however many scans and scrapes.
            for collector in ("inode", "density"):
                self.assertEqual(log.count(f'collector={collector} err="scan {cache}: Permission '
                                           'denied"'), 1, log)

            os.chmod(cache, 0o755)
            exporter.accept_cache_changes("the test unlocked the cache")
            samples = self.wait_census(exporter, cache, pristine, "the readable cache", seen)
            # What the interrupted walk could not read, exactly; nothing since.
            self.assertEqual(scan_errors(samples, cache), len(untouched))
            samples = self.wait_next_scans(exporter, cache, 3, seen)
            self.assertEqual(scan_errors(samples, cache), len(untouched))
            self.assertEqual((success(samples, "density"), success(samples, "inode")), (1, 1))
        self.assertEqual({scan_errors(s, cache) for s in seen} - {None}, {0, len(untouched)})


# --- the trace spool -----------------------------------------------------------

def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def expected_tally(parts):
    """(action counts, histogram observation counts) of [(count, Expected)]."""
    actions, observations = {}, {}
    for n, expected in parts:
        for key, v in expected.actions.items():
            actions[key] = actions.get(key, 0) + n * v
        for key, values in expected.observations.items():
            observations[key] = observations.get(key, 0) + n * len(values)
    return actions, observations


class SpoolFaultTest(FaultTest):

    def setUp(self):
        super().setUp()
        self.cold = fixture("cold-build.actiongraph.json")
        self.warm = fixture("warm-build.actiongraph.json")
        self.chrome_gz = fixture("cold-build.trace.json.gz")
        self.expect = {"cold": expect_action_graph(self.cold),
                       "warm": expect_action_graph(self.warm),
                       "chrome": expect_chrome_trace(gzip.decompress(self.chrome_gz))}
        self.empty = os.path.join(self.tmp, "empty-cache")
        os.mkdir(self.empty)

    def start(self, spool, *args):
        return Exporter("--collector.disable-defaults", "--collector.trace",
                        f"--cache.dir={self.empty}", f"--trace.dir={spool}", *args)

    def assert_tally(self, samples, parts, files):
        """Trace counters equal to the sum of the parts [(count, name)];
        files: {(format, result): count} (every other series 0)."""
        want_files = {k: 0.0 for k in [("actiongraph", "ok"), ("actiongraph", "error"),
                                        ("chrome", "ok"), ("chrome", "error"),
                                        ("unknown", "error")]}
        want_files.update({k: float(v) for k, v in files.items()})
        self.assertEqual(file_counts(samples), want_files)
        actions, observations = expected_tally([(n, self.expect[name]) for n, name in parts])
        self.assertEqual(action_counts(samples), {k: float(v) for k, v in actions.items()})
        got = {key: series[0] for key, series in histogram_series(samples).items()}
        self.assertEqual(got, {k: float(v) for k, v in observations.items()})

    def test_spool_on_a_full_filesystem(self):
        mnt = self.mount_tmpfs("size=4m,nr_inodes=256,mode=755")
        spool, stage, fill = (os.path.join(mnt, d) for d in ("spool", "stage", "fill"))
        for d in (spool, stage, fill):
            os.mkdir(d)
        # Traces that were in the spool before the exporter started, and
        # some waiting beside it to be moved in.
        waiting = {"before.json": self.warm, "before.json.gz": gzip.compress(self.cold)}
        staged = {"moved.json": self.warm, "moved.trace.json.gz": self.chrome_gz,
                  "moved.json.gz": gzip.compress(self.warm)}
        old = time.time() - 60
        for name, data in waiting.items():
            with open(os.path.join(spool, name), "wb") as f:
                f.write(data)
            os.utime(os.path.join(spool, name), (old, old))
        for name, data in staged.items():
            with open(os.path.join(stage, name), "wb") as f:
                f.write(data)

        # Full: no blocks but four pages, which a job writing its trace
        # straight into the spool then fills (its file ends where the space
        # did), then no inodes either.
        st = os.statvfs(mnt)
        with open(os.path.join(fill, "blocks"), "wb") as f:
            f.write(b"\0" * ((st.f_bavail - 4) * st.f_frsize))
        truncated = os.path.join(spool, "truncated.json")
        fd = os.open(truncated, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        written = 0
        try:
            while written < len(self.cold):
                written += os.write(fd, self.cold[written:])
            raise AssertionError("the trace fit on the full filesystem")
        except OSError as e:
            self.assertEqual(e.errno, errno.ENOSPC)
        # The job goes on to write the rest elsewhere; its file is closed
        # only once the exporter runs (so that the close reports it).
        self.assertGreater(written, 0)
        self.assertLess(written, len(self.cold))
        for i in range(st.f_files):  # bounded: at most every inode there is
            try:
                os.close(os.open(os.path.join(fill, f"i{i}"), os.O_WRONLY | os.O_CREAT, 0o644))
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
                break
        st = os.statvfs(mnt)
        self.assertEqual((st.f_bavail, st.f_favail), (0, 0))
        with self.assertRaises(OSError) as raised:
            open(os.path.join(spool, "new.json"), "wb").close()
        self.assertEqual(raised.exception.errno, errno.ENOSPC)

        try:
            exporter = self.start(spool, "--trace.settle=2s")
        except BaseException:
            os.close(fd)
            raise
        with exporter:
            os.close(fd)
            # Files already there: read, renamed in place, counted; the
            # truncated one rejected as exactly one error.
            samples = self.poll(exporter, lambda s: sum(file_counts(s).values()) >= 3,
                                "the files already in the spool")
            self.assertEqual(success(samples, "trace"), 1)
            self.assert_tally(samples, [(1, "warm"), (1, "cold")],
                              {("actiongraph", "ok"): 2, ("actiongraph", "error"): 1})
            # Moved in while the filesystem is full: a rename needs no space.
            for name in staged:
                os.rename(os.path.join(stage, name), os.path.join(spool, name))
            samples = self.poll(exporter, lambda s: sum(file_counts(s).values()) >= 6,
                                "the files moved in")
            self.assert_tally(samples, [(3, "warm"), (1, "cold"), (1, "chrome")],
                              {("actiongraph", "ok"): 4, ("actiongraph", "error"): 1,
                               ("chrome", "ok"): 1})
            self.assertEqual(success(samples, "trace"), 1)
            self.assertEqual(sorted(os.listdir(spool)), sorted(
                [n + ".done" for n in list(waiting) + list(staged)] + ["truncated.json.error"]))
            st = os.statvfs(mnt)
            self.assertEqual((st.f_bavail, st.f_favail), (0, 0))
            # Still serving, still the same counts, still succeeding.
            time.sleep(2.5)
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(sum(file_counts(samples).values()), 6)
            self.assertEqual(success(samples, "trace"), 1)
            self.assertIn(f"file={truncated} ", exporter.log())

            # Space again: new traces, written in place and moved in, counted.
            shutil.rmtree(fill)
            with open(os.path.join(spool, "after.json"), "wb") as f:
                f.write(self.cold)
            with open(os.path.join(stage, "after-moved.json"), "wb") as f:
                f.write(self.warm)
            os.rename(os.path.join(stage, "after-moved.json"),
                      os.path.join(spool, "after-moved.json"))
            samples = self.poll(exporter, lambda s: sum(file_counts(s).values()) >= 8,
                                "the files written after space was freed")
            self.assert_tally(samples, [(4, "warm"), (2, "cold"), (1, "chrome")],
                              {("actiongraph", "ok"): 6, ("actiongraph", "error"): 1,
                               ("chrome", "ok"): 1})
            self.assertEqual(success(samples, "trace"), 1)
        self.assertEqual(sorted(os.listdir(spool)), sorted(
            [n + ".done" for n in list(waiting) + list(staged) + ["after.json", "after-moved.json"]]
            + ["truncated.json.error"]))

    def test_flood_of_ten_thousand_files(self):
        # In memory: 60 MB in 10,000 files written in a moment, however busy the disk.
        mnt = self.mount_tmpfs("size=256m,mode=755")
        spool, stage = os.path.join(mnt, "spool"), os.path.join(mnt, "stage")
        os.mkdir(spool)
        os.mkdir(stage)
        warm_gz, cold_gz = gzip.compress(self.warm), gzip.compress(self.cold)
        # 10,000 files of real traces, plain and compressed, and bad ones.
        kinds = [("warm", self.warm, ".json")] * 10 + [("warm", warm_gz, ".json.gz")] * 30 + [
            ("cold", cold_gz, ".json.gz")] * 10 + [("chrome", self.chrome_gz, ".trace.gz")] * 49 + [
            ("bad", b"not a trace\n", ".json")]
        plan = [(f"f{i:05d}{kinds[i % 100][2]}", kinds[i % 100]) for i in range(10000)]
        counts = {}
        for _, (name, _, _) in plan:
            counts[name] = counts.get(name, 0) + 1
        self.assertEqual(counts, {"warm": 4000, "cold": 1000, "chrome": 4900, "bad": 100})
        in_place = {name for name, _ in plan[::10]}  # 1,000 written straight into the spool
        for name, (_, data, _) in plan:
            if name not in in_place:
                with open(os.path.join(stage, name), "wb") as f:
                    f.write(data)

        rss, latencies = [], []
        with self.start(spool, "--trace.settle=2s") as exporter:
            pid = exporter.proc.pid
            self.poll(exporter, lambda s: success(s, "trace") == 1, "the first update")
            baseline = rss_kib(pid)
            for name, (_, data, _) in plan:
                if name in in_place:
                    with open(os.path.join(spool, name), "wb") as f:
                        f.write(data)
                else:
                    os.rename(os.path.join(stage, name), os.path.join(spool, name))

            deadline = time.monotonic() + INGEST_TIMEOUT
            while True:
                started = time.monotonic()
                samples = parse_metrics(exporter.scrape())
                latencies.append(time.monotonic() - started)
                rss.append(rss_kib(pid))
                if sum(file_counts(samples).values()) >= 10000:
                    break
                self.assertLess(time.monotonic(), deadline, "the flood was not ingested")
                time.sleep(0.05)
            # Counted once: more polls of the spool count nothing again.
            time.sleep(2.5)
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(success(samples, "trace"), 1)
            log = exporter.log()
        self.assert_tally(samples, [(4000, "warm"), (1000, "cold"), (4900, "chrome")],
                          {("actiongraph", "ok"): 5000, ("chrome", "ok"): 4900,
                           ("unknown", "error"): 100})
        # None left: each one renamed once, to what its content earned.
        listing = sorted(os.listdir(spool))
        self.assertEqual(listing, sorted(name + (".error" if kind == "bad" else ".done")
                                         for name, (kind, _, _) in plan))
        self.assertEqual(os.listdir(stage), [])
        # Scrapes answered at once throughout (the spool is read in the
        # background), and memory did not grow with the files.
        self.assertGreater(len(latencies), 1)
        self.assertLess(max(latencies), 2.0, latencies)
        bound = 320 * 1024 if sanitized_binary() else 32 * 1024
        self.assertLess(max(rss) - baseline, bound, f"VmRSS {baseline} KiB, then up to {max(rss)}")
        # Bad files are logged one by one up to 10 per update, the rest summarized.
        one_by_one = log.count('msg="trace file rejected"')
        summarized = sum(int(n) for n in re.findall(
            r'msg="more trace files rejected" count=(\d+)', log))
        self.assertEqual(one_by_one + summarized, 100, log[-3000:])
        self.assertLessEqual(one_by_one, 100)
