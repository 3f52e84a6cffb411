#!/usr/bin/env python3
"""Writes a synthetic action graph of `go build -debug-actiongraph=FILE` for
the trace parser's benchmark (bench_trace, scripts/bench.sh).

The graph is what the go command writes for a very large monorepo: the
output of json.MarshalIndent(actions, "", "\t") byte for byte (key order and
omitempty of cmd/go/internal/work's actionJSON, Go's escaping of <, > and &,
RFC 3339 times with trailing zeros cut, no final newline). It is made of
programs, each like a real `go build` (link-install, link, a build action per
package, nop, built-in package unsafe) or `go vet` (go vet, a vet and a build
action per package): about half the actions ran a command (Cmd is an array of
compile, asm, link or vet command lines) and half were cache hits (Cmd null).
Times are consistent: an action is ready once all its dependencies are done,
starts no earlier, and its command took no longer than the action.

  make_actiongraph.py FILE [--mb 120] [--seed 1] [--gzip]

Writes at least --mb megabytes (10^6 bytes), and FILE.gz as well with --gzip;
prints "wrote N actions, B bytes to FILE".
"""

import argparse
import base64
import contextlib
import gzip
import io
import random
import time

GOROOT = "/usr/lib/go-1.23"
TOOLDIR = GOROOT + "/pkg/tool/linux_amd64"
GOVERSION = "go1.23.5"
WORK = "/tmp/go-build3761028274"
MODULE = "github.com/acme/monorepo"
MODDIR = "/home/ci/src/monorepo"
Q = '\\"'  # a quote inside a JSON string
GT = "\\u003e"  # '>' as encoding/json writes it

# Standard library packages and how many .go files go build compiles for them.
STD = [
    (path, int(files))
    for path, files in (
        item.split(":")
        for item in """
archive/tar:7 archive/zip:4 bufio:2 bytes:3 cmp:1 compress/bzip2:4 compress/flate:7
compress/gzip:2 compress/zlib:2 container/heap:1 container/list:1 context:1 crypto:1
crypto/aes:6 crypto/cipher:7 crypto/ecdh:3 crypto/ecdsa:4 crypto/ed25519:1 crypto/elliptic:4
crypto/hmac:1 crypto/md5:3 crypto/rand:4 crypto/rsa:4 crypto/sha1:3 crypto/sha256:4
crypto/sha512:3 crypto/subtle:3 crypto/tls:21 crypto/x509:13 crypto/x509/pkix:1
database/sql:3 database/sql/driver:2 debug/dwarf:11 debug/elf:3 embed:1 encoding:1
encoding/asn1:3 encoding/base64:1 encoding/binary:3 encoding/csv:2 encoding/gob:9
encoding/hex:1 encoding/json:8 encoding/pem:1 encoding/xml:4 errors:3 expvar:1 flag:1 fmt:5
go/ast:8 go/parser:3 go/scanner:2 go/token:3 go/types:67 hash:1 hash/crc32:4 hash/fnv:1
hash/maphash:2 html:2 html/template:18 internal/abi:13 internal/bytealg:9 internal/cpu:2
internal/fmtsort:1 internal/godebug:1 internal/itoa:1 internal/poll:22 internal/race:2
internal/reflectlite:3 internal/runtime/atomic:6 internal/syscall/unix:19 internal/testlog:2
io:3 io/fs:8 iter:1 log:1 log/slog:9 maps:2 math:54 math/big:22 math/bits:3 math/rand:5
math/rand/v2:6 mime:5 mime/multipart:4 net:59 net/http:28 net/http/httptrace:1
net/http/pprof:1 net/netip:2 net/textproto:5 net/url:1 os:36 os/exec:3 os/signal:3 path:2
path/filepath:5 reflect:10 regexp:4 regexp/syntax:8 runtime:165 runtime/debug:4
runtime/pprof:11 runtime/trace:2 slices:5 sort:6 strconv:14 strings:7 sync:11 sync/atomic:3
syscall:28 text/tabwriter:1 text/template:6 text/template/parse:3 time:10 unicode:5
unicode/utf16:1 unicode/utf8:1 unique:3
""".split()
    )
]
# Assembly in a few standard packages: asm runs before compile, once per file.
STD_ASM = {"runtime", "math/big", "crypto/aes", "crypto/sha256", "internal/bytealg", "syscall"}

