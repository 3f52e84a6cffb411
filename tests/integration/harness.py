"""Shared pieces of the integration tests: start the real exporter binary on
an ephemeral 127.0.0.1 port, scrape it over HTTP, parse the exposition, make
real Go caches with the real go toolchain, and prove the caches unchanged."""

import atexit
import gzip
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

EXPORTER = os.environ.get("GOCACHE_EXPORTER", "")
SOURCE_DIR = os.environ.get(
    "GOCACHE_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

# Every wait in these tests is bounded by one of these.
START_TIMEOUT = 20.0
SCRAPE_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def go_binary():
    """The go toolchain the tests build caches with (installed by scripts/install-deps.sh)."""
    for candidate in ("/usr/lib/go-1.23/bin/go", shutil.which("go")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("no go toolchain: run scripts/install-deps.sh")


def tool(name):
    path = shutil.which(name)
    if not path:
        raise AssertionError(f"{name} is not installed: run scripts/install-deps.sh")
    return path


def go_env(tmp):
    """An environment whose go command writes only below tmp and never reaches a network."""
    env = dict(os.environ)
    env.update({
        "HOME": os.path.join(tmp, "home"),
        "GOCACHE": os.path.join(tmp, "cache"),
        "GOMODCACHE": os.path.join(tmp, "mod"),
        "GOPATH": os.path.join(tmp, "gopath"),
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
        "CGO_ENABLED": "0",
        "GOTELEMETRY": "off",
    })
    env.pop("GOROOT", None)
    return env


GO_MAIN = """package main

import (
\t"fmt"
\t"example.com/hello/greet"
)

func main() { fmt.Println(greet.Hello("cache")) }
"""

GO_GREET = """package greet

import "strings"

// Hello greets name.
func Hello(name string) string { return "hello, " + strings.ToUpper(name) }
"""


def make_go_cache(tmp):
    """Builds a small Go program into tmp/cache with the real toolchain; returns the env."""
    env = go_env(tmp)
    src = os.path.join(tmp, "src")
    os.makedirs(os.path.join(src, "greet"), exist_ok=True)
    os.makedirs(env["HOME"], exist_ok=True)
    with open(os.path.join(src, "go.mod"), "w") as f:
        f.write("module example.com/hello\n\ngo 1.19\n")
    with open(os.path.join(src, "main.go"), "w") as f:
        f.write(GO_MAIN)
    with open(os.path.join(src, "greet", "greet.go"), "w") as f:
        f.write(GO_GREET)
    subprocess.run([go_binary(), "build", "-o", os.path.join(tmp, "hello"), "."], cwd=src, env=env,
                   check=True, timeout=600, capture_output=True)
    os.makedirs(env["GOMODCACHE"], exist_ok=True)
    return env


_shared_cache = None


def shared_go_cache():
    """One real cache per test process (building one takes seconds): the
    directory holding cache/, mod/ and the env that made them. Read-only to
    tests; copy it (copy_go_cache) to change it."""
    global _shared_cache
    if _shared_cache is None:
        tmp = tempfile.mkdtemp(prefix="gocache-shared-")
        os.chmod(tmp, 0o755)
        atexit.register(shutil.rmtree, tmp, True)
        _shared_cache = (tmp, make_go_cache(tmp))
    return _shared_cache


def copy_go_cache(dest):
    """Copies the shared cache (mtimes kept) to dest/cache and dest/mod."""
    src, _ = shared_go_cache()
    for name in ("cache", "mod"):
        shutil.copytree(os.path.join(src, name), os.path.join(dest, name), copy_function=shutil.copy2)
    return os.path.join(dest, "cache"), os.path.join(dest, "mod")


def make_big_cache(root, files):
    """A build-cache-shaped tree: 256 shards, empty <64 hex>-d files."""
    os.mkdir(root)
    for shard in range(256):
        os.mkdir(os.path.join(root, f"{shard:02x}"))
    for i in range(files):
        name = f"{i % 256:02x}{i:062x}-d"
        os.close(os.open(os.path.join(root, name[:2], name), os.O_CREAT | os.O_WRONLY, 0o644))
    return 1 + 256 + files


def tree_state(root):
    """Every path below root with its type, size and mtime: what must not change."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    st = os.lstat(root)
    state["."] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return state


def as_user(user, cmd):
    """cmd run as another user, without root's groups."""
    pw = pwd.getpwnam(user)
    return [tool("setpriv"), f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"] + cmd


def find_count(path, user=None):
    """`find PATH | wc -l`, optionally as another user."""
    cmd = [tool("find"), path]
    if user:
        cmd = as_user(user, cmd)
    out = subprocess.run(cmd, capture_output=True, timeout=120).stdout
    return out.count(b"\n")


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse_metrics(text):
    """The samples of a text exposition: {(name, ((label, value), ...)): float}."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError(f"unparsable exposition line: {line!r}")
        labels = tuple(sorted(
            (k, v.encode().decode("unicode_escape")) for k, v in _LABEL.findall(m.group(3) or "")))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def families(text):
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def value(samples, name, **labels):
    """The one sample of `name` whose labels include `labels`."""
    found = [v for (n, ls), v in samples.items()
             if n == name and all((k, str(val)) in ls for k, val in labels.items())]
    if len(found) != 1:
        raise AssertionError(f"want one {name}{labels}, found {len(found)}")
    return found[0]


def promtool_check(text):
    """`promtool check metrics` output: empty when the exposition follows the conventions."""
    r = subprocess.run([tool("promtool"), "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode()


class Exporter:
    """The exporter binary, running on an ephemeral 127.0.0.1 port."""

    def __init__(self, *args, env=None, user=None, binary=None):
        binary = binary or EXPORTER
        if not binary or not os.access(binary, os.X_OK):
            raise AssertionError("GOCACHE_EXPORTER must name the built binary")
        cmd = [binary, "--web.listen-address=127.0.0.1:0", *args]
        if user:
            cmd = as_user(user, cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env or dict(os.environ))
        self.lines = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"msg=listening .*ports=(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if self.port is None:
            self.stop()
            raise AssertionError("exporter did not start:\n" + self.log())

    def _read(self):
        for raw in self.proc.stderr:
            with self._lock:
                self.lines.append(raw.decode(errors="replace"))

    def log(self):
        with self._lock:
            return "".join(self.lines)

    def url(self, path="/metrics"):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path="/metrics", headers=None):
        """(status, headers, body bytes) of one GET."""
        req = urllib.request.Request(self.url(path), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=SCRAPE_TIMEOUT) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def scrape(self):
        status, headers, body = self.get()
        if status != 200:
            raise AssertionError(f"scrape answered {status}")
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return body.decode()

    def wait_for(self, predicate, timeout=30.0, what="condition"):
        """Scrapes until predicate(samples) holds; returns the exposition text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.scrape()
            if predicate(parse_metrics(text)):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last scrape:\n{text}")
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
            raise AssertionError("exporter did not stop on SIGTERM")
        self._reader.join(timeout=STOP_TIMEOUT)
        self.proc.stderr.close()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        code = self.stop()
        if exc[0] is None and code != 0:
            raise AssertionError(f"exporter exited {code}:\n{self.log()}")


def has(name, **labels):
    """A wait_for predicate: a sample of name with these labels exists."""
    def predicate(samples):
        return any(n == name and all((k, str(v)) in ls for k, v in labels.items())
                   for (n, ls) in samples)
    return predicate


def run_exporter(*args, timeout=60, env=None):
    """Runs the exporter to completion (for --once and flag errors)."""
    return subprocess.run([EXPORTER, *args], capture_output=True, timeout=timeout,
                          env=env or dict(os.environ))


class TempDirTest(unittest.TestCase):
    """A test with a fresh world-readable temporary directory in self.tmp."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gocache-test-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for dirpath, dirnames, _ in os.walk(self.tmp):
            for d in dirnames:
                try:
                    os.chmod(os.path.join(dirpath, d), 0o755)
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)
