"""The CI wrapper deploy/ci/go, put first on PATH under the name `go`: with
GOCACHE_TRACE_SPOOL set, each go build, install, run, test and vet drops the
final, timed action graph into the spool, by a rename only, and otherwise
the wrapper is the real go command: same output, same exit status, no file.
End to end, the exporter watching the spool counts the wrapped build."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import unittest

from harness import (SOURCE_DIR, Exporter, TempDirTest, go_binary, go_env, has, parse_metrics,
                     tool, value, write_files)

WRAPPER = os.path.join(SOURCE_DIR, "deploy", "ci", "go")
GO_TIMEOUT = 300
# Go's zero time.Time: an action graph written before the build has it.
ZERO_TIME = "0001-01-01T00:00:00Z"
TRACE_NAME = re.compile(r"^(?P<job>[A-Za-z0-9._]+)-(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)-"
                        r"(?P<stamp>\d{8}T\d{6}Z)(-[A-Za-z0-9]+)?\.actiongraph\.json$")
# Variables that would change the wrapper's file names or its choice of go.
WRAPPER_VARS = ("GOCACHE_TRACE_SPOOL", "GOCACHE_EXPORTER_REAL_GO", "GOCACHE_TRACE_JOB",
                "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB", "CI_JOB_ID",
                "_GOCACHE_TRACE_WRAPPER_DIRS", "_GOCACHE_TRACE_WRAPPER_PID",
                "_GOCACHE_TRACE_WRAPPER_HOPS")

# example.com/m: a imports b, neither imports anything, so that a cold build
# compiles just the two of them (go vet would also compile fmt and its
# dependencies for the printf check: half a minute on a busy machine).
MODULE = {
    "go.mod": "module example.com/m\n\ngo 1.19\n",
    "a/a.go": 'package a\n\nimport "example.com/m/b"\n\n// A is one more than b.B.\n'
              "func A() int { return b.B() + 1 }\n",
    "b/b.go": "package b\n\n// B is the answer.\nfunc B() int { return 41 }\n",
}
BROKEN_B = "package b\n\nfunc B() int { return 41 +\n"


def real_go_dir():
    return os.path.dirname(os.path.realpath(go_binary()))


def umask():
    old = os.umask(0)
    os.umask(old)
    return old


def timed(action):
    return bool(action.get("TimeStart")) and action["TimeStart"] != ZERO_TIME


def expected_build_misses(actions):
    """Build-mode actions that ran a command (non-empty Cmd): the misses the
    exporter counts, computed independently of it."""
    return sum(1 for a in actions
               if a["Mode"] == "build" and a.get("Cmd") and timed(a) and
               a.get("TimeDone", ZERO_TIME) != ZERO_TIME)


class WrapperTestBase(TempDirTest):
    """A module, a spool and a bin directory holding `go` -> deploy/ci/go,
    first on PATH, the real go's directory after it."""

    def setUp(self):
        super().setUp()
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin)
        os.symlink(WRAPPER, os.path.join(self.bin, "go"))
        self.spool = os.path.join(self.tmp, "spool")
        os.mkdir(self.spool)
        self.module = os.path.join(self.tmp, "m")
        write_files(self.module, MODULE)
        env = go_env(self.tmp)
        for name in ("HOME", "GOMODCACHE", "GOPATH"):
            os.makedirs(env[name], exist_ok=True)
        for name in WRAPPER_VARS:
            env.pop(name, None)
        env["PATH"] = os.pathsep.join([self.bin, real_go_dir(), os.environ.get("PATH", "")])
        self.plain_env = env  # no spool: the wrapper only passes through
        self.env = dict(env, GOCACHE_TRACE_SPOOL=self.spool)

    def go(self, *args, env=None, cwd=None, **kwargs):
        """`go ARGS` through the wrapper, found on PATH like any go."""
        env = env or self.env
        wrapper = shutil.which("go", path=env["PATH"])
        self.assertEqual(wrapper, os.path.join(self.bin, "go"))
        return subprocess.run([wrapper, *args], cwd=cwd or self.module, env=env,
                              capture_output=True, text=True, timeout=GO_TIMEOUT, **kwargs)

    def real_go(self, *args, env=None, cwd=None):
        env = dict(env or self.plain_env)
        return subprocess.run([go_binary(), *args], cwd=cwd or self.module, env=env,
                              capture_output=True, text=True, timeout=GO_TIMEOUT)

    def assertOk(self, r):
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def traces(self, spool=None):
        """The finished traces in the spool, after checking that nothing else,
        in particular no hidden temporary file, is left there."""
        spool = spool or self.spool
        names = sorted(os.listdir(spool))
        self.assertEqual([n for n in names if not TRACE_NAME.match(n)], [],
                         "only finished traces may be left in the spool")
        return [os.path.join(spool, n) for n in names]

    def load(self, path):
        with open(path) as f:
            actions = json.load(f)
        self.assertIsInstance(actions, list)
        self.assertTrue(all("Mode" in a for a in actions), path)
        return actions

    def assertFinalGraph(self, actions, root_mode):
        """The second, timed write of the graph: every action has run."""
        self.assertIn(root_mode, [a["Mode"] for a in actions])
        self.assertEqual([a["Mode"] for a in actions if not timed(a)], [],
                         "actions without TimeStart: the graph written before the build")


