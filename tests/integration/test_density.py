"""The density collector against caches whose contents are known: a
synthetic cache built to a specification, real caches built by the real go
toolchain and then damaged, and the go command's own trim as ground truth."""

import os
import subprocess
import time

from harness import (AGE_BUCKETS, DAY, SIZE_BUCKETS, Exporter, TempDirTest, copy_go_cache, expected_orphans,
                     find_count, go_binary, has, make_synthetic_cache, parse_metrics,
                     shared_go_cache, sum_find, value)


def access_times(root):
    times = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            times[path] = os.lstat(path).st_atime_ns
    return times


def density_ready(path):
    # The inode and density collectors read the scan's snapshot on their own
    # threads, so the scrape during which it is published may show only one.
    density, inodes = has("gocache_scan_duration_seconds", path=path), has("gocache_dir_inodes",
                                                                           path=path)
    return lambda samples: density(samples) and inodes(samples)


class SyntheticCacheTest(TempDirTest):

    def test_every_density_metric_equals_the_known_value(self):
        cache = os.path.join(self.tmp, "cache")
        # Ages are set relative to this moment (however long making the files takes).
        created = time.time()
        want = make_synthetic_cache(cache, pairs=600, shards=200, missing_outputs=7,
                                    orphan_outputs=5, mismatches=3, corrupt=6, shared_outputs=2,
                                    now=created)
        # Listing a directory moves its atime once (relatime: it was not past
        # the mtime); a first walk does that, so that from here on only the
        # exporter's reads could move atimes (Exporter's own walk does not).
        access_times(cache)
        atimes = access_times(cache)
        # Exporter checks that the scan changed no size or mtime in the cache.
        with Exporter(f"--cache.dir={cache}", "--scan.interval=1h") as exporter:
            samples = parse_metrics(exporter.wait_for(density_ready(cache), what="first scan"))
        # atime == mtime, so a plain read would move atime even under relatime;
        # the scan, as the files' owner, reads with O_NOATIME.
        self.assertEqual(atimes, access_times(cache), "the scan changed atimes")

        def v(name, **labels):
            return value(samples, name, path=cache, **labels)

        for t in ("action", "output", "other"):
            self.assertEqual(v("gocache_entries", type=t), want["entries"][t], t)
            self.assertEqual(v("gocache_entry_bytes", type=t), want["entry_bytes"][t], t)
        self.assertEqual(v("gocache_entry_bytes", type="action") + v(
            "gocache_entry_bytes", type="output") + v("gocache_entry_bytes", type="other"),
            sum_find(cache, "%s", "-type", "f"))
        allocated = sum_find(cache, "%b", "-type", "f") * 512
        self.assertEqual(v("gocache_allocated_bytes"), allocated)
        apparent = sum(want["entry_bytes"].values())
        self.assertAlmostEqual(v("gocache_slack_ratio"), 1 - apparent / allocated, places=12)
        self.assertEqual(v("gocache_shards"), 200)
        self.assertEqual(v("gocache_shard_entries_min"), want["shard_min"])
        self.assertEqual(v("gocache_shard_entries_max"), want["shard_max"])
        self.assertAlmostEqual(v("gocache_shard_entries_mean"), want["shard_mean"], places=9)
        self.assertAlmostEqual(v("gocache_shard_entries_stddev"), want["shard_stddev"], places=9)
        self.assertAlmostEqual(v("gocache_shard_imbalance_ratio"),
                               want["shard_stddev"] / want["shard_mean"], places=9)
        self.assertEqual(v("gocache_shard_dir_bytes"),
                         sum_find(cache, "%s", "-mindepth", "1", "-maxdepth", "1", "-type", "d",
                                  "-name", "[0-9a-f][0-9a-f]"))
        for kind in ("action_without_output", "output_without_action", "size_mismatch"):
            self.assertEqual(v("gocache_orphan_entries", type=kind), want[kind], kind)
        self.assertEqual(v("gocache_corrupt_entries"), want["corrupt"])
        for bound, count in zip(AGE_BUCKETS, want["age_buckets"]):
            self.assertEqual(v("gocache_entry_age_seconds_bucket", le=f"{bound}"), count, bound)
        self.assertEqual(v("gocache_entry_age_seconds_bucket", le="+Inf"), want["age_count"])
        self.assertEqual(v("gocache_entry_age_seconds_count"), want["age_count"])
        # Ages are taken at the scan's start, a few seconds after creation.
        drift = (time.time() - created) * want["age_count"]
        self.assertGreaterEqual(v("gocache_entry_age_seconds_sum"), want["age_sum_at_creation"])
        self.assertLessEqual(v("gocache_entry_age_seconds_sum"),
                             want["age_sum_at_creation"] + drift + want["age_count"])
        self.assertEqual(v("gocache_trimmable_entries"), want["trimmable_entries"])
        self.assertEqual(v("gocache_trimmable_bytes"), want["trimmable_bytes"])
        self.assertEqual(v("gocache_last_trim_timestamp_seconds"), want["last_trim"])
        self.assertEqual(v("gocache_scan_errors_total"), 0)
        self.assertGreater(v("gocache_scan_duration_seconds"), 0)
        self.assertEqual(value(samples, "gocache_dir_inodes", path=cache), find_count(cache))
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="density"), 1)

    def test_missing_trim_file_leaves_the_timestamp_absent(self):
        cache = os.path.join(self.tmp, "cache")
        make_synthetic_cache(cache, pairs=10, shards=16, trim_time=None)
        with Exporter(f"--cache.dir={cache}") as exporter:
            samples = parse_metrics(exporter.wait_for(density_ready(cache), what="first scan"))
        self.assertFalse(has("gocache_last_trim_timestamp_seconds")(samples))
        self.assertEqual(value(samples, "gocache_scrape_collector_success", collector="density"), 1)


