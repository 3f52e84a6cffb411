"""The companion commands `check` and `trim` and the exporter's opt-in
automatic trim, against real build caches made by the real go toolchain:
copied to temporary directories, or onto a tmpfs with a known inode count
(the tests run as root, here and in CI). What a trim must remove is computed
here, independently, from the files; a real go build must still work after
it, and during it."""

import collections
import json
import math
import os
import random
import re
import shutil
import stat
import subprocess
import time

from harness import (DAY, Exporter, TempDirTest, copy_go_cache, expected_orphans,
                     go_binary, has, parse_action_entry, parse_metrics, run_exporter,
                     shared_go_cache, tree_state, value)

# The fill level of the small tmpfs: past a 0.90 trigger, short of 0.97.
FILL = 0.93
ENTRY_NAME = re.compile(r"([0-9a-f]{64})-([ad])")
REMOVED = re.compile(r": (removed|would remove) (\d+) entries \((\d+) actions, (\d+) outputs\), "
                     r"([^,]+), (\d+) inodes; (?:left|would leave) (\d+) entries in ([^,]+), "
                     r"inode usage ([^;\n]+)")


def cache_entries(cache):
    """{"<shard>/<name>": (size, mtime_ns)} of every regular action and output
    file in a shard directory (a real one, on the cache's filesystem), named
    for that shard: what a trim may remove."""
    found = {}
    device = os.lstat(cache).st_dev
    for shard in sorted(os.listdir(cache)):
        d = os.path.join(cache, shard)
        st = os.lstat(d)
        if (not re.fullmatch(r"[0-9a-f]{2}", shard) or not stat.S_ISDIR(st.st_mode) or
                st.st_dev != device):
            continue
        for name in os.listdir(d):
            st = os.lstat(os.path.join(d, name))
            if ENTRY_NAME.fullmatch(name) and name[:2] == shard and stat.S_ISREG(st.st_mode):
                found[f"{shard}/{name}"] = (st.st_size, st.st_mtime_ns)
    return found


def entry_bytes(cache):
    return sum(size for size, _ in cache_entries(cache).values())


def lru_removals(cache, max_bytes=None, cutoff_ns=None, max_inode_usage=None):
    """What a trim must remove, least recently used first, until the entries
    hold at most max_bytes, none was last used before cutoff_ns, and the
    filesystem uses at most max_inode_usage of its inodes: each action with
    the output it names when no surviving action still names that output;
    each output that no action names, alone."""
    entries = cache_entries(cache)
    output_of, references = {}, collections.Counter()
    for rel in entries:
        if not rel.endswith("-a"):
            continue
        with open(os.path.join(cache, rel), "rb") as f:
            data = f.read()
        output_of[rel] = None
        # "v1 <action id> <output id> <size> <time>\n": 175 bytes, the output
        # ID at 68..132, hex of either case (the go command's hex.Decode); the
        # output file is named in lowercase.
        if len(data) == 175 and parse_action_entry(data, rel[3:67]) is not None:
            output = data[68:132].decode().lower()
            out_rel = f"{output[:2]}/{output}-d"
            if out_rel in entries:
                output_of[rel] = out_rel
                references[out_rel] += 1
    units = [rel for rel in entries if rel.endswith("-a") or references[rel] == 0]
    units.sort(key=lambda rel: (entries[rel][1], rel[3:67]))
    total = sum(size for size, _ in entries.values())
    st = os.statvfs(cache)
    used = st.f_files - st.f_ffree
    removed = []
    for unit in units:
        if ((max_bytes is None or total <= max_bytes) and
                (cutoff_ns is None or entries[unit][1] >= cutoff_ns) and
                (max_inode_usage is None or used / st.f_files <= max_inode_usage)):
            break
        for rel in (unit, output_of.get(unit)):
            if rel is None:
                continue
            if rel != unit:
                references[rel] -= 1
                if references[rel] > 0:  # a surviving action still names it
                    continue
            removed.append(rel)
            total -= entries[rel][0]
            used -= 1
    return removed


def spread_mtimes(cache, seed):
    """Gives every entry its own mtime, days apart from the oldest to the
    newest, in a random order unrelated to the go command's: {rel: mtime_ns}."""
    rels = sorted(cache_entries(cache))
    order = random.Random(seed).sample(range(len(rels)), len(rels))
    base = time.time_ns() - 4 * DAY * 10**9
    step = (3 * DAY * 10**9) // max(1, len(rels))
    mtimes = {}
    for rel, i in zip(rels, order):
        mtimes[rel] = base + i * step + 1234
        os.utime(os.path.join(cache, rel), ns=(mtimes[rel], mtimes[rel]))
    return mtimes


def metrics_once(cache):
    """The exporter's metrics for the cache, from `--once`."""
    r = run_exporter("--once", f"--cache.dir={cache}", timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"--once exited {r.returncode}: {r.stderr.decode()}")
    return parse_metrics(r.stdout.decode())


def command(*args, timeout=120, env=None, cache_changes=None):
    """(exit status, stdout, stderr) of `gocache_exporter ARGS` (check, trim),
    which run_exporter proves left the cache alone unless cache_changes says
    why it may not."""
    r = run_exporter(*args, timeout=timeout, env=env, cache_changes=cache_changes)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def go_build(cache, out, *flags, timeout=600):
    """A real go build of the shared sources with GOCACHE=cache."""
    src, env = shared_go_cache()
    return subprocess.run([go_binary(), "build", *flags, "-o", out, "."],
                          cwd=os.path.join(src, "src"), env=dict(env, GOCACHE=cache),
                          capture_output=True, text=True, timeout=timeout)


