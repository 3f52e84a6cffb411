#!/usr/bin/env python3
"""Benchmark (not a test): the census followed by inotify events against the
periodic walks it replaces, on the same cache in the same run.

  bench_events.py EXPORTER CACHE [IDLE_SECONDS]

Two exporters watch CACHE (a synthetic build cache, scripts/bench.sh makes
one of 1,000,000 entries): one follows it by events (the default), one walks
it every IDLE_SECONDS (default 300, the default --scan.interval) as before.
After both finished their first scan it measures:

- their CPU time (utime + stime from /proc) over one idle window of
  IDLE_SECONDS + 15 s, which holds exactly one rescan of the walking one;
- while a real `go build -a std` writes into CACHE (-a: every package is
  compiled and written again, in every run), the following exporter's CPU
  time over the build's wall time, as a share of one core;
- how soon after the build its figures equal a fresh --once walk of the tree
  (every inode and density figure but the age sum, which moves with the clock);
- its peak RSS (VmHWM).

CACHE is written to by the build.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402  (the tests' metric parsing and go environment)

TICKS = os.sysconf("SC_CLK_TCK")
EXACT = {
    "gocache_dir_inodes", "gocache_entries", "gocache_entry_bytes", "gocache_allocated_bytes",
    "gocache_shards", "gocache_shard_entries_min", "gocache_shard_entries_max",
    "gocache_shard_entries_mean", "gocache_shard_entries_stddev", "gocache_shard_dir_bytes",
    "gocache_orphan_entries", "gocache_corrupt_entries", "gocache_entry_age_seconds_bucket",
    "gocache_entry_age_seconds_count", "gocache_entry_size_bytes_bucket",
    "gocache_entry_size_bytes_sum", "gocache_entry_size_bytes_count", "gocache_trimmable_entries",
    "gocache_trimmable_bytes",
}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def status_mib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class Exporter:
    def __init__(self, binary, cache, *flags):
        self.log = tempfile.NamedTemporaryFile(prefix="bench-events-", suffix=".log")
        self.proc = subprocess.Popen([binary, "--web.listen-address=127.0.0.1:0",
                                      f"--cache.dir={cache}", "--collector.disable-defaults",
                                      "--collector.inode", "--collector.density", *flags],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = None
        for _ in range(200):
            with open(self.log.name) as f:
                text = f.read()
            if "ports=" in text:
                self.port = int(text.split("ports=")[1].split()[0])
                break
            time.sleep(0.05)
        if self.port is None:
            raise SystemExit(f"the exporter did not start:\n{text}")

    def samples(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as r:
            return harness.parse_metrics(r.read().decode())

    def wait_first_scan(self, cache, timeout=900):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.samples()
            if any(n == "gocache_entries" and ("path", cache) in ls for n, ls in s):
                return
            time.sleep(0.2)
        raise SystemExit("no first scan")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def figures(samples, cache):
    return {k: v for k, v in samples.items() if k[0] in EXACT and ("path", cache) in k[1]}


def fresh_walk(binary, cache):
    r = subprocess.run([binary, "--once", f"--cache.dir={cache}", "--collector.disable-defaults",
                        "--collector.inode", "--collector.density"], capture_output=True,
                       timeout=900, check=True)
    return figures(harness.parse_metrics(r.stdout.decode()), cache)


def main():
    binary, cache = sys.argv[1], os.path.realpath(sys.argv[2])
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
    events = Exporter(binary, cache)
    walks = Exporter(binary, cache, "--no-scan.events", f"--scan.interval={int(idle)}s")
    t = time.monotonic()
    events.wait_first_scan(cache)
    walks.wait_first_scan(cache)
    print(f"first scans done in {time.monotonic() - t:.1f} s; CPU so far: events "
          f"{cpu_seconds(events.proc.pid):.2f} s, walks {cpu_seconds(walks.proc.pid):.2f} s")

    window = idle + 15
    e0, w0 = cpu_seconds(events.proc.pid), cpu_seconds(walks.proc.pid)
    time.sleep(window)
    e1, w1 = cpu_seconds(events.proc.pid), cpu_seconds(walks.proc.pid)
    walks_rss = status_mib(walks.proc.pid, "VmHWM")
    walks.stop()
    de, dw = e1 - e0, w1 - w0
    print(f"idle window of {window:.0f} s (one rescan of the walking exporter):")
    print(f"  events  CPU {de:8.3f} s")
    print(f"  walks   CPU {dw:8.3f} s")
    print(f"  ratio events/walks: {de / dw if dw else float('nan'):.4f}  (target <= 0.02)")

    with tempfile.TemporaryDirectory(prefix="bench-events-go-") as tmp:
        env = harness.go_env(tmp)
        env["GOCACHE"] = cache
        os.makedirs(env["HOME"], exist_ok=True)
        c0, t0 = cpu_seconds(events.proc.pid), time.monotonic()
        subprocess.run([harness.go_binary(), "build", "-a", "std"], env=env, cwd=tmp, check=True,
                       capture_output=True, timeout=3600)
        build_s, c1 = time.monotonic() - t0, cpu_seconds(events.proc.pid)
        end = time.monotonic()
        seen = []  # (seconds after the build, figures)
        done = threading.Event()

        def watch():
            while not done.is_set():
                seen.append((time.monotonic() - end, figures(events.samples(), cache)))
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        fresh = None
        after = None
        for _ in range(3):  # writeback may change a file's blocks while --once walks
            fresh = fresh_walk(binary, cache)
            after = next((t for t, f in seen if f == fresh), None)
            if after is not None:
                break
        time.sleep(0.5)
        done.set()
        watcher.join()
        after = next((t for t, f in seen if f == fresh), None)
    print(f"go build -a std into the cache: {build_s:.1f} s")
    print(f"  events  CPU {c1 - c0:8.3f} s = {100 * (c1 - c0) / build_s:.2f}% of one core "
          "(target < 10%)")
    if after is None:
        print("  figures never equalled a fresh walk's")
    else:
        print(f"  figures equal a fresh walk's {max(after, 0):.2f} s after the build "
              "(target < 2 s)")
    print(f"peak RSS (VmHWM): events {status_mib(events.proc.pid, 'VmHWM'):.1f} MiB, "
          f"walks {walks_rss:.1f} MiB (target <= 64 MiB)")
    events.stop()


if __name__ == "__main__":
    main()
