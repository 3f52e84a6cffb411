"""End-to-end golden file, as node_exporter's end-to-end test does it: the
whole /metrics output for a fixed fixture, with volatile values masked,
compared with tests/golden/metrics.txt.

Regenerate after an intended change with `make golden`, and review the diff."""

import os
import re
import shutil

from harness import SOURCE_DIR, Exporter, TempDirTest, has, value

GOLDEN = os.path.join(SOURCE_DIR, "tests", "golden", "metrics.txt")
TRACE_FIXTURES = os.listdir(os.path.join(SOURCE_DIR, "tests", "fixtures", "trace"))

# Families whose values depend on the machine (block and directory sizes of
# its filesystem) or the moment.
VOLATILE_VALUES = re.compile(
    r"^(gocache_filesystem_(?!readonly)\w+|gocache_dir_inode_share_ratio|"
    r"gocache_allocated_bytes|gocache_slack_ratio|gocache_shard_dir_bytes|"
    r"gocache_entry_age_seconds_sum|gocache_scan_duration_seconds|"
    r"gocache_scrape_collector_duration_seconds|gocache_collector_last_success_timestamp_seconds|"
    r"gocache_exporter_http_requests_total)"
    r"(\{.*\})? \S+$")
VOLATILE_LABELS = re.compile(r'\b(version|revision|compiler)="[^"]*"')
# The filesystem the fixture lives on, as a fixture /proc tells the exporter
# (--path.procfs): the mountpoint and fstype labels are compared, not masked.
FIXTURE_FSTYPE = "fixturefs"


def make_fixture(root):
    """A small build cache and module cache with a fixed shape."""
    build = os.path.join(root, "go-build")
    os.makedirs(build)
    with open(os.path.join(build, "README"), "w") as f:
        f.write("This directory holds cached build artifacts from the Go build system.\n")
    with open(os.path.join(build, "trim.txt"), "w") as f:
        f.write("1700000000\n")
    for shard in range(16):
        os.mkdir(os.path.join(build, f"{shard:02x}"))
        for n in range(shard % 4 + 1):
            for suffix in ("-a", "-d"):
                name = f"{shard:02x}{n:062x}{suffix}"
                with open(os.path.join(build, f"{shard:02x}", name), "w") as f:
                    f.write("x" * n)
    mod = os.path.join(root, "pkg", "mod")
    for d in ("cache/download/example.com/m/@v", "example.com/m@v1.0.0/sub"):
        os.makedirs(os.path.join(mod, d))
    with open(os.path.join(mod, "example.com/m@v1.0.0/go.mod"), "w") as f:
        f.write("module example.com/m\n")
    # Traces of a real cold and warm build, as the go command wrote them.
    spool = os.path.join(root, "spool")
    shutil.copytree(os.path.join(SOURCE_DIR, "tests", "fixtures", "trace"), spool)
    # A /proc whose mountinfo puts the fixture on a filesystem of its own
    # (the module cache on another, mounted below it), with the host's root.
    procfs = os.path.join(root, "proc")
    os.makedirs(os.path.join(procfs, "self"))
    real_root = os.path.realpath(root)
    with open(os.path.join(procfs, "self", "mountinfo"), "w") as f:
        f.write("1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
                f"2 1 0:90 / {real_root} rw,nosuid,nodev - {FIXTURE_FSTYPE} fixture rw\n"
                f"3 2 0:91 / {os.path.realpath(mod)} rw - {FIXTURE_FSTYPE}2 fixture2 rw\n")
    return build, mod, spool, procfs


def traces_counted(samples):
    if not has("gocache_trace_files_total")(samples):
        return False
    return sum(value(samples, "gocache_trace_files_total", format=f, result="ok")
               for f in ("actiongraph", "chrome")) == len(TRACE_FIXTURES)


def mask(text, root):
    lines = []
    text = text.replace(os.path.realpath(root), "/FIXTURE").replace(root, "/FIXTURE")
    for line in text.splitlines():
        line = VOLATILE_LABELS.sub(lambda m: f'{m.group(1)}="MASKED"', line)
        if VOLATILE_VALUES.match(line):
            line = line.rsplit(" ", 1)[0] + " MASKED"
        lines.append(line)
    return "\n".join(lines) + "\n"


class GoldenTest(TempDirTest):

    def test_metrics_output_matches_golden_file(self):
        build, mod, spool, procfs = make_fixture(self.tmp)
        with Exporter(f"--cache.dir={build}", f"--modcache.dir={mod}", f"--trace.dir={spool}",
                      "--trace.settle=1ms", "--scan.interval=1h",
                      f"--path.procfs={procfs}") as exporter:
            # Both caches' first scans (on threads of their own), as both the
            # inode and the density collector have rendered them.
            exporter.wait_for(
                lambda s: all(has(name, path=path)(s)
                              for name in ("gocache_dir_inodes", "gocache_scan_mode")
                              for path in (build, mod)), what="first scans")
            exporter.wait_for(traces_counted, what="the trace fixtures")
            got = mask(exporter.scrape(), self.tmp)
        if os.environ.get("GOCACHE_UPDATE_GOLDEN") == "1":
            with open(GOLDEN, "w") as f:
                f.write(got)
        with open(GOLDEN) as f:
            want = f.read()
        self.maxDiff = None
        self.assertEqual(want, got, "regenerate with `make golden` if the change is intended")