class TrimTestCase(TempDirTest):

    def mount_small_filesystem(self, inodes):
        """A tmpfs with exactly `inodes` inodes."""
        mnt = self.mount_tmpfs(f"size=256m,nr_inodes={inodes},mode=755", name="gocache-trim")
        self.assertEqual(os.statvfs(mnt).f_files, inodes)
        return mnt

    def filled_tmpfs(self):
        """A copy of a real cache on a tmpfs it fills to about FILL of the
        inodes: (cache on the tmpfs, mount point, pristine copy elsewhere)."""
        pristine, _ = copy_go_cache(os.path.join(self.tmp, "pristine"))
        inodes_needed = sum(1 + len(files) for _, _, files in os.walk(pristine))
        inodes = math.ceil((inodes_needed + 1) / FILL)
        mnt = self.mount_small_filesystem(inodes)
        cache = os.path.join(mnt, "go-build")
        shutil.copytree(pristine, cache, copy_function=shutil.copy2)
        ratio = inode_usage(mnt)
        self.assertGreaterEqual(ratio, 0.92)
        self.assertLess(ratio, 0.95)
        return cache, mnt, pristine

    def trim(self, cache, *args, codes=(0,)):
        """A trim; a dry run is proven to change nothing in the cache."""
        code, out, err = command(
            "trim", f"--cache.dir={cache}", *args,
            cache_changes=None if "--dry-run" in args else "the trim command removes entries")
        self.assertIn(code, codes, f"trim {args} exited {code}:\n{out}{err}")
        return code, out, err

    def assertBuilds(self, cache, *flags):
        out = os.path.join(self.tmp, "hello")
        r = go_build(cache, out, *flags)
        self.assertEqual(r.returncode, 0, f"go build {flags} failed:\n{r.stderr}")
        ran = subprocess.run([out], capture_output=True, text=True, timeout=30)
        self.assertEqual(ran.stdout, "hello, CACHE\n")


def inode_usage(path):
    st = os.statvfs(path)
    return (st.f_files - st.f_ffree) / st.f_files