class RealCacheDensityTest(TempDirTest):

    def scan(self, cache, mod=None):
        args = [f"--cache.dir={cache}", "--scan.interval=1h"]
        if mod:
            args.append(f"--modcache.dir={mod}")
        with Exporter(*args) as exporter:  # which checks that the scan changed nothing
            samples = parse_metrics(exporter.wait_for(density_ready(cache), what="first scan"))
        return samples

    def test_real_cache_matches_find_and_has_no_broken_entries(self):
        cache, mod = copy_go_cache(self.tmp)
        samples = self.scan(cache, mod)
        files = int(subprocess.run(["find", cache, "-type", "f"], capture_output=True,
                                   check=True).stdout.count(b"\n"))
        entries = sum(value(samples, "gocache_entries", path=cache, type=t)
                      for t in ("action", "output", "other"))
        self.assertEqual(entries, files)
        for suffix, t in (("-a", "action"), ("-d", "output")):
            self.assertEqual(value(samples, "gocache_entries", path=cache, type=t),
                             find_count_matching(cache, f"*{suffix}"))
            self.assertEqual(value(samples, "gocache_entry_bytes", path=cache, type=t),
                             sum_find(cache, "%s", "-type", "f", "-name", f"*{suffix}"))
            # Sizes by find's own test: -size -Nc is "fewer than N bytes".
            for bound in SIZE_BUCKETS:
                self.assertEqual(
                    value(samples, "gocache_entry_size_bytes_bucket", path=cache, type=t,
                          le=f"{bound}"),
                    find_count_matching(cache, f"*{suffix}", "-size", f"-{bound + 1}c"),
                    (t, bound))
            self.assertEqual(
                value(samples, "gocache_entry_size_bytes_bucket", path=cache, type=t, le="+Inf"),
                find_count_matching(cache, f"*{suffix}"))
            self.assertEqual(value(samples, "gocache_entry_size_bytes_sum", path=cache, type=t),
                             sum_find(cache, "%s", "-type", "f", "-name", f"*{suffix}"))
        self.assertGreater(value(samples, "gocache_entries", path=cache, type="action"), 20)
        # The real outputs spread over several size buckets.
        output_sizes = [value(samples, "gocache_entry_size_bytes_bucket", path=cache,
                              type="output", le=f"{bound}") for bound in SIZE_BUCKETS]
        self.assertGreater(len(set(output_sizes)), 3)
        self.assertEqual(value(samples, "gocache_allocated_bytes", path=cache),
                         sum_find(cache, "%b", "-type", "f") * 512)
        for kind, count in expected_orphans(cache).items():
            self.assertEqual(count, 0, kind)
        for kind in ("action_without_output", "output_without_action", "size_mismatch"):
            self.assertEqual(value(samples, "gocache_orphan_entries", path=cache, type=kind), 0)
        self.assertEqual(value(samples, "gocache_corrupt_entries", path=cache), 0)
        self.assertEqual(value(samples, "gocache_shards", path=cache), 256)
        self.assertEqual(value(samples, "gocache_entry_bytes", path=mod, type="other"),
                         sum_find(mod, "%s", "-type", "f"))

    def test_damage_is_counted_exactly(self):
        cache, _ = copy_go_cache(self.tmp)
        outputs = sorted(os.path.join(dp, n) for dp, _, ns in os.walk(cache) for n in ns
                         if n.endswith("-d") and os.path.getsize(os.path.join(dp, n)) > 0)
        actions = sorted(os.path.join(dp, n) for dp, _, ns in os.walk(cache) for n in ns
                         if n.endswith("-a"))
        for path in outputs[:3]:
            os.remove(path)  # outputs deleted
        for path in outputs[3:5]:
            os.truncate(path, os.path.getsize(path) - 1)  # torn writes
        for path in actions[:2]:
            with open(path, "r+b") as f:
                f.write(b"v9")  # corrupt headers
        with open(actions[2], "ab") as f:
            f.write(b"\n")  # too long
        want = expected_orphans(cache)
        self.assertEqual(want["corrupt"], 3)
        self.assertGreater(want["action_without_output"] + want["size_mismatch"], 0)
        samples = self.scan(cache)
        self.assertEqual(value(samples, "gocache_corrupt_entries", path=cache), want["corrupt"])
        for kind in ("action_without_output", "output_without_action", "size_mismatch"):
            self.assertEqual(value(samples, "gocache_orphan_entries", path=cache, type=kind),
                             want[kind], kind)


