"""End to end with the real tools: Debian's Prometheus scrapes the exporter
every second and evaluates the repository's alert rules (their `for`
durations shortened, their expressions as shipped); Debian's Alertmanager,
configured from the repository's alertmanager.yml, delivers to a webhook this
test runs. A build cache of real entries sits on a tmpfs with a known inode
count: filled past 90% of its inodes, the inode alert must reach the webhook;
trimmed below, it must resolve. With all four collectors fed, every query of
the dashboard and of the rules must evaluate against the live Prometheus,
and every dashboard panel must return data."""

import json
import math
import os
import re
import shutil
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (SOURCE_DIR, Exporter, Process, Prometheus, TempDirTest, free_port,
                     go_binary, make_go_cache, tool)
from test_stale import make_module, stale_env

DEPLOY = os.path.join(SOURCE_DIR, "deploy")
DASHBOARD = os.path.join(SOURCE_DIR, "dashboards", "gocache-exporter.json")
# Bounds for every wait below.
STARTUP = 60.0
ALERT = 90.0
# The fill level of the tmpfs: past the 0.90 warning, short of 0.97 critical.
FILL = 0.93
POOL = "e2e"  # the runner's pool label, which the fleet rules aggregate by


class Webhook:
    """Alertmanager's receiver: records every notification it is sent."""

    def __init__(self):
        self.notifications = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    hook.notifications.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, status, alertname):
        with self.lock:
            return [(path, a) for path, n in self.notifications for a in n["alerts"]
                    if a["status"] == status and a["labels"]["alertname"] == alertname]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def shorten_for(rules_text):
    """The repository's rules with every `for` cut to 2s: the expressions stay
    as shipped, the test does not wait minutes."""
    return re.sub(r"(?m)^(\s+for:) \S+$", r"\1 2s", rules_text)


def fast_alertmanager(text, webhook_port):
    text = text.replace("http://127.0.0.1:9095", f"http://127.0.0.1:{webhook_port}")
    for key in ("group_wait", "group_interval"):
        text = re.sub(rf"(?m)^(\s+{key}:) \S+$", r"\1 1s", text)
    return text


def promql_regex(value):
    """A value as a regex that matches only itself, inside a PromQL string."""
    return re.escape(value).replace("\\", "\\\\")


def substitute(expr, instance, path):
    """A dashboard query as Grafana would send it for one runner and cache."""
    return (expr.replace("$__rate_interval", "1m").replace("$job", "gocache")
            .replace("$pool", POOL)
            .replace("$instance", promql_regex(instance)).replace("$path", promql_regex(path)))