class CheckTest(TrimTestCase):

    def test_exit_codes_and_messages_on_a_real_cache(self):
        cache, _ = copy_go_cache(self.tmp)
        total = entry_bytes(cache)
        code, out, err = command("check", f"--cache.dir={cache}")
        self.assertEqual((code, err), (0, ""), out)
        self.assertRegex(out, rf"^{re.escape(cache)}: inode usage [0-9.]+%, .* free: ok\n$")

        # --max-bytes lists the entries: exactly the bound holds, one byte less does not.
        code, out, _ = command("check", f"--cache.dir={cache}", f"--max-bytes={total}")
        self.assertEqual(code, 0, out)
        self.assertIn(f", {len(cache_entries(cache))} entries in ", out)
        self.assertTrue(out.rstrip().endswith(": ok"), out)
        code, out, _ = command("check", f"--cache.dir={cache}", f"--max-bytes={total - 1}")
        self.assertEqual(code, 1, out)
        self.assertIn(": FAIL; entries hold ", out)
        # Decimal and binary units: k MB < the entry bytes < k MiB.
        k = total // 10**6
        self.assertTrue(k * 10**6 < total < k * 2**20, f"the cache holds {total} bytes")
        self.assertEqual(command("check", f"--cache.dir={cache}", f"--max-bytes={k}MiB")[0], 0)
        code, out, _ = command("check", f"--cache.dir={cache}", f"--max-bytes={k}MB")
        self.assertEqual(code, 1, out)
        self.assertIn(f"> {k * 10**6 / 2**20:.1f} MiB", out)
        self.assertEqual(command("check", f"--cache.dir={cache}", "--max-bytes=10GiB")[0], 0)

        # Free space above what the filesystem has: crossed.
        code, out, _ = command("check", f"--cache.dir={cache}", "--min-free-bytes=1000TiB")
        self.assertEqual(code, 1, out)
        self.assertIn(": FAIL; free space ", out)
        self.assertEqual(command("check", f"--cache.dir={cache}", "--min-free-bytes=1")[0], 0)

        # Without --cache.dir: the cache the go command uses.
        env = dict(os.environ, GOCACHE=cache,
                   PATH=os.path.dirname(go_binary()) + os.pathsep + os.environ.get("PATH", ""))
        code, out, err = command("check", timeout=60, env=env)
        self.assertEqual((code, out.split(": ")[0]), (0, cache), out + err)
        code, out, err = command("check", timeout=60, env=dict(env, GOCACHE="off"))
        self.assertEqual(code, 2, out + err)
        self.assertIn("give --cache.dir", err)

        # A cache that cannot be read beats a crossed threshold; each cache has its line.
        missing = os.path.join(self.tmp, "missing")
        code, out, _ = command("check", f"--cache.dir={cache}", f"--cache.dir={missing}",
                               "--max-bytes=1")
        self.assertEqual(code, 3, out)
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, out)
        self.assertTrue(lines[0].startswith(f"{cache}: ") and "FAIL" in lines[0], out)
        self.assertEqual(lines[1], f"{missing}: cannot read: {missing}: No such file or directory")
        code, out, _ = command("check", f"--cache.dir={missing}", "--format=json")
        self.assertEqual(code, 3)
        doc = json.loads(out)
        self.assertFalse(doc["healthy"])
        self.assertEqual(doc["caches"][0]["path"], missing)
        self.assertIn("No such file or directory", doc["caches"][0]["error"])

        # Usage errors: exit 2, nothing on stdout, a message naming the flag.
        for args, names in ((["--max-inode-usage=2"], "--max-inode-usage '2'"),
                            (["--max-inode-usage=0"], "--max-inode-usage '0'"),
                            (["--max-inode-usage=0.9x"], "--max-inode-usage '0.9x'"),
                            (["--max-bytes=lots"], "--max-bytes 'lots'"),
                            (["--min-free-bytes=-5"], "--min-free-bytes '-5'"),
                            (["--format=xml"], "--format 'xml'"),
                            (["--bogus"], "unknown flag --bogus"),
                            (["--max-bytes"], "--max-bytes"),
                            (["stray"], "unexpected argument 'stray'")):
            with self.subTest(args=args):
                code, out, err = command("check", f"--cache.dir={cache}", *args)
                self.assertEqual(code, 2, out + err)
                self.assertEqual(out, "")
                self.assertIn(names, err)
                # The exporter's own style: one line, plain quotes.
                self.assertTrue(err.startswith("gocache_exporter check: error: "), err)
                self.assertTrue(err.endswith(" (see gocache_exporter check --help)\n"), err)
                self.assertEqual(err.count("\n"), 1, err)
                self.assertFalse(set(err) & {"\u2018", "\u2019"}, err)
        for args, names in ((["--max-bytes=lots"], "--max-bytes 'lots'"),
                            (["--max-age=soon"], "--max-age 'soon'"),
                            (["--max-inode-usage=1.5"], "--max-inode-usage '1.5'"),
                            ([], "--max-bytes, --max-inode-usage, --max-age"),
                            (["--max-bytes=1", "--bogus"], "unknown flag --bogus"),
                            (["--max-bytes=1", f"--cache.dir={cache}"],
                             "--cache.dir given more than once")):
            with self.subTest(trim=args):
                # Not given cache_changes: command proves the cache unchanged.
                code, out, err = command("trim", f"--cache.dir={cache}", *args)
                self.assertEqual(code, 2, out + err)
                self.assertIn(names, err)
                self.assertTrue(err.startswith("gocache_exporter trim: error: "), err)
                self.assertEqual(err.count("\n"), 1, err)
        code, _, err = command("trim", f"--cache.dir={missing}", "--max-bytes=1")
        self.assertEqual(code, 3, err)
        self.assertIn(missing, err)

    def test_inode_threshold_on_a_small_filesystem_and_json_matches_the_exporter(self):
        cache, mnt, _ = self.filled_tmpfs()
        # Some entries past the go command's trim cutoff: trimmable.
        old = time.time() - 6 * DAY
        aged = sorted(cache_entries(cache))[::9]
        for rel in aged:
            os.utime(os.path.join(cache, rel), (old, old))
        ratio = inode_usage(mnt)

        code, out, _ = command("check", f"--cache.dir={cache}", "--max-inode-usage=0.95")
        self.assertEqual(code, 0, out)
        self.assertRegex(out, rf"^{re.escape(cache)}: inode usage {ratio * 100:.1f}%, "
                              r"[0-9.]+ MiB free: ok\n$")
        code, out, _ = command("check", f"--cache.dir={cache}", "--max-inode-usage=0.9")
        self.assertEqual(code, 1, out)
        self.assertTrue(out.rstrip().endswith(f": FAIL; inode usage {ratio * 100:.1f}% > 90.0%"),
                        out)
        # Every crossing is named, in one line.
        code, out, _ = command("check", f"--cache.dir={cache}", "--max-inode-usage=0.9",
                               "--max-bytes=1KiB", "--min-free-bytes=1TiB")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"FAIL; inode usage [0-9.]+% > 90.0%; entries hold .* > 1.0 KiB; "
                              r"free space .* < 1.0 TiB\n$")

        code, out, _ = command("check", f"--cache.dir={cache}", "--max-inode-usage=0.9",
                               "--max-bytes=10GiB", "--format=json")
        self.assertEqual(code, 1, out)
        doc = json.loads(out)
        self.assertFalse(doc["healthy"])
        (got,) = doc["caches"]
        self.assertEqual(got["path"], cache)
        self.assertFalse(got["healthy"])
        self.assertEqual(len(got["crossed"]), 1)
        self.assertIn("inode usage", got["crossed"][0])
        st = os.statvfs(mnt)
        self.assertEqual(got["files"], st.f_files)
        self.assertEqual(got["files_free"], st.f_ffree)
        self.assertEqual(got["avail_bytes"], st.f_bavail * st.f_frsize)
        entries = cache_entries(cache)
        self.assertEqual(got["entries"], len(entries))
        self.assertEqual(got["entry_bytes"], sum(size for size, _ in entries.values()))
        self.assertEqual(got["trimmable_entries"], len(aged))

        samples = metrics_once(cache)

        def v(name, **labels):
            return value(samples, name, path=cache, **labels)

        # The tmpfs is quiet: the same statvfs, exactly.
        self.assertEqual(got["inode_usage_ratio"], v("gocache_filesystem_inode_usage_ratio"))
        self.assertEqual(got["files"], v("gocache_filesystem_files"))
        self.assertEqual(got["files_free"], v("gocache_filesystem_files_free"))
        self.assertEqual(got["entries"], v("gocache_entries", type="action") +
                         v("gocache_entries", type="output"))
        self.assertEqual(got["entry_bytes"], v("gocache_entry_bytes", type="action") +
                         v("gocache_entry_bytes", type="output"))
        self.assertEqual(got["trimmable_entries"], v("gocache_trimmable_entries"))

        # Healthy in JSON too; without --max-bytes, no entry counts.
        code, out, _ = command("check", f"--cache.dir={cache}", "--format=json")
        self.assertEqual(code, 0, out)
        doc = json.loads(out)
        self.assertTrue(doc["healthy"])
        self.assertTrue(doc["caches"][0]["healthy"])
        self.assertEqual(doc["caches"][0]["crossed"], [])
        self.assertNotIn("entries", doc["caches"][0])


