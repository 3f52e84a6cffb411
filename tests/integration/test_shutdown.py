"""Graceful shutdown: on SIGTERM and on SIGINT the exporter exits 0 within
2 s, even in the middle of a scan of a big cache, of a go list that never
finishes, or of scrapes from many clients, and leaves no process behind:
neither its child nor that child's own children, nor a zombie."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import test_stale
from harness import (STOP_TIMEOUT, Exporter, TempDirTest, action_entry, go_binary, has, hex_id,
                     make_big_cache, parse_metrics, run_exporter, tool, value, write_files)

SHUTDOWN_BOUND = 2.0
SIGNAL_LOGGED = {signal.SIGTERM: "signal=Terminated", signal.SIGINT: "signal=Interrupt"}
# How long what the exporter started may take to be gone once it has exited
# (the last SIGKILL is asynchronous; init reaps the orphans).
GONE_TIMEOUT = 5.0

# The big cache: its first census must last at least SCAN_MIN_SECONDS, so
# that a signal sent at once lands in its middle and an exporter that
# waited for the scan to end would miss the 2 s bound.
SCAN_TARGET_SECONDS = 3.0
SCAN_MIN_SECONDS = 2.5
FIRST_FILES = 300_000
MAX_FILES = 3_000_000
LINKS_PER_SOURCE = 10_000


def executable(pid):
    """The real path of a process's executable; None once it has exited (a
    child of go list can end between the listing and this look)."""
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def add_action_links(root, sources, start, count):
    """Adds `count` action entries, numbered from `start`, to the
    build-cache-shaped tree at root (256 shards): hard links to a few
    175-byte action entries kept in `sources`, outside the cache. The census
    opens and reads every action entry, so each costs the scan what a real
    one costs, while a link costs less to make than a file with contents,
    and no data block (an empty output file, as harness.make_big_cache makes,
    is only stat'ed: about three times as many would be needed). Their
    contents name another ID: the census counts them corrupt."""
    os.makedirs(sources, exist_ok=True)
    for shard in range(256):
        os.makedirs(os.path.join(root, f"{shard:02x}"), exist_ok=True)
    body = action_entry(hex_id("shutdown-action"), hex_id("shutdown-output"), 0)
    source = None
    for i in range(start, start + count):
        if source is None or i % LINKS_PER_SOURCE == 0:
            source = os.path.join(sources, f"action-{i // LINKS_PER_SOURCE}")
            if not os.path.exists(source):
                with open(source, "wb") as f:
                    f.write(body)
        name = f"{i % 256:02x}{i:062x}-a"
        os.link(source, os.path.join(root, name[:2], name))


def once_scan_seconds(cache):
    """The duration of one first census of cache, from `--once`."""
    r = run_exporter("--once", f"--cache.dir={cache}", timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"--once exited {r.returncode}: {r.stderr.decode()}")
    return value(parse_metrics(r.stdout.decode()), "gocache_scan_duration_seconds", path=cache)


def start_time(pid):
    """The process's start time (clock ticks after boot), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError):
        return None


def process_age(pid):
    """Seconds since the process started."""
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_time(pid) / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """{pid: start time} of every process below pid, however deep."""
    found = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except FileNotFoundError:
                continue
            for child in children:
                started = start_time(child)
                if started is not None and child not in found:
                    found[child] = started
                    todo.append(child)
    return found


def describe(pid):
    """'PID STATE ARGS' of a process, for failure messages."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        return f"{pid} gone"
    return f"{pid} {state} {args or '(no command line: a zombie)'}"


def survivors(processes):
    """Those of {pid: start time} that still exist, zombies included."""
    return [pid for pid, started in processes.items() if start_time(pid) == started]


def kill_survivors(processes):
    """Cleanup after a failed test: nothing it started may outlive it."""
    for pid in survivors(processes):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ShutdownAssertions:
    """For TestCases that stop the exporter with a signal themselves."""

    def signal_and_wait(self, exporter, sig):
        """Sends sig; returns (exit code, seconds until the process was gone)."""
        started = time.monotonic()
        exporter.proc.send_signal(sig)
        try:
            code = exporter.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def assert_prompt_clean_exit(self, exporter, sig, code, elapsed):
        log = exporter.log()
        self.assertIsNotNone(code, f"still running {STOP_TIMEOUT} s after {sig.name}:\n{log}")
        self.assertEqual(code, 0, f"exit status after {sig.name}:\n{log}")
        self.assertLess(elapsed, SHUTDOWN_BOUND,
                        f"{sig.name}: exited after {elapsed:.2f} s, not within "
                        f"{SHUTDOWN_BOUND} s:\n{log}")
        self.assertIn(SIGNAL_LOGGED[sig], log)
        self.assertIn('msg="shut down"', log)

    def assert_all_gone(self, processes, what):
        """Every process of {pid: start time} is gone (not even a zombie), within GONE_TIMEOUT."""
        deadline = time.monotonic() + GONE_TIMEOUT
        while survivors(processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = survivors(processes)
        self.assertEqual(left, [], f"{what} left behind:\n"
                         + "\n".join(describe(pid) for pid in left))


class MidScanTest(ShutdownAssertions, unittest.TestCase):
    """A cache whose first census lasts several seconds, on a tmpfs of its
    own (made in about 10 s, and gone at once with the unmount), shared by
    the tests of the class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gocache-shutdown-")
        os.chmod(cls.tmp, 0o755)
        cls.fs = os.path.join(cls.tmp, "fs")
        os.mkdir(cls.fs)
        # Hard links count against a tmpfs's inodes: no limit (nr_inodes=0).
        r = subprocess.run([tool("mount"), "-t", "tmpfs", "-o", "size=64m,nr_inodes=0,mode=755",
                            "gocache-shutdown", cls.fs], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError(f"cannot mount a tmpfs (the test needs root): {r.stderr}")
        try:
            cls.cache = os.path.join(cls.fs, "cache")
            sources = os.path.join(cls.fs, "sources")
            files = FIRST_FILES
            add_action_links(cls.cache, sources, 0, files)
            cls.scan_seconds = once_scan_seconds(cls.cache)
            for _ in range(3):  # a faster machine needs more files
                if cls.scan_seconds >= SCAN_TARGET_SECONDS or files >= MAX_FILES:
                    break
                more = min(MAX_FILES - files,
                           int(files * (SCAN_TARGET_SECONDS * 1.2 / cls.scan_seconds - 1)) + 1)
                add_action_links(cls.cache, sources, files, more)
                files += more
                cls.scan_seconds = once_scan_seconds(cls.cache)
            cls.files = files
            if cls.scan_seconds < SCAN_MIN_SECONDS:
                raise AssertionError(f"a census of {files} entries took only "
                                     f"{cls.scan_seconds:.2f} s: too short to test against")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if subprocess.run([tool("umount"), cls.fs], capture_output=True, timeout=120).returncode:
            subprocess.run([tool("umount"), "-l", cls.fs], capture_output=True, timeout=120)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def stop_mid_first_scan(self, sig):
        # The first scan starts before the exporter listens, so it is under
        # way as soon as Exporter returns.
        with Exporter(f"--cache.dir={self.cache}", "--scan.interval=1h") as exporter:
            samples = parse_metrics(exporter.scrape())
            age = process_age(exporter.proc.pid)
            code, elapsed = self.signal_and_wait(exporter, sig)
            self.assertFalse(
                [k for k in samples if k[0] == "gocache_scan_duration_seconds"],
                "the first scan had finished before the signal: the cache is too small")
            # Sent `age` into a census of scan_seconds: at least a second of it was left.
            self.assertLess(age + 1.0, self.scan_seconds,
                            f"sent {age:.2f} s after the start, into a census of "
                            f"{self.scan_seconds:.2f} s: not clearly mid-scan")
            self.assert_prompt_clean_exit(exporter, sig, code, elapsed)
        print(f"\n{sig.name} {age:.2f} s into a {self.scan_seconds:.1f} s census of "
              f"{self.files} entries: exited 0 after {elapsed * 1000:.0f} ms")

    def test_sigterm_mid_scan(self):
        self.stop_mid_first_scan(signal.SIGTERM)

    def test_sigint_mid_scan(self):
        self.stop_mid_first_scan(signal.SIGINT)


class MidScrapeTest(ShutdownAssertions, TempDirTest):
    """wrk's 50 connections scraping, a few more clients connected that have
    sent half a request (each holds one of the server's threads), and a
    cache being rescanned without a pause."""

    FILES = 20_000
    IDLE_CLIENTS = 4
    CONNECTIONS = 50

    def stop_under_load(self, sig):
        cache = os.path.join(self.tmp, "cache")
        make_big_cache(cache, self.FILES)
        with Exporter(f"--cache.dir={cache}", "--scan.interval=1ms") as exporter:
            exporter.wait_for(has("gocache_scan_duration_seconds", path=cache), timeout=60,
                              what="the first scan")
            wrk = subprocess.Popen(
                [tool("wrk"), "-c", str(self.CONNECTIONS), "-t", "2", "-d", "60s", exporter.url()],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(self.end_wrk, wrk)
            for _ in range(self.IDLE_CLIENTS):
                client = socket.create_connection(("127.0.0.1", exporter.port), timeout=10)
                self.addCleanup(client.close)
                client.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            # The load is being served: scrapes are answered by the hundred.
            served = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                served.append(value(parse_metrics(exporter.scrape()),
                                    "gocache_exporter_http_requests_total", code="200"))
                if len(served) >= 2 and served[-1] - served[0] >= 100:
                    break
                time.sleep(0.2)
            self.assertIsNone(wrk.poll(), "wrk ended early")
            self.assertGreaterEqual(served[-1] - served[0], 100,
                                    f"the load was not being served: {served}")
            code, elapsed = self.signal_and_wait(exporter, sig)
            self.assert_prompt_clean_exit(exporter, sig, code, elapsed)
        print(f"\n{sig.name} under {self.CONNECTIONS} wrk connections and {self.IDLE_CLIENTS} "
              f"half-sent requests, rescanning: exited 0 after {elapsed * 1000:.0f} ms")

    @staticmethod
    def end_wrk(wrk):
        if wrk.poll() is None:
            wrk.terminate()
        try:
            wrk.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            wrk.kill()
            wrk.wait(timeout=STOP_TIMEOUT)

    def test_sigterm_mid_scrape(self):
        self.stop_under_load(signal.SIGTERM)

    def test_sigint_mid_scrape(self):
        self.stop_under_load(signal.SIGINT)


# A go that never finishes: a shell script with a child in the background
# and one in the foreground, the second time ignoring SIGTERM (as its
# children then do), so that only SIGKILL ends them.
HUNG_SCRIPTS = {
    "polite": "SLEEPER 300 &\nSLEEPER 300\n",
    "ignores-sigterm": "trap '' TERM\nSLEEPER 301 &\nSLEEPER 301\n",
}


class MidGoListTest(ShutdownAssertions, test_stale.StaleTest):
    """The stale collector's go list under way when the signal comes."""

    fake_go = test_stale.StaleFailureTest.fake_go

    def setUp(self):
        super().setUp()
        test_stale.init_cache(self.cache)

    def stop_mid_list(self, sig, exporter, processes, what):
        """Signals, checks the exit, and that every process in `processes`
        (the exporter's descendants just before the signal) is gone."""
        code, elapsed = self.signal_and_wait(exporter, sig)
        self.assert_prompt_clean_exit(exporter, sig, code, elapsed)
        self.assert_all_gone(processes, what)
        return elapsed

    def hung_script(self, sig):
        for name, script in HUNG_SCRIPTS.items():
            with self.subTest(go=name):
                directory, go = self.fake_go(f"{sig.name}-{name}", script)
                pattern = directory + "/"
                with self.start(f"--stale.module={self.module}", f"--stale.target={self.target}",
                                "--stale.timeout=5m", f"--stale.go={go}", go=False) as exporter:
                    mine = (exporter.proc.pid,)
                    # The script and both its sleepers run.
                    deadline = time.monotonic() + 10
                    while (len(test_stale.matching_processes(pattern, mine)) < 3
                           and time.monotonic() < deadline):
                        time.sleep(0.05)
                    running = test_stale.matching_processes(pattern, mine)
                    self.assertEqual(len(running), 3, "\n".join(describe(p) for p in running))
                    processes = descendants(exporter.proc.pid)
                    self.addCleanup(kill_survivors, processes)
                    self.assertLessEqual(set(running), set(processes),
                                         "the fake go is not the exporter's")
                    elapsed = self.stop_mid_list(sig, exporter, processes,
                                                 f"the hung go ({name})")
                deadline = time.monotonic() + GONE_TIMEOUT
                while test_stale.matching_processes(pattern) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(test_stale.matching_processes(pattern), [])
                print(f"\n{sig.name} during a hung go list ({name}): exited 0 after "
                      f"{elapsed * 1000:.0f} ms, {len(processes)} process(es) ended")

    def test_sigterm_mid_hung_go_list(self):
        self.hung_script(signal.SIGTERM)

    def test_sigint_mid_hung_go_list(self):
        self.hung_script(signal.SIGINT)

    def real_go_blocked(self, sig):
        # The real go command, stopped for good in the middle of the list: a
        # package's source file is a FIFO nobody writes to, which go list
        # opens to read the package clause.
        module = os.path.join(self.tmp, "fifo-module")
        write_files(module, {
            "go.mod": "module example.com/fifo\n\ngo 1.19\n",
            "main.go": 'package main\n\nimport _ "example.com/fifo/blocked"\n\nfunc main() {}\n',
        })
        os.makedirs(os.path.join(module, "blocked"))
        os.mkfifo(os.path.join(module, "blocked", "blocked.go"))
        go = os.path.realpath(go_binary())
        with self.start(f"--stale.module={module}", f"--stale.target={self.target}",
                        "--stale.timeout=5m") as exporter:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                processes = descendants(exporter.proc.pid)
                listing = [p for p in processes if executable(p) == go]
                if listing and process_age(listing[0]) > 1.0:
                    break
                time.sleep(0.05)
            self.addCleanup(kill_survivors, processes)
            self.assertTrue(listing, "go list never ran")
            samples = parse_metrics(exporter.scrape())
            self.assertFalse([k for k in samples if k[0] == "gocache_stale_list_success"],
                             "the list finished")
            elapsed = self.stop_mid_list(sig, exporter, processes, "go list")
        print(f"\n{sig.name} during a real go list blocked on a FIFO: exited 0 after "
              f"{elapsed * 1000:.0f} ms, {len(processes)} process(es) ended")

    def test_sigterm_mid_real_go_list(self):
        self.real_go_blocked(signal.SIGTERM)

    def test_sigint_mid_real_go_list(self):
        self.real_go_blocked(signal.SIGINT)