class WrapperTest(WrapperTestBase):

    def test_build_leaves_one_timed_action_graph(self):
        r = self.go("build", "./...")
        self.assertOk(r)
        self.assertEqual((r.stdout, r.stderr), ("", ""))
        traces = self.traces()
        self.assertEqual(len(traces), 1, traces)
        m = TRACE_NAME.match(os.path.basename(traces[0]))
        self.assertEqual(m.group("job"), "local")
        actions = self.load(traces[0])
        self.assertFinalGraph(actions, "go build")
        builds = {a["Package"]: a for a in actions if a["Mode"] == "build"}
        self.assertEqual(set(builds), {"example.com/m/a", "example.com/m/b"})
        # A cold cache: both packages were compiled.
        self.assertTrue(all(a.get("Cmd") for a in builds.values()), builds)
        # Readable by an exporter running as another user, as the go command
        # itself would have created the file (not mktemp's 0600).
        self.assertEqual(os.stat(traces[0]).st_mode & 0o777, 0o666 & ~umask())

    def test_two_commands_leave_two_files(self):
        self.assertOk(self.go("build", "./..."))
        # -vet=off: vet would compile fmt for its printf check.
        r = self.go("test", "-vet=off", "./...")
        self.assertOk(r)
        self.assertIn("[no test files]", r.stdout)
        traces = self.traces()
        self.assertEqual(len(traces), 2, traces)
        graphs = [self.load(t) for t in traces]
        roots = sorted({a["Mode"] for g in graphs for a in g} & {"go build", "go test"})
        self.assertEqual(roots, ["go build", "go test"])
        test_graph = next(g for g in graphs if any(a["Mode"] == "go test" for a in g))
        self.assertFinalGraph(test_graph, "go test")
        # The second command found both packages in the cache: hits, no command.
        builds = [a for a in test_graph if a["Mode"] == "build"]
        self.assertEqual(len(builds), 2)
        self.assertEqual([a for a in builds if a.get("Cmd")], [])

    def test_failing_build_keeps_status_and_stderr(self):
        write_files(self.module, {"b/b.go": BROKEN_B})
        direct = self.real_go("build", "./...")
        self.assertNotEqual(direct.returncode, 0)
        self.assertIn("syntax error", direct.stderr)
        r = self.go("build", "./...")
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (direct.returncode, direct.stdout, direct.stderr))
        traces = self.traces()  # no temporary file left behind
        self.assertLessEqual(len(traces), 1)
        for t in traces:
            actions = self.load(t)
            self.assertFinalGraph(actions, "go build")
            # The failed compile of b ran; nothing marks it failed (the
            # graph's Failed field is filled in before the build, never after).
            b = next(a for a in actions if a.get("Package") == "example.com/m/b")
            self.assertTrue(b.get("Cmd"))

    def test_commands_that_build_nothing_pass_through(self):
        for args in (["env", "GOCACHE"], ["version"], ["env", "GOFLAGS"], ["list", "./..."],
                     ["help", "build"], ["mod", "tidy"]):
            with self.subTest(args=args):
                want = self.real_go(*args)
                got = self.go(*args)
                self.assertEqual((got.returncode, got.stdout, got.stderr),
                                 (want.returncode, want.stdout, want.stderr))
                self.assertOk(got)
        self.assertEqual(os.listdir(self.spool), [])

    def test_without_spool_behaves_like_go(self):
        before = sorted(set(os.listdir(self.tmp)) | {"cache"})  # the go command's GOCACHE
        module_before = sorted(os.listdir(self.module))
        want = self.real_go("env", "GOFLAGS")
        got = self.go("env", "GOFLAGS", env=self.plain_env)
        self.assertEqual(got.stdout, want.stdout)
        r = self.go("build", "./...", env=self.plain_env)
        self.assertOk(r)
        self.assertEqual((r.stdout, r.stderr), ("", ""))
        r = self.go("build", "./...", env=dict(self.plain_env, GOCACHE_TRACE_SPOOL=""))
        self.assertOk(r)
        self.assertEqual(os.listdir(self.spool), [])
        self.assertEqual(sorted(os.listdir(self.tmp)), before)
        self.assertEqual(sorted(os.listdir(self.module)), module_before)

    def test_unusable_spool_warns_once_and_builds(self):
        not_a_dir = os.path.join(self.tmp, "file")
        with open(not_a_dir, "w"):
            pass
        spools = [os.path.join(self.tmp, "missing"), not_a_dir]
        if os.geteuid() != 0:  # root writes into a read-only directory anyway
            read_only = os.path.join(self.tmp, "read-only")
            os.mkdir(read_only, 0o555)
            spools.append(read_only)
        for spool in spools:
            with self.subTest(spool=spool):
                r = self.go("build", "./...", env=dict(self.env, GOCACHE_TRACE_SPOOL=spool))
                self.assertOk(r)
                lines = r.stderr.splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertIn("gocache trace wrapper", lines[0])
                self.assertIn(spool, lines[0])
        self.assertFalse(os.path.exists(spools[0]))
        self.assertEqual(os.path.getsize(not_a_dir), 0)
        self.assertEqual(os.listdir(self.spool), [])

    def test_relative_spool_with_a_space_and_dash_C(self):
        # GOFLAGS splits at spaces: the wrapper quotes the flag. The path is
        # made absolute, as -C changes the go command's directory first.
        spool = os.path.join(self.tmp, "spool dir")
        os.mkdir(spool)
        env = dict(self.env, GOCACHE_TRACE_SPOOL="spool dir", GOFLAGS="-mod=mod -gcflags=-N")
        r = self.go("-C", self.module, "build", "./...", env=env, cwd=self.tmp)
        self.assertOk(r)
        traces = self.traces(spool)
        self.assertEqual(len(traces), 1)
        self.assertFinalGraph(self.load(traces[0]), "go build")
        # The caller's GOFLAGS still applied.
        self.assertTrue(all(" -N " in a["Cmd"][0] for a in self.load(traces[0])
                            if a["Mode"] == "build"))
        self.assertEqual(os.listdir(self.spool), [])

    def test_job_id_from_ci_variables(self):
        cases = [({"GITHUB_RUN_ID": "123", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "unit tests"},
                  "gh.123.2.unit_tests"),
                 ({"CI_JOB_ID": "4567"}, "gl.4567")]
        for variables, job in cases:
            with self.subTest(job=job):
                self.assertOk(self.go("build", "./...", env=dict(self.env, **variables)))
                traces = self.traces()
                self.assertEqual(len(traces), 1)
                self.assertEqual(TRACE_NAME.match(os.path.basename(traces[0])).group("job"), job)
                os.remove(traces[0])

    def test_finds_the_real_go_without_running_itself(self):
        want = self.real_go("version").stdout
        # The wrapper's own directory twice, and a second copy of the wrapper
        # before the real go: each is skipped.
        copy = os.path.join(self.tmp, "copy")
        os.mkdir(copy)
        shutil.copy(WRAPPER, os.path.join(copy, "go"))
        path = os.pathsep.join([self.bin, copy, self.bin, os.path.dirname(WRAPPER), real_go_dir()])
        r = self.go("version", env=dict(self.env, PATH=path))
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, want, ""))
        # An explicit real go, not on PATH at all.
        r = self.go("version", env=dict(self.env, PATH=self.bin, GOCACHE_EXPORTER_REAL_GO=go_binary()))
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, want, ""))
        # None at all: the shell's status for a command not found.
        r = self.go("version", env=dict(self.env, PATH=os.pathsep.join([self.bin, copy])))
        self.assertEqual(r.returncode, 127)
        self.assertIn("GOCACHE_EXPORTER_REAL_GO", r.stderr)
        # A wrapper that its caller, a wrapper, ran as the real go eight times
        # over: a loop, stopped.
        r = self.go("version", env=dict(self.env, _GOCACHE_TRACE_WRAPPER_PID=str(os.getpid()),
                                        _GOCACHE_TRACE_WRAPPER_HOPS="8"))
        self.assertEqual(r.returncode, 127)
        self.assertIn("keeps running a wrapper", r.stderr)

    def test_go_generate_runs_the_real_go(self):
        # The go command puts $GOROOT/bin first on PATH for generators (and for
        # tests): a go command they run bypasses the wrapper, and generate
        # itself builds nothing. No trace.
        write_files(self.module, {"gen.go": "//go:generate go build ./b\n\npackage main\n"})
        self.assertOk(self.go("generate", "./..."))
        self.assertEqual(os.listdir(self.spool), [])

    def test_shellcheck_clean(self):
        r = subprocess.run([tool("shellcheck"), "--shell=sh", WRAPPER], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


# A stand-in for the go command: writes a graph to the -debug-actiongraph
# file GOFLAGS names (quoted when the spool path has a space), echoes stdin,
# then exits with $FAKE_STATUS or, with FAKE_SLEEP, waits to be signalled.
FAKE_GO = r"""#!/bin/sh
f=${GOFLAGS##*-debug-actiongraph=}
f=${f%"'"}
printf '[{"Mode": "go build"}]\n' > "$f"
cat
if [ -n "${FAKE_SLEEP:-}" ]; then
  sleep "$FAKE_SLEEP" >/dev/null 2>&1 &
  sleeper=$!
  trap 'kill $sleeper; echo got TERM >&2; exit 3' TERM
  trap 'kill $sleeper; trap - HUP; kill -s HUP $$' HUP
  echo ready >&2
  wait $sleeper
fi
exit "${FAKE_STATUS:-0}"
"""


class WrapperProcessTest(WrapperTestBase):
    """Exit status, stdin and signals, with a stand-in for the go command."""

    def setUp(self):
        super().setUp()
        self.fake = os.path.join(self.tmp, "fake-go")
        with open(self.fake, "w") as f:
            f.write(FAKE_GO)
        os.chmod(self.fake, 0o755)
        self.env = dict(self.env, GOCACHE_EXPORTER_REAL_GO=self.fake)

    def test_exit_status_and_stdin_pass_through(self):
        for status in (0, 1, 2, 7):
            with self.subTest(status=status):
                r = self.go("build", "./...", input="from stdin\n",
                            env=dict(self.env, FAKE_STATUS=str(status)))
                self.assertEqual((r.returncode, r.stdout), (status, "from stdin\n"))
        self.assertEqual(len(self.traces()), 4)

    def test_signals_are_passed_on_and_the_file_moved(self):
        for sig, child_saw in ((signal.SIGTERM, "got TERM"), (signal.SIGINT, "got TERM"),
                               (signal.SIGHUP, "")):
            with self.subTest(signal=sig.name):
                with subprocess.Popen(
                        [os.path.join(self.bin, "go"), "test", "./..."], cwd=self.module,
                        env=dict(self.env, FAKE_SLEEP="60"), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                        # A shell ignores what its parent ignored: start with defaults.
                        preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL)
                                            for s in (signal.SIGINT, signal.SIGQUIT)]) as proc:
                    self.assertEqual(proc.stderr.readline(), "ready\n")
                    start = time.monotonic()
                    proc.send_signal(sig)
                    rest = proc.stderr.read()
                    # The wrapper dies of the signal it got, as go would have.
                    self.assertEqual(proc.wait(timeout=30), -sig)
                self.assertLess(time.monotonic() - start, 20)
                # SIGINT reaches the go command as TERM: started in the
                # background, it ignores SIGINT. Nothing else is printed.
                self.assertEqual(rest.strip(), child_saw)
                traces = self.traces()
                self.assertEqual(len(traces), 1)
                os.remove(traces[0])