class TrimCommandTest(TrimTestCase):

    def test_max_bytes_removes_exactly_the_least_recently_used_units(self):
        cache, _ = copy_go_cache(self.tmp)
        mtimes = spread_mtimes(cache, seed=10)
        before = cache_entries(cache)
        self.assertEqual({rel: m for rel, (_, m) in before.items()}, mtimes)
        total = sum(size for size, _ in before.values())
        bound = total // 2
        want = lru_removals(cache, bound)
        self.assertTrue(want, "the bound removes nothing")
        with open(os.path.join(cache, "trim.txt"), "rb") as f:
            trim_txt = f.read()

        # A dry run in JSON predicts it.
        _, dry, _ = self.trim(cache, f"--max-bytes={bound}", "--dry-run", "--format=json")
        dry = json.loads(dry)
        self.assertEqual((dry["removed"]["entries"], dry["removed"]["actions"], dry["dry_run"],
                          dry["bounds_met"], dry["unreachable"]),
                         (len(want), sum(1 for r in want if r.endswith("-a")), True, True, []))
        self.assertEqual(dry["removed"]["entry_bytes"], sum(before[r][0] for r in want))
        self.assertEqual(dry["after"]["entries"], len(before) - len(want))

        code, out, err = self.trim(cache, f"--max-bytes={bound}")
        self.assertEqual(err, "")
        after = cache_entries(cache)
        self.assertLessEqual(sum(size for size, _ in after.values()), bound)
        self.assertEqual(sorted(set(before) - set(after)), sorted(want))
        self.assertEqual(set(after) - set(before), set())
        # What stays is untouched.
        self.assertEqual({rel: before[rel] for rel in after}, after)
        m = REMOVED.search(out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.group(1), "removed")
        self.assertEqual(int(m.group(2)), len(want))
        self.assertEqual(int(m.group(3)), sum(1 for r in want if r.endswith("-a")))
        self.assertEqual(int(m.group(4)), sum(1 for r in want if r.endswith("-d")))
        self.assertEqual(int(m.group(6)), len(want))
        self.assertEqual(int(m.group(7)), len(after))
        with open(os.path.join(cache, "trim.txt"), "rb") as f:
            self.assertEqual(f.read(), trim_txt)

        # No action lost its output.
        self.assertEqual(expected_orphans(cache)["action_without_output"], 0)
        self.assertEqual(expected_orphans(cache)["corrupt"], 0)
        samples = metrics_once(cache)
        self.assertEqual(value(samples, "gocache_orphan_entries", path=cache,
                               type="action_without_output"), 0)
        self.assertEqual(value(samples, "gocache_entry_bytes", path=cache, type="action") +
                         value(samples, "gocache_entry_bytes", path=cache, type="output"),
                         sum(size for size, _ in after.values()))

        # Trimmed again to the same bound: nothing more to remove.
        code, out, _ = self.trim(cache, f"--max-bytes={bound}")
        self.assertIn(f"{cache}: nothing to remove; left {len(after)} entries", out)
        self.assertEqual(cache_entries(cache), after)

        # The go command still builds with what is left.
        self.assertBuilds(cache)

    def test_max_age_removes_what_was_unused_for_longer(self):
        cache, _ = copy_go_cache(self.tmp)
        mtimes = sorted(spread_mtimes(cache, seed=11).values())
        # A cutoff halfway between two entries' mtimes, minutes from either.
        middle = len(mtimes) // 2
        cutoff = (mtimes[middle - 1] + mtimes[middle]) // 2
        age = (time.time_ns() - cutoff) // 10**9
        cutoff = time.time_ns() - age * 10**9  # as the trim will see it, give or take seconds
        want = lru_removals(cache, cutoff_ns=cutoff)
        before = cache_entries(cache)
        self.trim(cache, f"--max-age={age}s")
        after = cache_entries(cache)
        self.assertEqual(sorted(set(before) - set(after)), sorted(want))
        # Every action unused since the cutoff is gone; what is older and
        # stays is an output a newer action still names.
        for rel, (_, mtime) in before.items():
            if rel.endswith("-a"):
                self.assertEqual(rel in after, mtime >= cutoff, rel)
        self.assertTrue(any(m < cutoff for rel, (_, m) in after.items()),
                        "no old output stayed: the test shows less than it could")
        self.assertEqual(expected_orphans(cache)["action_without_output"], 0)
        self.assertEqual(expected_orphans(cache)["output_without_action"], 0)

    def test_never_touches_links_other_files_or_trim_txt(self):
        cache, _ = copy_go_cache(self.tmp)
        outside = os.path.join(self.tmp, "outside")
        os.mkdir(outside)
        target = os.path.join(outside, "precious")
        with open(target, "wb") as f:
            f.write(b"not the cache's\n" * 100)
        target_a = os.path.join(outside, "precious-a")
        some_action = sorted(r for r in cache_entries(cache) if r.endswith("-a"))[0]
        shutil.copy2(os.path.join(cache, some_action), target_a)
        old = time.time() - 30 * DAY
        for p in (target, target_a):
            os.utime(p, (old, old))
        link_d = "3c" + "5" * 62
        link_a = "3c" + "6" * 62
        planted = {
            f"3c/{link_d}-d": target,  # symbolic links named like entries
            f"3c/{link_a}-a": target_a,
            f"3d/{'d' * 64}-d": target,  # named for another shard, and a link
        }
        for rel, to in planted.items():
            os.symlink(to, os.path.join(cache, rel))
            os.utime(os.path.join(cache, rel), (old, old), follow_symlinks=False)
        # Not entries: inside shards and beside them.
        others = {
            "00/notes.txt": b"a note\n",
            f"00/{'0' * 64}-x": b"x",
            f"00/{'0' * 64}-d.tmp": b"partial",
            f"00/{'0' * 63}-d": b"short",
            f"00/{'0' * 62}AB-d": b"upper case",
            f"00/sub/{'0' * 64}-d": b"nested",
            "README": None,  # the go command's own
            "trim.txt": None,
            f"{'0' * 64}-d": b"top level",
            "fuzz/example.com/pkg/FuzzX/0123456789abcdef": b"go test fuzz v1\n",
            f"fuzz/{'1' * 64}-d": b"fuzz",
        }
        for rel, data in others.items():
            path = os.path.join(cache, rel)
            if data is not None:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            os.utime(path, (old, old))
        os.mkdir(os.path.join(cache, "01", "0" + "1" * 63 + "-d"))  # a directory named as one
        # A shard that is a symbolic link to a directory of entries elsewhere.
        moved = os.path.join(outside, "fe-elsewhere")
        os.rename(os.path.join(cache, "fe"), moved)
        entry = "fe" + "7" * 62
        with open(os.path.join(moved, entry + "-d"), "wb") as f:
            f.write(b"elsewhere")
        os.symlink(moved, os.path.join(cache, "fe"))
        # A shard that is another filesystem's mount point: not entered.
        mounted = os.path.join(cache, "fd")
        for name in os.listdir(mounted):
            os.unlink(os.path.join(mounted, name))
        self.mount_tmpfs("size=1m,mode=755", mnt=mounted, name="gocache-shard")
        entry = "fd" + "8" * 62
        with open(os.path.join(mounted, entry + "-d"), "wb") as f:
            f.write(b"another filesystem")
        os.utime(os.path.join(mounted, entry + "-d"), (old, old))
        with open(os.path.join(cache, "trim.txt"), "rb") as f:
            trim_txt = f.read()
        trim_st = os.stat(os.path.join(cache, "trim.txt"))
        entries = cache_entries(cache)
        outside_before = tree_state(outside)
        keep = {p: s for p, s in tree_state(cache).items() if p not in entries and
                not re.fullmatch(r"[0-9a-f]{2}|\.", p)}  # shard dirs change as entries go
        self.assertGreater(len(keep), len(planted) + len(others))

        # Entries of any age may go (the copy's were used minutes ago).
        code, out, err = self.trim(cache, "--max-bytes=1", "--keep-recent=0s")
        self.assertEqual(err, "")
        self.assertEqual(cache_entries(cache), {}, "every entry goes")
        self.assertIn(f"removed {len(entries)} entries", out)
        left = tree_state(cache)
        self.assertEqual({p: left.get(p) for p in keep}, keep)
        self.assertEqual(outside_before, tree_state(outside))
        for rel, to in planted.items():
            self.assertEqual(os.readlink(os.path.join(cache, rel)), to)
        self.assertEqual(os.readlink(os.path.join(cache, "fe")), moved)
        self.assertTrue(os.path.ismount(mounted))
        with open(os.path.join(cache, "trim.txt"), "rb") as f:
            self.assertEqual(f.read(), trim_txt)
        st = os.stat(os.path.join(cache, "trim.txt"))
        self.assertEqual((st.st_mtime_ns, st.st_ino), (trim_st.st_mtime_ns, trim_st.st_ino))
        self.assertEqual(sorted(os.listdir(cache)), sorted(
            [f"{i:02x}" for i in range(256)] + ["README", "trim.txt", "0" * 64 + "-d", "fuzz"]))

    def test_concurrent_build_with_repeated_trims(self):
        cache, _ = copy_go_cache(self.tmp)
        bound = entry_bytes(cache) // 2
        src, env = shared_go_cache()
        build = subprocess.Popen(
            [go_binary(), "build", "-a", "-o", os.path.join(self.tmp, "hello-a"), "."],
            cwd=os.path.join(src, "src"), env=dict(env, GOCACHE=cache), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: build.poll() is None and build.kill())
        removed = []  # entries each trim removed
        deadline = time.monotonic() + 300
        while build.poll() is None and len(removed) < 300 and time.monotonic() < deadline:
            code, out, err = self.trim(cache, f"--max-bytes={bound}", "--keep-recent=0s",
                                       codes=(0, 1))
            self.assertNotIn("cannot", err)
            m = REMOVED.search(out)
            removed.append(int(m.group(2)) if m else 0)
            time.sleep(0.1)
        _, stderr = build.communicate(timeout=600)
        self.assertEqual(build.returncode, 0,
                         f"go build -a failed after {len(removed)} trims:\n{stderr}")
        self.assertGreaterEqual(len(removed), 3, "the build ended before the trims could race it")
        # Not only the first trim: later ones removed what the build wrote meanwhile.
        self.assertGreater(sum(removed[1:]), 0, removed)
        ran = subprocess.run([os.path.join(self.tmp, "hello-a")], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(ran.stdout, "hello, CACHE\n")
        # One more trim after the build, then builds from what is left.
        self.trim(cache, f"--max-bytes={bound}", "--keep-recent=0s")
        self.assertEqual(expected_orphans(cache)["action_without_output"], 0)
        self.assertBuilds(cache)

    def test_dry_run_changes_nothing_and_predicts_the_real_run(self):
        cache, _ = copy_go_cache(self.tmp)
        spread_mtimes(cache, seed=12)
        bound = entry_bytes(cache) // 3
        before = tree_state(cache)
        # self.trim proves that the dry run changed nothing in the cache.
        code, dry, err = self.trim(cache, f"--max-bytes={bound}", "--max-age=60h", "--dry-run")
        self.assertEqual(err, "")
        code, real, err = self.trim(cache, f"--max-bytes={bound}", "--max-age=60h")
        self.assertEqual(err, "")
        d, r = REMOVED.search(dry), REMOVED.search(real)
        self.assertIsNotNone(d, dry)
        self.assertIsNotNone(r, real)
        self.assertEqual((d.group(1), r.group(1)), ("would remove", "removed"))
        self.assertEqual(d.groups()[1:8], r.groups()[1:8], f"{dry}\n{real}")
        self.assertEqual(len(cache_entries(cache)), int(r.group(7)))
        self.assertNotEqual(before, tree_state(cache))

    def test_dry_run_predicts_inode_usage_on_a_small_filesystem(self):
        cache, mnt, _ = self.filled_tmpfs()
        spread_mtimes(cache, seed=13)
        _, dry, _ = self.trim(cache, "--max-inode-usage=0.85", "--dry-run")  # changes nothing
        want = lru_removals(cache, max_inode_usage=0.85)
        entries = cache_entries(cache)
        _, real, _ = self.trim(cache, "--max-inode-usage=0.85")
        self.assertLessEqual(inode_usage(mnt), 0.85)
        self.assertEqual(sorted(set(entries) - set(cache_entries(cache))), sorted(want))
        d, r = REMOVED.search(dry), REMOVED.search(real)
        self.assertIsNotNone(d, dry)
        self.assertIsNotNone(r, real)
        self.assertEqual(d.groups()[1:], r.groups()[1:], f"{dry}\n{real}")
        self.assertEqual(r.group(9), f"{inode_usage(mnt) * 100:.1f}%")
        self.assertEqual(expected_orphans(cache)["action_without_output"], 0)

    def test_a_bound_out_of_reach_removes_nothing_and_exits_1_naming_it(self):
        cache, mnt, _ = self.filled_tmpfs()
        spread_mtimes(cache, seed=18)  # every entry days old: any may go
        before = tree_state(cache)
        # The 256 shard directories alone use more than 30% of the inodes:
        # removing every entry cannot meet the bound, so none goes.
        code, out, err = self.trim(cache, "--max-inode-usage=0.3", codes=(1,))
        self.assertEqual(err, "")
        floor = (os.statvfs(mnt).f_files - os.statvfs(mnt).f_ffree - len(cache_entries(cache)))
        floor /= os.statvfs(mnt).f_files
        self.assertIn(f"{cache}: nothing to remove; ", out)
        self.assertIn(f"; --max-inode-usage 30.0% cannot be reached (removing every entry unused "
                      f"for --keep-recent would leave {floor * 100:.1f}%): nothing removed for it",
                      out)
        self.assertTrue(out.rstrip().endswith("; a bound still does not hold"), out)
        self.assertEqual(tree_state(cache), before)
        # The same in JSON.
        code, out, err = self.trim(cache, "--max-inode-usage=0.3", "--format=json", codes=(1,))
        doc = json.loads(out)
        self.assertEqual((doc["path"], doc["dry_run"], doc["bounds_met"], doc["removed"]["entries"]),
                         (cache, False, False, 0))
        [unreachable] = doc["unreachable"]
        self.assertEqual((unreachable["flag"], unreachable["limit"]), ("--max-inode-usage", 0.3))
        self.assertAlmostEqual(unreachable["floor"], floor, places=4)
        self.assertEqual(doc["before"]["entries"], len(cache_entries(cache)))
        self.assertEqual(doc["after"], doc["before"])
        self.assertEqual(tree_state(cache), before)
        code, out, _ = command("check", f"--cache.dir={cache}", "--max-inode-usage=0.3")
        self.assertEqual(code, 1, out)
        # A byte bound beside it is still met: the bound in reach is served.
        bound = entry_bytes(cache) // 2
        want = lru_removals(cache, bound)
        entries = cache_entries(cache)
        code, out, _ = self.trim(cache, "--max-inode-usage=0.3", f"--max-bytes={bound}",
                                 codes=(1,))
        self.assertEqual(sorted(set(entries) - set(cache_entries(cache))), sorted(want))
        self.assertIn("--max-inode-usage 30.0% cannot be reached", out)
        self.assertNotIn("--max-bytes", out)

    def test_recently_used_entries_stay_for_a_byte_bound(self):
        cache, _ = copy_go_cache(self.tmp)
        now = time.time_ns()
        # Half the entries with an mtime 3 h old, half 90 min: the go command
        # refreshes an mtime at most hourly, so those may have been used
        # within the last hour, and the default --keep-recent=1h keeps them.
        rels = sorted(cache_entries(cache))
        for i, rel in enumerate(rels):
            t = now - (3 * 3600 if i % 2 else 90 * 60) * 10**9
            os.utime(os.path.join(cache, rel), ns=(t, t))
        entries = cache_entries(cache)
        old_units = lru_removals(cache, cutoff_ns=now - 2 * 3600 * 10**9)
        self.assertTrue(old_units)
        recent_bytes = entry_bytes(cache) - sum(entries[rel][0] for rel in old_units)
        self.assertGreater(recent_bytes, 0)
        # A byte short of what removing every old unit leaves: out of reach,
        # nothing goes.
        before = tree_state(cache)
        code, out, _ = self.trim(cache, f"--max-bytes={recent_bytes - 1}", codes=(1,))
        self.assertIn(f"{cache}: nothing to remove; ", out)
        self.assertIn("--max-bytes ", out)
        self.assertIn(" cannot be reached", out)
        self.assertEqual(tree_state(cache), before)
        # At it: exactly the old units go, and the bound holds.
        code, out, _ = self.trim(cache, f"--max-bytes={recent_bytes}")
        self.assertEqual(sorted(set(entries) - set(cache_entries(cache))), sorted(old_units))
        self.assertEqual(entry_bytes(cache), recent_bytes)
        # --keep-recent=0s lets the trim take any entry.
        self.trim(cache, "--max-bytes=1", "--keep-recent=0s")
        self.assertEqual(cache_entries(cache), {})

    # A regression test, end to end: at 5356801 the trim decoded the output ID
    # inside an action entry as lowercase hex only (cache_trim.cc HexValue/
    # IdOf), while buildcache::ParseActionEntry and the go command's
    # hex.Decode accept either case. An action naming its output in uppercase
    # hex, a hit for the go command and paired by the density collector, was
    # linked to no output: the output became a unit of its own, removed by its
    # older mtime while the newer action stayed, and
    # gocache_orphan_entries{type="action_without_output"} went from 0 to 1.
    # Fixed in 813afbe.
    def test_an_output_named_in_upper_case_hex_stays_with_its_action(self):
        cache, _ = copy_go_cache(self.tmp)
        spread_mtimes(cache, seed=17)
        entries = cache_entries(cache)
        names = collections.Counter()
        pairs = {}
        for rel in entries:
            if rel.endswith("-a"):
                with open(os.path.join(cache, rel), "rb") as f:
                    output = parse_action_entry(f.read(), rel[3:67])[0]
                names[output] += 1
                pairs[rel] = f"{output[:2]}/{output}-d"
        # An action that alone names a non-empty output with letters in its ID.
        action = next(a for a, o in sorted(pairs.items()) if names[o[3:67]] == 1 and
                      entries[o][0] > 0 and re.search("[a-f]", o[3:67]))
        output = pairs[action]
        path = os.path.join(cache, action)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:68] + data[68:132].upper() + data[132:])
        newest = max(m for _, m in entries.values()) + 10**9
        oldest = min(m for _, m in entries.values()) - 10**9
        os.utime(path, ns=(newest, newest))
        os.utime(os.path.join(cache, output), ns=(oldest, oldest))
        samples = metrics_once(cache)
        self.assertEqual(value(samples, "gocache_orphan_entries", path=cache,
                               type="action_without_output"), 0)
        self.assertEqual(expected_orphans(cache)["action_without_output"], 0)

        # One unit must go: the least recently used one, not this action's output.
        total = entry_bytes(cache)
        want = lru_removals(cache, total - 1)
        self.assertNotIn(output, want)
        self.trim(cache, f"--max-bytes={total - 1}")
        samples = metrics_once(cache)
        self.assertTrue(os.path.exists(os.path.join(cache, action)))
        self.assertEqual(
            {"output kept": os.path.exists(os.path.join(cache, output)),
             "action_without_output": value(samples, "gocache_orphan_entries", path=cache,
                                            type="action_without_output")},
            {"output kept": True, "action_without_output": 0},
            "the trim removed an output that a surviving action names")
        self.assertEqual(sorted(set(entries) - set(cache_entries(cache))), sorted(want))