AREAS = ["services", "internal", "pkg", "platform", "libs", "tools"]
NOUNS = """account admin alert api audit auth billing blob broker cache catalog checkout
cluster config consumer controller cron dispatch dns event export feature gateway graph health
identity index ingest inventory invoice job ledger limiter loader mailer metrics migrate notify
order partner payment pipeline policy pricing profile proxy queue quota ranking registry report
router scheduler search session shard shipping storage stream tenant token tracing usage user
vault webhook worker""".split()
LAYERS = ["", "/client", "/server", "/store", "/model", "/handler", "/internal/util", "/v2"]
FILE_WORDS = """api cache client codec config conn context convert decode doc encode errors
export fields filter format handler helpers hooks index iter keys limits load log marshal merge
metrics middleware model options parse path pool query reader registry request response retry
route schema server service session sort state store stream sync types util validate
writer""".split()


class Graph:
    def __init__(self, rng):
        self.rng = rng
        self.next_id = 0
        self.next_b = 1
        self.next_pkg = 0
        self.clock = 1_795_678_654_000_000_000  # 2026-11-26T07:37:34Z, in ns
        self.seconds = {}  # cache: Unix second -> "2026-11-27T04:17:34"
        self.actions = 0
        self.with_cmd = 0

    # --- values -------------------------------------------------------------

    def hash20(self):
        return base64.urlsafe_b64encode(self.rng.randbytes(15)).decode()

    def time(self, ns):
        second, frac = divmod(ns, 1_000_000_000)
        prefix = self.seconds.get(second)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.seconds[second] = prefix
        if frac == 0:
            return prefix + "Z"
        return prefix + "." + ("%09d" % frac).rstrip("0") + "Z"

    def objdir(self):
        n = self.next_b
        self.next_b += 1
        return "%s/b%03d/" % (WORK, n)

    def module_package(self):
        n = self.next_pkg
        self.next_pkg += 1
        rng = self.rng
        path = "%s/%s/%s%d%s" % (
            MODULE,
            rng.choice(AREAS),
            rng.choice(NOUNS),
            n,
            rng.choice(LAYERS),
        )
        files = max(1, min(60, int(rng.lognormvariate(1.8, 0.8))))
        return path, files

    def files(self, path, count, std):
        words = self.rng.sample(FILE_WORDS, min(count, len(FILE_WORDS)))
        words += ["%s%d" % (self.rng.choice(FILE_WORDS), i) for i in range(count - len(words))]
        words.sort()
        if std:
            return " ".join("%s/src/%s/%s.go" % (GOROOT, path, w) for w in words)
        return " ".join("%s%s/%s.go" % (MODDIR, path[len(MODULE) :], w) for w in words)

    # --- command lines (already JSON-escaped) ---------------------------------

    def compile_cmds(self, path, files, std, main, obj, aid):
        cmds = []
        if std and path in STD_ASM:
            asm = (
                "%s/asm -p %s -trimpath %s%s=%s%s -I %s -I %s/pkg/include "
                "-D GOOS_linux -D GOARCH_amd64 -D GOAMD64_v1"
                % (TOOLDIR, path, Q, obj[:-1], GT, Q, obj, GOROOT)
            )
            base = path.rsplit("/", 1)[-1]
            sources = ["%s/src/%s/%s_amd64.s" % (GOROOT, path, w) for w in ("asm", base, "stubs")]
            cmds.append("%s -gensymabis -o %ssymabis %s" % (asm, obj, " ".join(sources)))
        if std:
            trim = "%s%s=%s%s" % (Q, obj[:-1], GT, Q)
            flags = "-p %s -lang=go1.23 -std -complete" % path
        else:
            trim = "%s%s=%s;%s=%s%s%s" % (Q, obj[:-1], GT, MODDIR, GT, MODULE, Q)
            flags = "-p %s -lang=go1.22 -complete" % ("main" if main else path)
        cmds.append(
            "%s/compile -o %s_pkg_.a -trimpath %s %s -buildid %s/%s -goversion %s -c=4 "
            "-nolocalimports -importcfg %simportcfg -pack %s"
            % (TOOLDIR, obj, trim, flags, aid, aid, GOVERSION, obj, self.files(path, files, std))
        )
        if len(cmds) > 1:
            objects = []
            for src in sources:
                objects.append("%s%s.o" % (obj, src.rsplit("/", 1)[-1][:-2]))
                cmds.append("%s -o %s %s" % (asm, objects[-1], src))
            cmds.append("%s/pack r %s_pkg_.a %s" % (TOOLDIR, obj, " ".join(objects)))
        return cmds

    # --- one action, as MarshalIndent writes it -------------------------------

    def action(self, a, out):
        p = [
            '\t{\n\t\t"ID": ', str(a["ID"]),
            ',\n\t\t"Mode": "', a["Mode"],
            '",\n\t\t"Package": "', a["Package"], '"',
        ]
        deps = a.get("Deps")
        if deps:
            p.append(',\n\t\t"Deps": [\n\t\t\t')
            p.append(",\n\t\t\t".join(map(str, deps)))
            p.append("\n\t\t]")
        if a.get("IgnoreFail"):
            p.append(',\n\t\t"IgnoreFail": true')
        for key in ("Objdir", "Target"):
            if a.get(key):
                p.append(',\n\t\t"%s": "%s"' % (key, a[key]))
        if a.get("Priority"):
            p.append(',\n\t\t"Priority": %d' % a["Priority"])
        if a.get("Built"):
            p.append(',\n\t\t"Built": "%s"' % a["Built"])
        for key in ("VetxOnly", "NeedBuild"):
            if a.get(key):
                p.append(',\n\t\t"%s": true' % key)
        for key in ("ActionID", "BuildID"):
            if a.get(key):
                p.append(',\n\t\t"%s": "%s"' % (key, a[key]))
        p.append(',\n\t\t"TimeReady": "%s",\n\t\t"TimeStart": "%s",\n\t\t"TimeDone": "%s"' % (
            self.time(a["ready"]), self.time(a["start"]), self.time(a["done"])))
        cmd = a.get("Cmd")
        if cmd:
            p.append(',\n\t\t"Cmd": [\n\t\t\t"')
            p.append('",\n\t\t\t"'.join(cmd))
            p.append('"\n\t\t]')
            for key in ("CmdReal", "CmdUser", "CmdSys"):
                if a[key]:
                    p.append(',\n\t\t"%s": %d' % (key, a[key]))
            self.with_cmd += 1
        else:
            p.append(',\n\t\t"Cmd": null')
        p.append("\n\t}")
        out.append("".join(p))
        self.actions += 1

    # --- one program ------------------------------------------------------------

    def packages(self, n):
        rng = self.rng
        pkgs = [self.module_package() + (False,)]  # the main package
        for _ in range(n - 1):
            if rng.random() < 0.35:
                path, files = rng.choice(STD)
                pkgs.append((path, files, True))
            else:
                pkgs.append(self.module_package() + (False,))
        return pkgs

    def package_deps(self, first, n, i):
        """Dependencies of package i of n (IDs first..first+n-1): later ones only, a DAG."""
        later = n - i - 1
        if later <= 0:
            return []
        k = min(later, int(self.rng.expovariate(1 / 4)))
        return [first + j for j in sorted(self.rng.sample(range(i + 1, n), k))]

    def program(self, out):
        rng = self.rng
        base = self.next_id
        vet = rng.random() < 0.15
        hit_rate = rng.random()
        n = rng.randint(20, 160)
        pkgs = self.packages(n)
        main_path = pkgs[0][0]
        name = main_path.split("/")[4]  # MODULE/area/NAME/...
        objdirs = [self.objdir() for _ in pkgs]
        acts = []

        def add(**a):
            a["ID"] = base + len(acts)
            acts.append(a)
            return a

        if vet:
            add(Mode="go vet", Package="", Deps=[base + 1])
            first_vet = base + 1
            first_build = first_vet + n
        else:
            first_build = base + 2
            exe = objdirs[0] + "exe/a.out"
            aid = self.hash20()
            build_id = "%s/%s/%s/%s" % (aid, self.hash20(), self.hash20(), self.hash20())
            add(Mode="link-install", Package=main_path, Deps=[base + 1], Objdir=objdirs[0],
                Target="%s/bin/%s" % (MODDIR, name), Built="%s/bin/%s" % (MODDIR, name),
                BuildID=build_id, install=True)
            link = "%s/link -o %s -importcfg %simportcfg.link -buildmode=exe -buildid=%s/%s " \
                "-extld=gcc %s_pkg_.a" % (
                    TOOLDIR, exe, objdirs[0], build_id.rsplit("/", 1)[0], aid, objdirs[0])
            add(Mode="link", Package=main_path, Deps=list(range(first_build, first_build + n)),
                Objdir=objdirs[0], Target=exe, Built=exe, ActionID=aid, BuildID=build_id,
                Cmd=[link], kind="link")
        unsafe_id = first_build + n + (0 if vet else 1)
        pkg_deps = [self.package_deps(first_build, n, i) for i in range(n)]
        if vet:
            for i, (path, files, std) in enumerate(pkgs):
                ran = rng.random() >= hit_rate
                flag = "" if i == 0 else " -unsafeptr=false"
                add(Mode="vet", Package=path,
                    Deps=[first_build + i] + [d - first_build + first_vet for d in pkg_deps[i]],
                    IgnoreFail=True, Objdir=objdirs[i], VetxOnly=i > 0,
                    Cmd=["%s/vet%s %svet.cfg" % (TOOLDIR, flag, objdirs[i])] if ran else None,
                    kind="vet")
        for i, (path, files, std) in enumerate(pkgs):
            ran = rng.random() >= hit_rate
            aid = self.hash20()
            deps = pkg_deps[i]
            if std and rng.random() < 0.5:
                deps = deps + [unsafe_id]
            add(Mode="build", Package=path, Deps=deps, Objdir=objdirs[i], NeedBuild=True,
                ActionID=aid, BuildID="%s/%s" % (aid, self.hash20()),
                Cmd=self.compile_cmds(path, files, std, i == 0, objdirs[i], aid) if ran else None,
                kind="compile", files=files)
        if not vet:
            add(Mode="nop", Package="", Deps=list(range(first_build + 1, first_build + n)))
        add(Mode="built-in package", Package="unsafe", Objdir=self.objdir(), NeedBuild=True)

        self.schedule(acts, base)
        for a in acts:
            self.action(a, out)
        self.next_id = base + len(acts)

    def schedule(self, acts, base):
        """Times from the leaves up: ready when the dependencies are done."""
        rng = self.rng
        start_of_program = self.clock
        self.clock += int(rng.uniform(0.05, 0.8) * 1e9)
        for rank, a in enumerate(reversed(acts)):
            a["Priority"] = rank

        def done(a):
            if "done" in a:
                return a["done"]
            deps_done = [done(acts[d - base]) for d in a.get("Deps", ())]
            ready = max(deps_done) + rng.randint(500, 90_000) if deps_done else start_of_program
            if rng.random() < 0.8:
                start = ready + rng.randint(200, 30_000)
            else:  # waited for a free worker
                start = ready + rng.randint(30_000, 40_000_000)
            if a.get("Cmd"):
                kind = a["kind"]
                if kind == "link":
                    real = int(rng.uniform(0.15, 2.5) * 1e9)
                elif kind == "vet":
                    real = int(rng.lognormvariate(17.5, 0.8))
                else:
                    real = int(rng.lognormvariate(16.5, 1.1) * (1 + a["files"] / 8))
                real = max(real, 1_000_000)
                a["CmdReal"] = real
                # Go reports rusage in microseconds; a zero is left out, now and then.
                user = int(real * rng.uniform(0.4, 1.8)) // 1000 * 1000
                system = int(real * rng.uniform(0.03, 0.4)) // 1000 * 1000
                a["CmdUser"] = 0 if rng.random() < 0.05 else user
                a["CmdSys"] = 0 if rng.random() < 0.08 else system
                end = start + real + rng.randint(100_000, 3_000_000)
            elif a.get("install"):
                end = start + rng.randint(300_000, 6_000_000)
            else:
                end = start + rng.randint(400, 2_500_000)
            a["ready"], a["start"], a["done"] = ready, start, end
            return end

        for a in acts:
            done(a)

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--mb", type=float, default=120, help="at least this many 10^6 bytes (120)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gzip", action="store_true", help="also write FILE.gz")
    args = parser.parse_args()

    target = int(args.mb * 1e6)
    graph = Graph(random.Random(args.seed))
    written = 0
    with contextlib.ExitStack() as stack:
        outputs = [stack.enter_context(open(args.file, "w", encoding="ascii", newline=""))]
        if args.gzip:
            raw = stack.enter_context(open(args.file + ".gz", "wb"))
            # No name and no time in the header: the same bytes every time.
            z = gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0)
            outputs.append(stack.enter_context(io.TextIOWrapper(z, encoding="ascii", newline="")))
        head = "[\n"
        while written < target:
            out = []
            for _ in range(4):
                graph.program(out)
            chunk = head + ",\n".join(out)
            head = ",\n"
            for f in outputs:
                f.write(chunk)
            written += len(chunk)
        for f in outputs:
            f.write("\n]")
        written += 2
    print("wrote %d actions (%.1f%% ran a command), %d bytes to %s" % (
        graph.actions, 100 * graph.with_cmd / graph.actions, written, args.file))


if __name__ == "__main__":
    main()
