"""The census a build cache's inotify events keep: after churn of every kind
(the tests' own and the go command's), within 2 s every inode and density
figure equals that of a fresh --once walk of the same tree, exactly, and the
verifying walks find nothing the events missed. Where events cannot serve,
the exporter walks, says so, and is exact all the same."""

import ctypes
import os
import random
import shutil
import signal
import subprocess
import time
import unittest

from harness import (DAY, Exporter, TempDirTest, action_entry, as_user, copy_go_cache, go_binary,
                     hex_id, parse_metrics, run_exporter, shared_go_cache, value)

# Figures that must equal a fresh walk's exactly. The age sum moves with the
# clock and is compared within the time between the two looks.
EXACT = {
    "gocache_dir_inodes", "gocache_entries", "gocache_entry_bytes", "gocache_allocated_bytes",
    "gocache_slack_ratio", "gocache_shards", "gocache_shard_entries_min",
    "gocache_shard_entries_max", "gocache_shard_entries_mean", "gocache_shard_entries_stddev",
    "gocache_shard_imbalance_ratio", "gocache_shard_dir_bytes", "gocache_orphan_entries",
    "gocache_corrupt_entries", "gocache_entry_age_seconds_bucket",
    "gocache_entry_age_seconds_count", "gocache_entry_size_bytes_bucket",
    "gocache_entry_size_bytes_sum", "gocache_entry_size_bytes_count", "gocache_trimmable_entries", "gocache_trimmable_bytes",
    "gocache_last_trim_timestamp_seconds",
}
FRESH_WITHIN = 2.0  # seconds from the end of a change to figures equal to a fresh walk
# Ages away from every bucket bound and the trim cutoff, so that the two
# looks, a moment apart, agree on each entry's bucket.
AGES = [0, 600, 3 * 3600, 12 * 3600, 36 * 3600, 3 * DAY, 5.5 * DAY, 6.5 * DAY, 10 * DAY,
        20 * DAY, 40 * DAY]


def census_figures(samples, cache):
    return {(n, ls): v for (n, ls), v in samples.items() if n in EXACT and ("path", cache) in ls}


def once_samples(cache):
    r = run_exporter("--once", f"--cache.dir={cache}", "--collector.disable-defaults",
                     "--collector.inode", "--collector.density")
    if r.returncode != 0:
        raise AssertionError(f"--once failed: {r.stderr.decode()}")
    return parse_metrics(r.stdout.decode())


def describe(want, got):
    lines = []
    for key in sorted(want.keys() | got.keys()):
        if want.get(key) != got.get(key):
            lines.append(f"  {key[0]}{dict(key[1])}: walk {want.get(key)} events {got.get(key)}")
    return "\n".join(lines[:20])