def trim_metrics(exporter, cache):
    samples = parse_metrics(exporter.scrape())
    return {name: value(samples, f"gocache_trim_{name}", path=cache)
            for name in ("runs_total", "removed_entries_total", "removed_bytes_total")}


class AutoTrimTest(TrimTestCase):

    def test_inode_trigger_trims_once_to_the_target(self):
        cache, mnt, pristine = self.filled_tmpfs()
        spread_mtimes(cache, seed=14)
        with open(os.path.join(cache, "trim.txt"), "rb") as f:
            trim_txt = f.read()
        trim_mtime = os.stat(os.path.join(cache, "trim.txt")).st_mtime_ns
        before = cache_entries(cache)
        self.assertGreaterEqual(inode_usage(mnt), 0.9)
        want = lru_removals(cache, max_inode_usage=0.9 * 0.9)
        started = time.time()
        with Exporter(f"--cache.dir={cache}", "--trim.auto-inode-usage=0.9",
                      "--trim.check-interval=1s",
                      cache_changes="automatic trimming removes entries; the test puts them back"
                      ) as exporter:
            samples = parse_metrics(exporter.wait_for(
                lambda s: has("gocache_trim_runs_total", path=cache)(s) and
                value(s, "gocache_trim_runs_total", path=cache) >= 1, timeout=30,
                what="the first automatic trim"))
            ended = time.time()
            self.assertEqual(value(samples, "gocache_trim_runs_total", path=cache), 1)
            self.assertLessEqual(inode_usage(mnt), 0.9 * 0.9)
            after = cache_entries(cache)
            gone = set(before) - set(after)
            self.assertEqual(sorted(gone), sorted(want))
            self.assertEqual(set(after) - set(before), set())
            self.assertEqual(value(samples, "gocache_trim_removed_entries_total", path=cache),
                             len(gone))
            self.assertEqual(value(samples, "gocache_trim_removed_bytes_total", path=cache),
                             sum(before[rel][0] for rel in gone))
            last = value(samples, "gocache_trim_last_run_timestamp_seconds", path=cache)
            self.assertGreaterEqual(last, started)
            self.assertLessEqual(last, ended)
            # Least recently used first: nothing left is older than what went,
            # but for outputs a surviving action still names.
            newest_gone = max(before[rel][1] for rel in gone if rel.endswith("-a"))
            self.assertTrue(all(m > newest_gone for rel, (_, m) in after.items()
                                if rel.endswith("-a")))
            self.assertEqual(expected_orphans(cache)["action_without_output"], 0)
            with open(os.path.join(cache, "trim.txt"), "rb") as f:
                self.assertEqual(f.read(), trim_txt)
            self.assertEqual(os.stat(os.path.join(cache, "trim.txt")).st_mtime_ns, trim_mtime)

            # Filled past the trigger again: no second trim within --trim.min-interval.
            for rel in gone:
                shutil.copy2(os.path.join(pristine, rel), os.path.join(cache, rel))
            self.assertGreaterEqual(inode_usage(mnt), 0.9)
            refilled = cache_entries(cache)
            time.sleep(4)  # four checks
            self.assertEqual(trim_metrics(exporter, cache)["runs_total"], 1)
            self.assertEqual(cache_entries(cache), refilled)
            self.assertEqual(exporter.log().count('msg="trimming cache"'), 1, exporter.log())

    def test_bytes_trigger_trims_once_the_scan_sees_the_bytes(self):
        cache, _ = copy_go_cache(self.tmp)
        spread_mtimes(cache, seed=15)
        before = cache_entries(cache)
        total = sum(size for size, _ in before.values())
        trigger = total // 2
        want = lru_removals(cache, int(trigger * 0.9))
        started = time.time()
        with Exporter(f"--cache.dir={cache}", f"--trim.auto-bytes={trigger}",
                      "--scan.interval=1s", "--trim.check-interval=1s",
                      cache_changes="automatic trimming removes entries") as exporter:
            samples = parse_metrics(exporter.wait_for(
                lambda s: has("gocache_trim_runs_total", path=cache)(s) and
                value(s, "gocache_trim_runs_total", path=cache) >= 1, timeout=30,
                what="the automatic trim"))
            self.assertEqual(value(samples, "gocache_trim_runs_total", path=cache), 1)
            after = cache_entries(cache)
            left = sum(size for size, _ in after.values())
            self.assertLessEqual(left, int(trigger * 0.9))
            gone = set(before) - set(after)
            self.assertEqual(sorted(gone), sorted(want))
            self.assertEqual(value(samples, "gocache_trim_removed_entries_total", path=cache),
                             len(gone))
            self.assertEqual(value(samples, "gocache_trim_removed_bytes_total", path=cache),
                             sum(before[rel][0] for rel in gone))
            self.assertGreaterEqual(
                value(samples, "gocache_trim_last_run_timestamp_seconds", path=cache), started)
            # The next scans see the trim.
            exporter.wait_for(
                lambda s: value(s, "gocache_entry_bytes", path=cache, type="action") +
                value(s, "gocache_entry_bytes", path=cache, type="output") == left, timeout=30,
                what="a scan after the trim")
            time.sleep(2)
            self.assertEqual(trim_metrics(exporter, cache)["runs_total"], 1)
        self.assertEqual(expected_orphans(cache)["action_without_output"], 0)

    def test_an_inode_target_out_of_reach_removes_nothing_and_fails_the_collector(self):
        # Other files hold most of the filesystem's inodes: the cache's
        # entries are too few for any trim of them to bring the usage from
        # past the 0.9 trigger down to the 0.81 target.
        pristine, _ = copy_go_cache(os.path.join(self.tmp, "pristine"))
        cache_inodes = sum(1 + len(files) for _, _, files in os.walk(pristine))
        inodes = max(4000, cache_inodes * 20)
        mnt = self.mount_small_filesystem(inodes)
        cache = os.path.join(mnt, "go-build")
        shutil.copytree(pristine, cache, copy_function=shutil.copy2)
        spread_mtimes(cache, seed=19)  # days old: age keeps none of them
        filler = os.path.join(mnt, "other")
        os.mkdir(filler)
        for i in range(int(inodes * FILL) - (inodes - os.statvfs(mnt).f_ffree)):
            open(os.path.join(filler, str(i)), "w").close()
        self.assertGreaterEqual(inode_usage(mnt), 0.9)
        entries = len(cache_entries(cache))
        self.assertGreater(inode_usage(mnt) - entries / inodes, 0.81)

        def unreachable(s):
            return value(s, "gocache_trim_unreachable_total", path=cache, bound="inodes")

        # Exporter proves that the trims removed nothing.
        with Exporter(f"--cache.dir={cache}", "--trim.auto-inode-usage=0.9",
                      "--trim.check-interval=1s", "--trim.min-interval=3s") as exporter:
            samples = parse_metrics(exporter.wait_for(
                lambda s: has("gocache_trim_unreachable_total", path=cache, bound="inodes")(s)
                and unreachable(s) >= 1, timeout=30, what="an automatic trim out of reach"))
            self.assertEqual(value(samples, "gocache_trim_runs_total", path=cache), 1)
            self.assertEqual(value(samples, "gocache_trim_removed_entries_total", path=cache), 0)
            self.assertEqual(value(samples, "gocache_trim_unreachable_total", path=cache,
                                   bound="bytes"), 0)
            # Failing, and staying failed between trims, with one warning.
            for _ in range(4):
                samples = parse_metrics(exporter.scrape())
                self.assertEqual(value(samples, "gocache_scrape_collector_success",
                                       collector="trim"), 0)
                time.sleep(1)
            self.assertGreaterEqual(unreachable(samples), 2)  # tried again after 3s
            log = exporter.log()
            self.assertIn("level=warn", log)
            self.assertIn("cannot be reached", log)
            self.assertEqual(log.count("cannot be reached"), 1, log)
            self.assertEqual(len(cache_entries(cache)), entries)
            # Below the trigger again: the collector recovers.
            shutil.rmtree(filler)
            exporter.wait_for(
                lambda s: value(s, "gocache_scrape_collector_success", collector="trim") == 1,
                timeout=30, what="the trim collector to recover")
            exporter.wait_log('msg="collector recovered" collector=trim')

    def test_without_a_trigger_the_exporter_writes_nothing(self):
        cache, mnt, _ = self.filled_tmpfs()
        spread_mtimes(cache, seed=16)
        # Exporter proves that, with no trigger, the exporter wrote nothing.
        with Exporter(f"--cache.dir={cache}", "--scan.interval=1s", "--trim.check-interval=1s",
                      "--trim.min-interval=1s") as exporter:
            exporter.wait_for(has("gocache_entries", path=cache), what="the first scan")
            time.sleep(3)
            text = exporter.scrape()
        self.assertNotIn("gocache_trim_", text)
        self.assertGreaterEqual(inode_usage(mnt), 0.9)


if __name__ == "__main__":
    import unittest
    unittest.main()