def find_count_matching(path, pattern, *predicates):
    out = subprocess.run(["find", path, "-type", "f", "-name", pattern, *predicates],
                         capture_output=True, check=True).stdout
    return out.count(b"\n")


class GoTrimTest(TempDirTest):
    """The go command's own trim is the ground truth for gocache_trimmable_*."""

    def test_trimmable_entries_are_what_the_go_command_trims(self):
        cache, _ = copy_go_cache(self.tmp)
        src, env = shared_go_cache()
        env = dict(env, GOCACHE=cache)
        entries = sorted(os.path.join(dp, n) for dp, _, ns in os.walk(cache) for n in ns
                         if n.endswith("-a") or n.endswith("-d"))
        aged = entries[::7][:12]
        old = time.time() - 6 * DAY
        for path in aged:
            os.utime(path, (old, old))
        trim_time = int(time.time() - 2 * DAY)
        with open(os.path.join(cache, "trim.txt"), "w") as f:
            f.write(f"{trim_time}")
        aged_bytes = sum(os.path.getsize(p) for p in aged)

        with Exporter(f"--cache.dir={cache}", "--scan.interval=300ms") as exporter:
            samples = parse_metrics(exporter.wait_for(density_ready(cache), what="first scan"))
            self.assertEqual(value(samples, "gocache_trimmable_entries", path=cache), len(aged))
            self.assertEqual(value(samples, "gocache_trimmable_bytes", path=cache), aged_bytes)
            self.assertEqual(value(samples, "gocache_last_trim_timestamp_seconds", path=cache),
                             trim_time)
            # A real build: the go command trims its cache when it is done.
            subprocess.run([go_binary(), "build", "-o", os.path.join(self.tmp, "hello"), "."],
                           cwd=os.path.join(src, "src"), env=env, check=True, timeout=600,
                           capture_output=True)
            exporter.accept_cache_changes("a go build (and its trim) ran on the cache")
            with open(os.path.join(cache, "trim.txt")) as f:
                go_trim_time = int(f.read().strip())
            self.assertGreater(go_trim_time, trim_time, "the go command did not trim")
            samples = parse_metrics(exporter.wait_for(
                lambda s: value(s, "gocache_last_trim_timestamp_seconds", path=cache)
                == go_trim_time, what="a scan after the trim"))
        self.assertEqual(value(samples, "gocache_trimmable_entries", path=cache), 0)
        self.assertEqual(value(samples, "gocache_trimmable_bytes", path=cache), 0)
        self.assertTrue(all(not os.path.exists(p) or os.path.getmtime(p) > old + DAY
                            for p in aged), "aged entries are gone or were used again")


class ConcurrentBuildTest(TempDirTest):

    def test_scanning_while_the_go_command_writes(self):
        cache, _ = copy_go_cache(self.tmp)
        src, env = shared_go_cache()
        env = dict(env, GOCACHE=cache)
        with Exporter(f"--cache.dir={cache}", "--scan.interval=1ms") as exporter:
            exporter.wait_for(density_ready(cache), what="first scan")
            # -a rebuilds every package: hundreds of new entries while we scan.
            subprocess.run([go_binary(), "build", "-a", "-o", os.path.join(self.tmp, "hello"),
                            "."], cwd=os.path.join(src, "src"), env=env, check=True, timeout=900,
                           capture_output=True)
            exporter.accept_cache_changes("a go build -a wrote to the cache during the scans")
            samples = parse_metrics(exporter.scrape())
            self.assertEqual(value(samples, "gocache_scan_errors_total", path=cache), 0)
            # Once the build is over, a full scan sees every entry it wrote.
            want = find_count(cache)
            exporter.wait_for(lambda s: value(s, "gocache_dir_inodes", path=cache) == want,
                              what="a scan after the build")
