"""Shared pieces of the integration tests: start the real exporter binary on
an ephemeral 127.0.0.1 port, scrape it over HTTP, parse the exposition, make
real Go caches with the real go toolchain, and prove the caches unchanged."""

import atexit
import fcntl
import gzip
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
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


GO_1_23_ROOT = "/usr/lib/go-1.23"
TOOLS_DIR = os.environ.get("GOCACHE_TOOLS_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(EXPORTER or ".")), "tools")


def cacheprog_go():
    """A go 1.23 that speaks GOCACHEPROG, built once per build folder
    (scripts/build-go-cacheprog.sh; about half a minute the first time).
    Run it with cacheprog_env()."""
    target = os.path.join(TOOLS_DIR, "go-cacheprog")
    if not os.access(target, os.X_OK):
        os.makedirs(TOOLS_DIR, exist_ok=True)
        with open(os.path.join(TOOLS_DIR, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build when suites run at once
            r = subprocess.run([os.path.join(SOURCE_DIR, "scripts", "build-go-cacheprog.sh"),
                                TOOLS_DIR], capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise AssertionError(f"cannot build the GOCACHEPROG go: {r.stderr[-2000:]}")
    return target


def cacheprog_env(tmp):
    """go_env(tmp) for cacheprog_go(): its GOROOT is Debian's go 1.23."""
    env = go_env(tmp)
    env["GOROOT"] = GO_1_23_ROOT
    return env


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


def write_files(root, files):
    """Writes {relative path: text} below root, making directories."""
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


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
    """Every path at and below root (files, directories, symbolic links, any
    other node; links below root are not followed, mount points are entered)
    with its (st_mode: type and permission bits, size, mtime in ns): what
    must not change. Keys are relative to root, "." being root itself; {}
    when root does not exist. A directory that cannot be listed is recorded
    as "<dir>/*" with the error number, so that it cannot pass for an empty
    one."""
    state = {}
    try:
        st = os.stat(root)
    except FileNotFoundError:
        try:
            st = os.lstat(root)  # a dangling link
        except FileNotFoundError:
            return state
    state["."] = (st.st_mode, st.st_size, st.st_mtime_ns)
    if not stat.S_ISDIR(st.st_mode):
        return state

    def unreadable(err):
        state[os.path.join(os.path.relpath(err.filename, root), "*")] = ("unreadable", err.errno)

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # removed since it was listed
                continue
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return state


def _describe_node(node):
    if node is None:
        return "absent"
    if node[0] == "unreadable":
        return f"unreadable ({os.strerror(node[1])})"
    mode, size, mtime_ns = node
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mtime_ns // 10**9))
    return f"{stat.filemode(mode)} {size} B mtime {when}.{mtime_ns % 10**9:09d}Z"


def tree_changes(before, after, limit=10):
    """(every changed path, lines describing the first `limit`) between two
    tree_state()s: paths that appeared, went, or changed type, mode, size or
    mtime."""
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    lines = [f"  {p}: {_describe_node(before.get(p))} -> {_describe_node(after.get(p))}"
             for p in changed[:limit]]
    if len(changed) > limit:
        lines.append(f"  ... and {len(changed) - limit} more")
    return changed, lines


_CACHE_FLAGS = ("--cache.dir", "--modcache.dir")


def cache_dirs(args, env=None):
    """The cache directories a command line of the exporter acts on, as
    absolute paths: every --cache.dir and --modcache.dir value (`--flag=value`
    or `--flag value`); when neither flag is given and an environment is,
    the caches the exporter (or `check`/`trim`) finds from it: GOCACHE, else
    $XDG_CACHE_HOME/go-build, else $HOME/.cache/go-build (none for
    GOCACHE=off), and, when serving or with --once, GOMODCACHE, else the
    first $GOPATH entry's pkg/mod, else $HOME/go/pkg/mod. (The go env that
    the exporter asks when go is on PATH answers the same for these test
    environments.) Without an environment the exporter would watch the
    host's own caches, which are not the test's and which other processes on
    the machine may be using: they are not recorded. --trace.dir, the spool,
    is not a cache: the exporter renames files there by design."""
    args = list(args)
    dirs = []
    i = 0
    while i < len(args):
        arg = args[i]
        for flag in _CACHE_FLAGS:
            if arg.startswith(flag + "="):
                dirs.append(arg[len(flag) + 1:])
            elif arg == flag and i + 1 < len(args):
                i += 1
                dirs.append(args[i])
        i += 1
    if not dirs and env:
        home = env.get("HOME", "")
        build = env.get("GOCACHE") or (
            os.path.join(env["XDG_CACHE_HOME"], "go-build") if env.get("XDG_CACHE_HOME")
            else os.path.join(home, ".cache", "go-build") if home else "")
        if build and build != "off":
            dirs.append(build)
        if not (args and args[0] in ("check", "trim")):
            gopath = env.get("GOPATH", "").split(":")[0] or (
                os.path.join(home, "go") if home else "")
            mod = env.get("GOMODCACHE") or (os.path.join(gopath, "pkg", "mod") if gopath else "")
            if mod:
                dirs.append(mod)
    found = []
    for d in dirs:
        if d and os.path.abspath(d) not in found:
            found.append(os.path.abspath(d))
    return found


class CacheWatch:
    """The read-only promise for one run of the exporter: the state of every
    cache directory it is given, recorded before it starts, must be the state
    when it is done. cache_changes, a few words saying why, turns the
    comparison off for a run during which the test or the exporter changes a
    cache on purpose (a trim, automatic trimming)."""

    def __init__(self, args, env, cache_changes, what):
        if cache_changes is not None and not (isinstance(cache_changes, str)
                                              and cache_changes.strip()):
            raise AssertionError("cache_changes must say, in a few words, why the cache changes")
        self.reason = cache_changes
        self.what = what
        self.dirs = [] if cache_changes else cache_dirs(args, env)
        self.before = {}
        self.accept("start")

    def accept(self, reason):
        """What the caches hold now is the new baseline (the test changed
        them itself, for a reason given)."""
        if not (isinstance(reason, str) and reason.strip()):
            raise AssertionError("say why the test changed the cache")
        self.before = {d: tree_state(d) for d in self.dirs}

    def check(self):
        """Fails, naming the first changed paths, when a cache changed."""
        problems = []
        for d in self.dirs:
            changed, lines = tree_changes(self.before[d], tree_state(d))
            if changed:
                plural = "s" if len(changed) != 1 else ""
                problems.append(f"{d}: {len(changed)} changed path{plural}:\n" + "\n".join(lines))
        if problems:
            raise AssertionError(
                f"the read-only promise broke: a cache changed during {self.what}\n"
                + "\n".join(problems)
                + "\n(a test that changes the cache itself says so: cache_changes=\"why\", "
                "or exporter.accept_cache_changes(\"why\") right after the change)")


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


def readme_families():
    """The metric names the README's metric table lists."""
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        return set(re.findall(r"^\| `?([a-z_:]+)`? \|", f.read(), re.M))


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
    """The exporter binary, running on an ephemeral 127.0.0.1 port.

    The read-only promise is checked for every run: the state of each cache
    directory it is given (see cache_dirs) is recorded before it starts and,
    when the with-block ends without an exception, must be unchanged: no file
    or directory appeared or went, none changed type, mode, size or mtime.
    A test whose own actions change a cache says why: cache_changes="..."
    turns the comparison off for the whole run (trimming), and
    accept_cache_changes("...") right after a change the test makes takes
    the caches as they are then as the new baseline."""

    def __init__(self, *args, env=None, user=None, binary=None, cache_changes=None):
        binary = binary or EXPORTER
        if not binary or not os.access(binary, os.X_OK):
            raise AssertionError("GOCACHE_EXPORTER must name the built binary")
        self.caches = CacheWatch(args, env, cache_changes, f"gocache_exporter {' '.join(args)}")
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

    def wait_log(self, text, timeout=10.0):
        """Waits until the log holds `text`: a line logged before a scrape
        answered may reach the reader thread after the answer. Returns the log."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {text!r} in the log:\n{self.log()}")
            time.sleep(0.05)
        return self.log()

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

    def accept_cache_changes(self, reason):
        """The test changed a cache itself (a go build, a copy, a deletion):
        from now on, nothing may change in the caches as they are now."""
        self.caches.accept(reason)

    def check_caches(self):
        """Fails when a cache changed since the start (or the last
        accept_cache_changes); done by a with-block's clean exit, to be called
        by a test that does not use one."""
        self.caches.check()

    def __exit__(self, *exc):
        code = self.stop()
        if exc[0] is None:
            if code != 0:
                raise AssertionError(f"exporter exited {code}:\n{self.log()}")
            self.check_caches()


def has(name, **labels):
    """A wait_for predicate: a sample of name with these labels exists."""
    def predicate(samples):
        return any(n == name and all((k, str(v)) in ls for k, v in labels.items())
                   for (n, ls) in samples)
    return predicate


def run_exporter(*args, timeout=60, env=None, cache_changes=None, binary=None, user=None):
    """Runs the exporter to completion (--once, flag errors, and the check
    and trim commands), and checks, whatever its exit status, that no cache
    it was given changed (see Exporter; cache_changes says why one may, as a
    trim's does). binary and user as for Exporter."""
    caches = CacheWatch(args, env, cache_changes, f"gocache_exporter {' '.join(args)}")
    cmd = [binary or EXPORTER, *args]
    if user:
        cmd = as_user(user, cmd)
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env or dict(os.environ))
    caches.check()
    return r


def free_port():
    """A 127.0.0.1 port nothing listens on (closed again before it is returned)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, data=None, timeout=10):
    with urllib.request.urlopen(url, data=data, timeout=timeout) as r:
        return json.loads(r.read())


class Process:
    """A server the tests run (Prometheus, Alertmanager), its output in a log file."""

    def __init__(self, name, cmd, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()

    def output(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]


class Prometheus(Process):
    """Debian's Prometheus on a free 127.0.0.1 port, with this configuration
    and its data below directory."""

    def __init__(self, directory, config_text, name="prometheus", *flags):
        os.makedirs(directory, exist_ok=True)
        config = os.path.join(directory, f"{name}.yml")
        with open(config, "w") as f:
            f.write(config_text)
        self.port = free_port()
        super().__init__(name, [
            tool("prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={os.path.join(directory, name + '-tsdb')}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *flags],
            os.path.join(directory, f"{name}.log"))

    def api(self, path, **params):
        """The JSON answer of /api/v1/<path>, or {} while the server starts."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            return http_json(url)
        except urllib.error.HTTPError as e:
            try:  # a bad query: Prometheus says why
                return json.loads(e.read())
            except ValueError:  # 503 while it starts
                return {}
        except OSError:  # not listening yet
            return {}

    def query(self, expr):
        return self.api("query", query=expr)

    def targets(self):
        """The active scrape targets, once Prometheus has them."""
        r = self.api("targets")
        return r.get("data", {}).get("activeTargets", []) if r.get("status") == "success" else []


FIXTURES = "/var/tmp/gocache_exporter-test-fixtures"


def debian_minbase():
    """A Debian bookworm root (mmdebstrap --variant=minbase) as a tar file,
    made from the mirrors apt uses on this machine (read from its sources at
    run time), once, and shared by the tests that need a scratch Debian: the
    deploy steps run in it, the container image is built on it. Remade when a
    week old."""
    tar = os.path.join(FIXTURES, "bookworm-minbase.tar")
    if os.path.exists(tar) and time.time() - os.stat(tar).st_mtime < 7 * 86400:
        return tar
    os.makedirs(FIXTURES, exist_ok=True)
    sources = [p for p in ["/etc/apt/sources.list"] + sorted(
        os.path.join("/etc/apt/sources.list.d", n) for n in os.listdir("/etc/apt/sources.list.d")
        if n.endswith((".list", ".sources"))) if os.path.isfile(p) and os.path.getsize(p) > 0]
    if not sources:
        raise AssertionError("apt has no sources to make a Debian root from")
    part = tar + ".part"
    r = subprocess.run([tool("mmdebstrap"), "--quiet", "--variant=minbase", "--format=tar",
                        "bookworm", part,
                        *sources], capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        raise AssertionError(f"mmdebstrap failed:\n{r.stderr[-4000:]}")
    os.replace(part, tar)
    return tar


class TempDirTest(unittest.TestCase):
    """A test with a fresh world-readable temporary directory in self.tmp."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gocache-test-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(self._cleanup)

    def world_executable_copy(self):
        """The binary where an unprivileged user can run it (the build tree
        may be private)."""
        binary = os.path.join(self.tmp, "gocache_exporter")
        shutil.copy(EXPORTER, binary)
        os.chmod(binary, 0o755)
        return binary

    def mount_tmpfs(self, options, mnt=None, name="gocache-test"):
        """Mounts a tmpfs with `options` at mnt (made as self.tmp/fs when not
        given), unmounted at cleanup; the tests run as root in CI."""
        if mnt is None:
            mnt = os.path.join(self.tmp, "fs")
            os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, name, mnt],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, f"cannot mount a tmpfs (the test needs root): {r.stderr}")
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], timeout=30)
        return mnt

    def _cleanup(self):
        for dirpath, dirnames, _ in os.walk(self.tmp):
            for d in dirnames:
                try:
                    os.chmod(os.path.join(dirpath, d), 0o755)
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- build caches with known contents --------------------------------------

DAY = 86400
AGE_BUCKETS = [3600, 21600, 86400, 172800, 432000, 604800, 1209600, 2592000]
SIZE_BUCKETS = [4 ** k for k in range(4, 14)]  # 256 B to 64 MiB
TRIM_CUTOFF = 5 * DAY + 3600  # the go command's trimLimit + mtimeInterval


def hex_id(seed, shard=None):
    """A deterministic 64-hex ID, in the given shard when one is given."""
    import hashlib
    h = hashlib.sha256(seed.encode()).hexdigest()
    return h if shard is None else f"{shard:02x}" + h[2:]


def action_entry(action_id, output_id, size, time_ns=1_700_000_000_000_000_000):
    """An action entry exactly as the go command writes it."""
    return f"v1 {action_id} {output_id} {size:20d} {time_ns:20d}\n".encode()


def parse_action_entry(data, file_id):
    """(output_id, size), or None where the go command would see a miss."""
    m = re.fullmatch(rb"v1 ([0-9a-fA-F]{64}) ([0-9a-fA-F]{64}) ( *[+-]?\d+) ( *[+-]?\d+)\n", data)
    if not m or m.group(1).decode().lower() != file_id.lower():
        return None
    size, when = int(m.group(3)), int(m.group(4))
    if size < 0 or when < 0 or size >= 1 << 63 or when >= 1 << 63:
        return None
    return m.group(2).decode().lower(), size


SHARD = re.compile(r"[0-9a-f]{2}")
ENTRY = re.compile(r"[0-9a-f]{64}-[ad]")
TYPES = ("action", "output", "other")
ORPHAN_KINDS = ("action_without_output", "output_without_action", "size_mismatch")


def expected_census(cache, unreadable=()):
    """What the density and inode collectors must report for `cache` as it
    is on disk now, walked without following symbolic links; the shard
    directories named in `unreadable` are listed but not entered (as the
    exporter's user cannot)."""
    want = {"entries": dict.fromkeys(TYPES, 0), "bytes": dict.fromkeys(TYPES, 0),
            "allocated": 0, "shards": 0, "shard_dir_bytes": 0, "inodes": 1}
    actions, outputs = {}, {}

    def walk(path, depth, parent):
        with os.scandir(path) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                want["inodes"] += 1
                if stat.S_ISDIR(st.st_mode):
                    if depth == 1 and SHARD.fullmatch(entry.name):
                        want["shards"] += 1
                        want["shard_dir_bytes"] += st.st_size
                    if not (depth == 1 and entry.name in unreadable):
                        walk(entry.path, depth + 1, entry.name)
                    continue
                want["allocated"] += st.st_blocks * 512
                kind = "other"
                if (depth == 2 and SHARD.fullmatch(parent) and ENTRY.fullmatch(entry.name)
                        and entry.name[:2] == parent):
                    kind = "action" if entry.name.endswith("-a") else "output"
                want["entries"][kind] += 1
                want["bytes"][kind] += st.st_size
                if kind == "action":
                    parsed = None
                    if stat.S_ISREG(st.st_mode):
                        with open(entry.path, "rb") as f:
                            parsed = parse_action_entry(f.read(176), entry.name[:64])
                    actions[entry.name[:64]] = parsed
                elif kind == "output":
                    outputs[entry.name[:64]] = st.st_size

    walk(cache, 1, "")
    want.update(corrupt=0, action_without_output=0, size_mismatch=0)
    referenced = set()
    for parsed in actions.values():
        if parsed is None:
            want["corrupt"] += 1
        elif parsed[0] not in outputs:
            want["action_without_output"] += 1
        else:
            referenced.add(parsed[0])
            if outputs[parsed[0]] != parsed[1]:
                want["size_mismatch"] += 1
    want["output_without_action"] = len(set(outputs) - referenced)
    return want


def expected_orphans(cache):
    """Counts of broken entries (corrupt and each orphan kind), from expected_census."""
    want = expected_census(cache)
    return {kind: want[kind] for kind in ("corrupt",) + ORPHAN_KINDS}


def sum_find(path, fmt, *predicates):
    """Sum of a numeric `find -printf` field over what the predicates select."""
    out = subprocess.run([tool("find"), path, *predicates, "-printf", fmt + "\n"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return sum(int(x) for x in out.split())


# The ages synthetic entries cycle through, chosen well inside their buckets.
SYNTHETIC_AGES = [600, 3 * 3600, 12 * 3600, 36 * 3600, 3 * DAY, 5.5 * DAY, 6.5 * DAY, 10 * DAY,
                  20 * DAY, 40 * DAY]


def make_synthetic_cache(root, pairs, shards=256, missing_outputs=0, orphan_outputs=0,
                         mismatches=0, corrupt=0, shared_outputs=0, trim_time=1700000000,
                         now=None):
    """A build cache with known contents: `pairs` good action/output pairs
    spread over `shards` shard directories, plus the given numbers of broken
    entries, aged through SYNTHETIC_AGES. Returns what every density metric
    must then say."""
    import time as _time
    now = _time.time() if now is None else now
    os.makedirs(root)
    files = []  # (path, type, size, age, shard or None)

    def put(rel, data, kind, age, shard):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (now - age, now - age))
        files.append((rel, kind, len(data), age, shard))

    for s in range(shards):
        os.mkdir(os.path.join(root, f"{s:02x}"))
    counter = [0]

    def next_ids():
        i = counter[0]
        counter[0] += 1
        age = SYNTHETIC_AGES[i % len(SYNTHETIC_AGES)]
        a = hex_id(f"action{i}", i % shards)
        o = hex_id(f"output{i}", (i * 7 + 3) % shards)
        return a, o, age, i

    def put_action(a, o, size, age):
        put(f"{a[:2]}/{a}-a", action_entry(a, o, size), "action", age, int(a[:2], 16))

    def put_output(o, size, age):
        put(f"{o[:2]}/{o}-d", b"o" * size, "output", age, int(o[:2], 16))

    for _ in range(pairs):
        a, o, age, i = next_ids()
        # Most outputs are small; one in 16 is up to 64 KiB.
        size = (i * 7919) % (65536 if i % 16 == 0 else 2048)
        put_action(a, o, size, age)
        put_output(o, size, age)
    for _ in range(shared_outputs):  # a second action naming an existing output
        a, _, age, i = next_ids()
        o = hex_id("output0", 3 % shards)
        put_action(a, o, 0, age)
    for _ in range(missing_outputs):
        a, o, age, _ = next_ids()
        put_action(a, o, 100, age)
    for _ in range(orphan_outputs):
        _, o, age, _ = next_ids()
        put_output(o, 10, age)
    for _ in range(mismatches):
        a, o, age, _ = next_ids()
        put_action(a, o, 50, age)
        put_output(o, 49, age)  # a torn write
    bad_contents = [lambda a, o: b"", lambda a, o: action_entry(a, o, 1)[:-1],
                    lambda a, o: action_entry(a, o, 1) + b"x",
                    lambda a, o: b"v2" + action_entry(a, o, 1)[2:],
                    lambda a, o: action_entry(hex_id("other", int(a[:2], 16)), o, 1),
                    lambda a, o: action_entry(a, o, -1)]
    for j in range(corrupt):
        a, o, age, _ = next_ids()
        put(f"{a[:2]}/{a}-a", bad_contents[j % len(bad_contents)](a, o), "action", age,
            int(a[:2], 16))

    # What is not an entry: files the go command keeps beside them, a stray
    # "-a" name and a misplaced entry (both of which its trim would delete),
    # and a fuzz corpus.
    put("README", b"This directory holds cached build artifacts from the Go build system.\n",
        "other", 40 * DAY, None)
    if trim_time is not None:
        put("trim.txt", f"{trim_time}\n".encode(), "other", 40 * DAY, None)
    put("00/stray-a", b"?", "other", 10 * DAY, 0)
    misplaced = hex_id("misplaced", 1 % shards)
    put(f"00/{misplaced}-d", b"m" * 3, "other", 10 * DAY, 0)
    put("fuzz/example.com/pkg/FuzzX/seed", b"go test fuzz v1\n", "other", 40 * DAY, None)

    types = ("action", "output", "other")
    expected = {
        "entries": {t: sum(1 for f in files if f[1] == t) for t in types},
        "entry_bytes": {t: sum(f[2] for f in files if f[1] == t) for t in types},
        "shards": shards,
        "corrupt": corrupt,
        "action_without_output": missing_outputs,
        "output_without_action": orphan_outputs,
        "size_mismatch": mismatches,
        "trimmable_entries": 0, "trimmable_bytes": 0,
        "last_trim": trim_time,
    }
    per_shard = [0] * shards
    ages = []
    for rel, kind, size, age, shard in files:
        if shard is not None and (rel.endswith("-a") or rel.endswith("-d")) and age > TRIM_CUTOFF:
            expected["trimmable_entries"] += 1
            expected["trimmable_bytes"] += size
        if kind in ("action", "output"):
            per_shard[shard] += 1
            ages.append(age)
    mean = sum(per_shard) / shards
    expected["shard_min"], expected["shard_max"] = min(per_shard), max(per_shard)
    expected["shard_mean"] = mean
    expected["shard_stddev"] = (sum((c - mean) ** 2 for c in per_shard) / shards) ** 0.5
    expected["age_buckets"] = [sum(1 for a in ages if a <= b) for b in AGE_BUCKETS]
    expected["age_count"] = len(ages)
    expected["age_sum_at_creation"] = sum(ages)
    return expected