class Churn:
    """Seeded changes of every kind to a build cache, as files appear, change
    and go in a runner's cache (and some that only damage does)."""

    def __init__(self, cache, seed):
        self.cache = cache
        # A directory on the same file system, for renames in and out.
        self.outside = cache + "-outside"
        os.makedirs(self.outside, exist_ok=True)
        self.rng = random.Random(seed)
        self.n = 0

    def _id(self, kind):
        self.n += 1
        return hex_id(f"{kind}-{self.rng.random()}-{self.n}", self.rng.randrange(256))

    def _path(self, hex_, suffix):
        return os.path.join(self.cache, hex_[:2], f"{hex_}-{suffix}")

    def _write(self, path, data, age=None):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        if age is not None:
            t = time.time() - age
            os.utime(path, (t, t))

    def files(self, suffix=None):
        found = []
        for dirpath, _, names in os.walk(self.cache):
            found += [os.path.join(dirpath, n) for n in names if suffix is None or
                      n.endswith(suffix)]
        return sorted(found)

    def pick(self, suffix=None):
        found = self.files(suffix)
        return self.rng.choice(found) if found else None

    # --- the changes ---------------------------------------------------

    def create(self):
        a, o = self._id("a"), self._id("o")
        size = self.rng.randrange(0, 20000)
        age = self.rng.choice(AGES)
        self._write(self._path(o, "d"), b"o" * size, age)
        self._write(self._path(a, "a"), action_entry(a, o, size), age)

    def delete(self):
        if path := self.pick():
            os.unlink(path)

    def rewrite(self):
        # In place, as the go command writes: a new size or a new output.
        if path := self.pick("-a"):
            name = os.path.basename(path)[:64]
            o = self._id("o")
            size = self.rng.randrange(0, 5000)
            self._write(self._path(o, "d"), b"r" * size)
            with open(path, "r+b") as f:
                f.write(action_entry(name, o, size))
                f.truncate()

    def truncate(self):
        if path := self.pick("-d"):
            os.truncate(path, os.path.getsize(path) // 2)

    def touch_back(self):
        if path := self.pick():
            t = time.time() - self.rng.choice(AGES)
            os.utime(path, (t, t))

    def corrupt(self):
        if path := self.pick("-a"):
            with open(path, "r+b") as f:
                f.seek(self.rng.randrange(0, 40))
                f.write(b"\xff")

    def rename_in(self):
        a = self._id("a")
        staged = os.path.join(self.outside, f"{a}-a")
        self._write(staged, action_entry(a, self._id("o"), 7), self.rng.choice(AGES))
        os.makedirs(os.path.join(self.cache, a[:2]), exist_ok=True)
        os.rename(staged, self._path(a, "a"))

    def rename_out(self):
        if path := self.pick():
            os.rename(path, os.path.join(self.outside, f"out-{self.n}"))
            self.n += 1

    def stray(self):
        # Files that are no entry of their shard, and a deep tree like fuzz/.
        where = self.rng.choice(["", f"{self.rng.randrange(256):02x}", "fuzz/example.com/p/F",
                                 "fuzz/example.com/q"])
        self._write(os.path.join(self.cache, where, f"stray-{self.n}-a"), b"x" * self.n,
                    self.rng.choice(AGES))
        self.n += 1

    def chmod(self):
        if path := self.pick():
            os.chmod(path, self.rng.choice([0o600, 0o644, 0o444]))

    CHANGES = ("create", "create", "create", "delete", "rewrite", "truncate", "touch_back",
               "corrupt", "rename_in", "rename_out", "stray", "chmod")

    def round(self, changes, kinds=CHANGES):
        for _ in range(changes):
            getattr(self, self.rng.choice(kinds))()

    def replace_shard(self):
        shard = f"{self.rng.randrange(256):02x}"
        shutil.rmtree(os.path.join(self.cache, shard), ignore_errors=True)
        os.mkdir(os.path.join(self.cache, shard))
        for _ in range(3):
            a = hex_id(f"again-{self.n}", int(shard, 16))
            self.n += 1
            self._write(self._path(a, "a"), action_entry(a, self._id("o"), 1))


def make_cache(cache, pairs, rng):
    os.makedirs(cache)
    for s in range(256):
        os.mkdir(os.path.join(cache, f"{s:02x}"))
    churn = Churn(cache, rng.random())
    for _ in range(pairs):
        churn.create()
    with open(os.path.join(cache, "README"), "w") as f:
        f.write("This directory holds cached build artifacts from the Go build system.\n")
    with open(os.path.join(cache, "trim.txt"), "w") as f:
        f.write(f"{int(time.time() - 2 * DAY)}")


class EventCensusTest(TempDirTest):

    def assert_fresh(self, exporter, cache, what):
        """Within FRESH_WITHIN seconds of now the exporter's figures equal a
        fresh walk's; returns how long that took and the exporter's samples."""
        start = time.monotonic()
        while True:
            want_samples = once_samples(cache)
            got_samples = parse_metrics(exporter.scrape())
            elapsed = time.monotonic() - start
            want, got = census_figures(want_samples, cache), census_figures(got_samples, cache)
            if want == got:
                break
            if elapsed > FRESH_WITHIN:
                self.fail(f"{what}: {elapsed:.2f} s on, the census differs from a fresh walk:\n"
                          + describe(want, got))
            time.sleep(0.05)
        count = value(got_samples, "gocache_entry_age_seconds_count", path=cache)
        self.assertLessEqual(
            abs(value(got_samples, "gocache_entry_age_seconds_sum", path=cache)
                - value(want_samples, "gocache_entry_age_seconds_sum", path=cache)),
            count * (elapsed + 2.5), what)
        exporter.accept_cache_changes(what)
        return elapsed, got_samples

    def assert_events(self, samples, cache, exporter):
        self.assertEqual(value(samples, "gocache_scan_mode", path=cache, mode="events"), 1)
        self.assertEqual(value(samples, "gocache_scan_mode", path=cache, mode="walk"), 0)
        self.assertEqual(value(samples, "gocache_scan_drift_total", path=cache), 0,
                         exporter.log()[-3000:])
        self.assertEqual(value(samples, "gocache_scan_errors_total", path=cache), 0)

    def test_churn_rounds_equal_a_fresh_walk(self):
        rng = random.Random(16)
        cache = os.path.join(self.tmp, "cache")
        make_cache(cache, 300, rng)
        churn = Churn(cache, 1616)
        src, env = shared_go_cache()
        env = dict(env, GOCACHE=cache)

        def go(*args):
            subprocess.run([go_binary(), *args], cwd=os.path.join(src, "src"), env=env,
                           check=True, timeout=600, capture_output=True)

        slowest = 0.0
        with Exporter(f"--cache.dir={cache}", "--scan.verify-interval=2s",
                      "--log.level=debug") as exporter:
            exporter.wait_log("following the cache by events")
            _, samples = self.assert_fresh(exporter, cache, "the first walk")
            self.assert_events(samples, cache, exporter)
            for i in range(16):
                churn.round(25)
                if i % 4 == 3:
                    churn.replace_shard()
                took, samples = self.assert_fresh(exporter, cache, f"churn round {i}")
                slowest = max(slowest, took)
                self.assert_events(samples, cache, exporter)

            # The go command: a real build, its own trim, `go clean -cache`.
            go("build", "-a", "-o", os.path.join(self.tmp, "hello"), ".")
            self.assert_fresh(exporter, cache, "a go build -a")
            old = time.time() - 6 * DAY
            for path in churn.files("-d")[::3]:
                os.utime(path, (old, old))
            with open(os.path.join(cache, "trim.txt"), "w") as f:
                f.write(f"{int(time.time() - 2 * DAY)}")
            _, samples = self.assert_fresh(exporter, cache, "entries aged past the cutoff")
            self.assertGreater(value(samples, "gocache_trimmable_entries", path=cache), 0)
            go("build", "-o", os.path.join(self.tmp, "hello"), ".")
            _, samples = self.assert_fresh(exporter, cache, "the go command's trim")
            self.assertEqual(value(samples, "gocache_trimmable_entries", path=cache), 0)

            churn.round(25)
            r = run_exporter("trim", f"--cache.dir={cache}", "--max-bytes=100000",
                             "--keep-recent=0s",
                             cache_changes="gocache_exporter trim removes entries")
            self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
            self.assert_fresh(exporter, cache, "gocache_exporter trim")

            go("clean", "-cache")
            _, samples = self.assert_fresh(exporter, cache, "go clean -cache")
            go("build", "-o", os.path.join(self.tmp, "hello"), ".")
            _, samples = self.assert_fresh(exporter, cache, "a build into the cleaned cache")
            self.assertGreater(value(samples, "gocache_entries", path=cache, type="action"), 0)
            self.assert_events(samples, cache, exporter)
            # The verifying walks ran, and found nothing the events missed.
            self.assertIn('msg="verified the census"', exporter.log())
            self.assertNotIn("drift=1", exporter.log())
        print(f"\nslowest round to a fresh census: {slowest:.2f} s")

    def test_a_change_events_cannot_see_is_drift_and_the_verify_walk_repairs_it(self):
        cache = os.path.join(self.tmp, "cache")
        make_cache(cache, 50, random.Random(3))
        churn = Churn(cache, 3)
        action = churn.pick("-a")
        # A hard link outside the cache: a write through it is reported to
        # the directory it was made through, not to the shard's watch.
        link = os.path.join(self.tmp, "link")
        os.link(action, link)
        with Exporter(f"--cache.dir={cache}", "--scan.verify-interval=1s") as exporter:
            _, samples = self.assert_fresh(exporter, cache, "the first walk")
            corrupt = value(samples, "gocache_corrupt_entries", path=cache)
            with open(link, "r+b") as f:
                f.write(b"v9")
            exporter.accept_cache_changes("an entry written through a hard link outside")
            samples = parse_metrics(exporter.wait_for(
                lambda s: value(s, "gocache_scan_drift_total", path=cache) == 1,
                timeout=10, what="the verifying walk to count the drift"))
            self.assertEqual(value(samples, "gocache_corrupt_entries", path=cache), corrupt + 1)
            exporter.wait_log("the verifying walk found entries the events had missed")
            self.assert_fresh(exporter, cache, "after the verifying walk")

    def test_a_lost_event_queue_walks_again(self):
        cache = os.path.join(self.tmp, "cache")
        make_cache(cache, 100, random.Random(5))
        with open("/proc/sys/fs/inotify/max_queued_events") as f:
            limit = int(f.read())
        with Exporter(f"--cache.dir={cache}") as exporter:
            self.assert_fresh(exporter, cache, "the first walk")
            # Stopped, the exporter reads no events: more changes than the
            # queue holds (create, modify, close: three events a file).
            exporter.proc.send_signal(signal.SIGSTOP)
            try:
                churn = Churn(cache, 5)
                for _ in range(limit // 3 + 2000):
                    churn.create()
            finally:
                exporter.proc.send_signal(signal.SIGCONT)
            exporter.wait_log("events were lost", timeout=10)
            _, samples = self.assert_fresh(exporter, cache, "after the overflow")
            self.assertGreater(value(samples, "gocache_entries", path=cache, type="action"), limit // 3)
            self.assert_events(samples, cache, exporter)

    def test_the_exporter_changes_nothing_while_it_follows(self):
        cache, _ = copy_go_cache(self.tmp)
        churn = Churn(cache, 9)
        # Files written just now are looked at again each second until their
        # allocation settles, and a verifying walk runs each second.
        with Exporter(f"--cache.dir={cache}", "--scan.verify-interval=1s") as exporter:
            self.assert_fresh(exporter, cache, "the first walk")
            churn.round(40)
            self.assert_fresh(exporter, cache, "churn")
            before = {p: os.stat(p) for p in churn.files()}
            time.sleep(3.5)
            for path, st in before.items():
                now = os.stat(path)
                self.assertEqual((now.st_mtime_ns, now.st_atime_ns, now.st_size, now.st_ctime_ns),
                                 (st.st_mtime_ns, st.st_atime_ns, st.st_size, st.st_ctime_ns),
                                 path)
        # and the exporter's own check of every path's mode, size and mtime
        # passed as the with-block ended.

    def test_permissions_taken_and_given_back(self):
        cache = os.path.join(self.tmp, "cache")
        make_cache(cache, 200, random.Random(12))
        binary = self.world_executable_copy()
        churn = Churn(cache, 12)
        shards = sorted(os.listdir(cache))[:3]
        actions = churn.files("-a")[:4]

        def fresh():  # what the same user's walk reports
            r = run_exporter("--once", f"--cache.dir={cache}", binary=binary, user="nobody")
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            return census_figures(parse_metrics(r.stdout.decode()), cache)

        with Exporter(f"--cache.dir={cache}", binary=binary, user="nobody") as exporter:
            exporter.wait_log("following the cache by events")
            for mode, what in ((0, "locked"), (0o755, "unlocked")):
                for shard in shards:
                    os.chmod(os.path.join(cache, shard), mode)
                for path in actions:
                    os.chmod(path, mode & 0o644)
                exporter.accept_cache_changes(f"the test {what} shards and entries")
                want = fresh()
                got = census_figures(parse_metrics(exporter.wait_for(
                    lambda s: census_figures(s, cache) == want, timeout=FRESH_WITHIN,
                    what=f"the census of the {what} cache")), cache)
                self.assertEqual(got, want)


libc = ctypes.CDLL(None, use_errno=True)


class WithoutEventsTest(TempDirTest):

    def assert_walks_exactly(self, exporter, cache, reason):
        exporter.wait_log("walking it every --scan.interval")
        self.assertIn(reason, exporter.log())
        samples = parse_metrics(exporter.wait_for(
            lambda s: ("gocache_scan_mode", (("mode", "walk"), ("path", cache))) in s,
            what="the first walk"))
        self.assertEqual(value(samples, "gocache_scan_mode", path=cache, mode="walk"), 1)
        self.assertEqual(value(samples, "gocache_scan_mode", path=cache, mode="events"), 0)
        # Every file stays readable to the exporter's user.
        Churn(cache, 11).round(30, [c for c in Churn.CHANGES if c != "chmod"])
        exporter.accept_cache_changes("churn")
        want = census_figures(once_samples(cache), cache)
        got = census_figures(parse_metrics(exporter.wait_for(
            lambda s: census_figures(s, cache) == want, timeout=10,
            what="a walk to see the churn")), cache)
        self.assertEqual(got, want)

    def test_no_inotify_instance_left(self):
        cache = os.path.join(self.tmp, "cache")
        make_cache(cache, 50, random.Random(7))
        # A process of the same user holds every inotify instance it may have.
        # Debian's python3: one under root's home is not the other user's to run.
        holder = subprocess.Popen(as_user("nobody", [
            "/usr/bin/python3", "-c",
            "import ctypes,sys,time\n"
            "libc=ctypes.CDLL(None)\n"
            "n=0\n"
            "while libc.inotify_init()>=0: n+=1\n"
            "print(n,flush=True)\n"
            "time.sleep(120)\n"]), stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.stdout.close)
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        self.assertGreater(int(holder.stdout.readline()), 0)
        binary = self.world_executable_copy()
        with Exporter(f"--cache.dir={cache}", "--scan.interval=200ms", binary=binary,
                      user="nobody") as exporter:
            self.assert_walks_exactly(exporter, cache, "inotify_init1")

    def test_watches_exhausted(self):
        cache = os.path.join(self.tmp, "cache")
        make_cache(cache, 50, random.Random(8))
        knob = "/proc/sys/fs/inotify/max_user_watches"
        with open(knob) as f:
            saved = f.read().strip()
        binary = self.world_executable_copy()
        # Fewer watches than a build cache's 257 directories, for as long as
        # the exporter takes to try.
        with open(knob, "w") as f:
            f.write("100")
        try:
            exporter = Exporter(f"--cache.dir={cache}", "--scan.interval=200ms", binary=binary,
                                user="nobody")
            exporter.wait_log("walking it every --scan.interval")
        finally:
            with open(knob, "w") as f:
                f.write(saved)
        with exporter:
            self.assert_walks_exactly(exporter, cache, "No space left on device")

    def test_no_scan_events_walks(self):
        cache = os.path.join(self.tmp, "cache")
        make_cache(cache, 50, random.Random(9))
        with Exporter(f"--cache.dir={cache}", "--scan.interval=200ms",
                      "--no-scan.events") as exporter:
            samples = parse_metrics(exporter.wait_for(
                lambda s: ("gocache_scan_mode", (("mode", "walk"), ("path", cache))) in s,
                what="the first walk"))
            self.assertEqual(value(samples, "gocache_scan_mode", path=cache, mode="walk"), 1)


if __name__ == "__main__":
    unittest.main()