class WrapperExporterTest(WrapperTestBase):

    def test_exporter_counts_the_wrapped_build(self):
        cache = os.path.join(self.tmp, "exporter-cache")
        modcache = os.path.join(self.tmp, "exporter-modcache")
        os.mkdir(cache)
        os.mkdir(modcache)
        # A settle time longer than the test: the file is read because it was
        # renamed into the spool (IN_MOVED_TO), not because it sat there.
        with Exporter(f"--trace.dir={self.spool}", "--no-collector.density",
                      "--no-collector.inode", f"--cache.dir={cache}", f"--modcache.dir={modcache}",
                      "--trace.settle=1h") as exporter:
            self.assertNotIn("inotify is not available", exporter.log())
            r = self.go("build", "./...")  # a cold cache
            self.assertOk(r)

            def ingested(samples):
                return (has("gocache_trace_files_total")(samples) and
                        value(samples, "gocache_trace_files_total", format="actiongraph",
                              result="ok") == 1)
            exporter.wait_for(ingested, timeout=30, what="the wrapped build's action graph")
            names = os.listdir(self.spool)
            self.assertEqual(len(names), 1, names)
            self.assertTrue(names[0].endswith(".actiongraph.json.done"), names)
            self.assertTrue(TRACE_NAME.match(names[0][:-len(".done")]), names)
            actions = self.load(os.path.join(self.spool, names[0]))
            misses = expected_build_misses(actions)
            self.assertEqual(misses, 2)  # a and b, compiled

            def counted(samples):
                return (has("gocache_trace_actions_total", mode="build")(samples) and
                        value(samples, "gocache_trace_actions_total", mode="build",
                              result="miss") == misses)
            samples = parse_metrics(
                exporter.wait_for(counted, timeout=30, what=f"{misses} build misses"))
            self.assertEqual(value(samples, "gocache_trace_actions_total", mode="build",
                                   result="hit"), 0)
            self.assertEqual(value(samples, "gocache_trace_files_total", format="actiongraph",
                                   result="error"), 0)


if __name__ == "__main__":
    unittest.main()