class EndToEndTest(TempDirTest):

    def setUp(self):
        super().setUp()
        self.processes = []
        self.addCleanup(self.stop_all)

    def stop_all(self):
        for p in reversed(self.processes):
            p.stop()

    def start(self, process):
        self.processes.append(process)
        return process

    def wait(self, what, condition, timeout, process=None):
        deadline = time.monotonic() + timeout
        while True:
            got = condition()
            if got:
                return got
            if process and process.proc.poll() is not None:
                self.fail(f"{process.name} exited while waiting for {what}:\n{process.output()}")
            if time.monotonic() > deadline:
                detail = process.output() if process else ""
                self.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
            time.sleep(0.25)

    def mount_small_filesystem(self, inodes):
        """A tmpfs with exactly `inodes` inodes; the tests run as root in CI."""
        mnt = self.mount_tmpfs(f"size=256m,nr_inodes={inodes},mode=755", name="gocache-e2e")
        st = os.statvfs(mnt)
        self.assertEqual(st.f_files, inodes)
        return mnt

    def test_alerts_fire_and_resolve_and_every_query_evaluates(self):
        # A real cache, built by the real toolchain, then copied (mtimes kept)
        # onto a filesystem sized so that it fills FILL of the inodes.
        built = os.path.join(self.tmp, "built")
        os.mkdir(built)
        make_go_cache(built)
        entries = sum(1 + len(files) for _, _, files in os.walk(os.path.join(built, "cache")))
        inodes = math.ceil((entries + 1) / FILL)
        mnt = self.mount_small_filesystem(inodes)
        cache = os.path.join(mnt, "go-build")
        shutil.copytree(os.path.join(built, "cache"), cache, copy_function=shutil.copy2)
        used = inodes - os.statvfs(mnt).f_ffree
        self.assertGreaterEqual(used / inodes, 0.90)
        self.assertLess(used / inodes, 0.97)

        # The other collectors' inputs: traces of real builds, a real module.
        spool = os.path.join(self.tmp, "spool")
        shutil.copytree(os.path.join(SOURCE_DIR, "tests", "fixtures", "trace"), spool)
        env = stale_env(os.path.join(self.tmp, "stale"))
        module = make_module(os.path.join(self.tmp, "m"))

        helper_socket = os.path.join(self.tmp, "cacheprog.sock")
        exporter = Exporter(f"--cache.dir={cache}", "--scan.interval=1s",
                            f"--trace.dir={spool}", "--trace.settle=1ms",
                            f"--stale.module={module}", f"--stale.go={go_binary()}",
                            "--stale.interval=2s", "--collector.cacheprog",
                            f"--cacheprog.socket={helper_socket}", env=env)
        self.addCleanup(exporter.stop)
        # A GOCACHEPROG helper's reports for this cache, as its lines
        # (test_cacheprog drives the real helper): a start, a hit, a miss, a
        # put, an eviction and a stop.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as helper:
            helper.connect(helper_socket)
            for report in ["start 0", "request 0 get hit - 4096 90000",
                           "request 0 get miss no_entry 0 20000",
                           "request 0 put ok - 4096 1500000", "evict 0 age 2 8192", "stop 0"]:
                event, rest = report.split(" ", 1)
                helper.sendall(f"v1 {event} {os.getpid()} {rest} {cache}\n".encode())
        instance = f"127.0.0.1:{exporter.port}"

        webhook = Webhook()
        self.addCleanup(webhook.close)
        am_port = free_port()
        with open(os.path.join(DEPLOY, "alertmanager", "alertmanager.yml")) as f:
            am_config = fast_alertmanager(f.read(), webhook.port)
        with open(os.path.join(self.tmp, "alertmanager.yml"), "w") as f:
            f.write(am_config)
        with open(os.path.join(DEPLOY, "prometheus", "gocache.rules.yml")) as f:
            rules = shorten_for(f.read())
        with open(os.path.join(self.tmp, "gocache.rules.yml"), "w") as f:
            f.write(rules)
        shutil.copy(os.path.join(DEPLOY, "prometheus", "gocache.fleet.rules.yml"), self.tmp)
        prometheus_yml = f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [gocache.rules.yml, gocache.fleet.rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{am_port}']
scrape_configs:
  - job_name: gocache
    static_configs:
      - targets: ['{instance}']
        labels:
          pool: {POOL}
"""
        alertmanager = self.start(Process("alertmanager", [
            tool("prometheus-alertmanager"), f"--config.file={self.tmp}/alertmanager.yml",
            f"--storage.path={self.tmp}/am", f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=", "--log.level=warn"],
            os.path.join(self.tmp, "alertmanager.log")))
        prometheus = self.start(Prometheus(self.tmp, prometheus_yml))

        def scraped():
            r = prometheus.query('up{job="gocache"}')
            return r.get("status") == "success" and any(
                s["value"][1] == "1" for s in r["data"]["result"])

        self.wait("Prometheus to scrape the exporter", scraped, STARTUP, prometheus)
        self.wait("Alertmanager to start",
                  lambda: self.ping(f"http://127.0.0.1:{am_port}/-/ready"), STARTUP, alertmanager)

        # The inode alert goes from Prometheus through Alertmanager to the
        # warning receiver.
        firing = self.wait("GoCacheInodeUsageHigh at the webhook",
                           lambda: webhook.alerts("firing", "GoCacheInodeUsageHigh"), ALERT,
                           prometheus)
        receiver, alert = firing[0]
        self.assertEqual(receiver, "/chat")
        self.assertEqual(alert["labels"]["path"], cache)
        self.assertEqual(alert["labels"]["severity"], "warning")
        self.assertEqual(alert["labels"]["instance"], instance)
        self.assertEqual(webhook.alerts("firing", "GoCacheInodeUsageCritical"), [])

        # Every panel of the dashboard shows data now that every collector
        # reported; drop one more trace so that rates move.
        self.wait("the stale collector's first go list",
                  lambda: self.has_series(prometheus, "gocache_stale_list_success"), STARTUP,
                  prometheus)
        shutil.copy(os.path.join(spool, "warm-build.actiongraph.json.done"),
                    os.path.join(spool, "again.actiongraph.json"))
        self.wait("the new trace to be counted", lambda: os.path.exists(
            os.path.join(spool, "again.actiongraph.json.done")), STARTUP)
        time.sleep(3)  # a few scrapes with the new counts
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = substitute(target["expr"], instance, cache)
                r = prometheus.query(expr)
                self.assertEqual(r.get("status"), "success", f'{panel["title"]}: {expr}: {r}')
                self.assertTrue(r["data"]["result"], f'{panel["title"]} has no data: {expr}')
        for variable in dashboard["templating"]["list"]:
            if isinstance(variable.get("query"), dict):
                expr = substitute(variable["query"]["query"], instance, cache)
                match = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
                self.assertTrue(match, expr)
                r = prometheus.query(match.group(1))
                values = {s["metric"].get(match.group(2)) for s in r["data"]["result"]}
                self.assertTrue(values - {None}, f"variable {variable['name']} has no values")
        for rule_expr in re.findall(r"(?ms)^\s+expr: (\|\n.*?|.*?)\n\s+for:", rules):
            expr = rule_expr[1:] if rule_expr.startswith("|") else rule_expr
            r = prometheus.query(expr)
            self.assertEqual(r.get("status"), "success", f"{expr}: {r}")

        # Trimmed below the threshold (oldest entries first, as a trim does),
        # the alert resolves all the way to the webhook.
        files = sorted((os.stat(os.path.join(d, n)).st_mtime_ns, os.path.join(d, n))
                       for d, _, names in os.walk(cache) for n in names
                       if n.endswith(("-a", "-d")))
        target_used = int(inodes * 0.80)
        for _, path in files[:max(0, used - target_used)]:
            os.unlink(path)
        exporter.accept_cache_changes("the test removes the oldest entries, as a trim would")
        self.assertLess((inodes - os.statvfs(mnt).f_ffree) / inodes, 0.90)
        resolved = self.wait("GoCacheInodeUsageHigh to resolve at the webhook",
                             lambda: webhook.alerts("resolved", "GoCacheInodeUsageHigh"), ALERT,
                             prometheus)
        self.assertEqual(resolved[0][1]["labels"]["path"], cache)
        r = prometheus.query('ALERTS{alertname="GoCacheInodeUsageHigh",alertstate="firing"}')
        self.assertEqual(r["data"]["result"], [])
        # Through all of it, the exporter changed nothing in the cache.
        self.assertEqual(exporter.stop(), 0, exporter.log())
        exporter.check_caches()

    @staticmethod
    def has_series(prometheus, expr):
        r = prometheus.query(expr)
        return r.get("status") == "success" and bool(r["data"]["result"])

    @staticmethod
    def ping(url):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


if __name__ == "__main__":
    import unittest
    unittest.main()
