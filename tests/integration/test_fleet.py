"""A fleet in two tiers, with Debian's Prometheus: 20 exporters on 127.0.0.1
in two pools, each watching a build cache and a module cache of its own; one
runner's build cache sits on a small tmpfs past 90% of its inodes. An edge
Prometheus (deploy/prometheus/edge.yml) scrapes them and records the fleet
rules (gocache.fleet.rules.yml); a central Prometheus (central.yml)
federates gocache:* from it and evaluates gocache.central.rules.yml, as
shipped but for shorter intervals and `for`s. The central server must hold
every aggregate, equal to what the caches hold (find) and to the edge's own
view, one inode usage series per runner cache and no other per-runner
series; its inode alert must fire for the full runner and no other."""

import json
import math
import os
import shutil
import time

import yaml

from harness import (SOURCE_DIR, Exporter, Prometheus, TempDirTest, go_binary,
                     make_synthetic_cache, sum_find)
from test_e2e import shorten_for
from test_stale import make_module, stale_env

PROMETHEUS = os.path.join(SOURCE_DIR, "deploy", "prometheus")
FIXTURES = os.path.join(SOURCE_DIR, "tests", "fixtures", "trace")
RUNNERS = 20
POOLS = ("linux-amd64", "linux-arm64")  # runners 0-9 and 10-19, as in edge.yml
FULL = 0  # the runner whose build cache fills its filesystem's inodes
FEEDS = (1, 11)  # one runner per pool also reads traces and runs go list
FILL = 0.93  # past the 0.90 warning, short of the 0.97 critical
WAIT = 90.0  # seconds, for every wait below
SERVED = "not installed but available in build cache"
# What a central Prometheus keeps of its own besides what it federates.
CENTRAL_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
               "scrape_samples_post_metric_relabeling", "scrape_series_added",
               "ALERTS", "ALERTS_FOR_STATE"}


def fast(config, rule_file):
    """A shipped Prometheus configuration with 1 s intervals and no Alertmanager."""
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s",
                             "evaluation_interval": "1s"})
    config.pop("alerting", None)
    config["rule_files"] = [rule_file]
    return config


def load(name):
    with open(os.path.join(PROMETHEUS, name)) as f:
        return yaml.safe_load(f)


class TwoTierTest(TempDirTest):

    def setUp(self):
        super().setUp()
        self.servers = []
        self.addCleanup(lambda: [s.stop() for s in reversed(self.servers)])

    def result(self, server, expr):
        r = server.query(expr)
        self.assertEqual(r.get("status"), "success", f"{expr}: {r}")
        return r["data"]["result"]

    @staticmethod
    def series(server, expr):
        """The result of expr, or none while the server starts."""
        r = server.query(expr)
        return r["data"]["result"] if r.get("status") == "success" else []

    def wait(self, what, condition, server):
        deadline = time.monotonic() + WAIT
        while True:
            got = condition()
            if got:
                return got
            if server.proc.poll() is not None or time.monotonic() > deadline:
                self.fail(f"waiting for {what}:\n{server.output()}")
            time.sleep(0.25)

    def make_caches(self):
        """(build cache, module cache, synthetic cache facts) for each runner."""
        caches = []
        for i in range(RUNNERS):
            build = os.path.join(self.tmp, f"runner{i}", "go-build")
            want = make_synthetic_cache(build, pairs=20 + i)
            mod = os.path.join(self.tmp, f"runner{i}", "mod")
            os.makedirs(mod)
            caches.append((build, mod, want))
        # The full runner's build cache, copied (mtimes kept) onto a tmpfs
        # with just enough inodes.
        build, mod, want = caches[FULL]
        inodes_used = sum(1 + len(files) for _, _, files in os.walk(build))
        inodes = math.ceil((inodes_used + 1) / FILL)
        mnt = self.mount_tmpfs(f"size=64m,nr_inodes={inodes},mode=755", name="gocache-fleet")
        full = os.path.join(mnt, "go-build")
        shutil.copytree(build, full, copy_function=shutil.copy2)
        shutil.rmtree(build)
        st = os.statvfs(mnt)
        usage = (st.f_files - st.f_ffree) / st.f_files
        self.assertTrue(0.90 <= usage < 0.97, usage)
        caches[FULL] = (full, mod, want)
        return caches

    def start_exporters(self, caches):
        exporters = []
        for i, (build, mod, _) in enumerate(caches):
            args, env = [f"--cache.dir={build}", f"--modcache.dir={mod}"], None
            if i in FEEDS:
                spool = os.path.join(self.tmp, f"runner{i}", "spool")
                os.mkdir(spool)
                env = stale_env(os.path.join(self.tmp, f"runner{i}", "stale"))
                module = make_module(os.path.join(self.tmp, f"runner{i}", "module"))
                args += [f"--trace.dir={spool}", "--trace.settle=1ms",
                         f"--stale.module={module}", f"--stale.go={go_binary()}"]
            exporter = Exporter(*args, env=env)
            self.addCleanup(exporter.stop)
            exporters.append(exporter)
        return exporters

    def drop_builds(self, runner, name):
        """Drops one action graph holding a cold and a warm build of the same
        program: as many compile hits as misses."""
        actions = []
        for fixture in ("cold-build.actiongraph.json", "warm-build.actiongraph.json"):
            with open(os.path.join(FIXTURES, fixture)) as f:
                actions += json.load(f)
        spool = os.path.join(self.tmp, f"runner{runner}", "spool")
        staged = os.path.join(self.tmp, name)
        with open(staged, "w") as f:
            json.dump(actions, f)
        os.rename(staged, os.path.join(spool, name))
        deadline = time.monotonic() + WAIT
        while not os.path.exists(os.path.join(spool, name + ".done")):
            self.assertLess(time.monotonic(), deadline, f"{name} was not read")
            time.sleep(0.1)
        deadline = time.monotonic() + WAIT
        while not os.path.exists(os.path.join(spool, name + ".done")):
            self.assertLess(time.monotonic(), deadline, f"{name} was not read")
            time.sleep(0.1)

    def test_central_holds_the_aggregates_and_pages_for_the_full_runner_only(self):
        caches = self.make_caches()
        exporters = self.start_exporters(caches)
        instances = [f"127.0.0.1:{e.port}" for e in exporters]
        pool_of = {instances[i]: POOLS[i // 10] for i in range(RUNNERS)}

        with open(os.path.join(PROMETHEUS, "gocache.fleet.rules.yml")) as f:
            fleet_rules = f.read()
        with open(os.path.join(PROMETHEUS, "gocache.central.rules.yml")) as f:
            central_rules = shorten_for(f.read())
        for name, text in (("gocache.fleet.rules.yml", fleet_rules),
                           ("gocache.central.rules.yml", central_rules)):
            with open(os.path.join(self.tmp, name), "w") as f:
                f.write(text)
        edge_config = fast(load("edge.yml"), "gocache.fleet.rules.yml")
        [job] = edge_config["scrape_configs"]
        job["static_configs"] = [{"targets": instances[p * 10:(p + 1) * 10],
                                  "labels": {"pool": pool}} for p, pool in enumerate(POOLS)]
        edge = Prometheus(self.tmp, yaml.safe_dump(edge_config), "edge")
        self.servers.append(edge)
        central_config = fast(load("central.yml"), "gocache.central.rules.yml")
        [job] = central_config["scrape_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{edge.port}"]}]
        central = Prometheus(self.tmp, yaml.safe_dump(central_config), "central")
        self.servers.append(central)
        site = edge_config["global"]["external_labels"]["site"]

        self.wait("the edge to scrape every exporter", lambda: len(self.series(
            edge, 'up{job="gocache"} == 1')) == RUNNERS, edge)
        # Counters that move on one runner: its pool's compile actions were
        # half hits. (Both series start at once and equal, so that rate()
        # extrapolates both alike and the ratio is exact.)
        self.drop_builds(FEEDS[0], "first.json")
        time.sleep(3)
        self.drop_builds(FEEDS[0], "second.json")
        # Until the second graph is scraped, no action was counted in the
        # window: 0 / 0.
        self.wait("the second graph at the central server", lambda: [
            s for s in self.series(central, "gocache:build_hit_ratio:rate1h_by_pool")
            if s["value"][1] != "NaN"], central)
        self.wait("both go lists", lambda: len(self.series(
            edge, "gocache_stale_list_success == 1")) == len(FEEDS), edge)

        # The inode alert fires at the central server for the full runner's
        # build cache, and for nothing else.
        full = instances[FULL]
        firing = self.wait("GoCacheInodeUsageHigh at the central server", lambda: self.series(
            central, 'ALERTS{alertname="GoCacheInodeUsageHigh",alertstate="firing"}'), central)
        time.sleep(3)  # time for any other alert to fire too
        alerts = self.result(central, 'ALERTS{alertstate="firing"}')
        self.assertEqual([(a["metric"]["alertname"], a["metric"]["instance"],
                           a["metric"]["path"], a["metric"]["pool"], a["metric"]["site"])
                          for a in alerts],
                         [("GoCacheInodeUsageHigh", full, caches[FULL][0], POOLS[0], site)],
                         firing)

        # One inode usage series per runner cache, equal to the edge's raw one.
        raw = {(s["metric"]["instance"], s["metric"]["path"]): s["value"][1]
               for s in self.result(edge, "gocache_filesystem_inode_usage_ratio")}
        per_cache = {(s["metric"]["instance"], s["metric"]["path"]): s["value"][1]
                     for s in self.result(
                         central, "gocache:filesystem_inode_usage_ratio:max_by_cache")}
        self.assertEqual(len(per_cache), 2 * RUNNERS)
        self.assertEqual(per_cache, raw)

        # Every aggregate, per pool, against the caches and the edge's view.
        def by_pool(expr, server=central, label="pool"):
            return {s["metric"].get(label): float(s["value"][1])
                    for s in self.result(server, expr)}

        worst = by_pool("gocache:filesystem_inode_usage_ratio:max_by_pool")
        self.assertEqual(worst, {pool: max(float(v) for (i, _), v in raw.items()
                                           if pool_of[i] == pool) for pool in POOLS})
        self.assertGreaterEqual(worst[POOLS[0]], 0.90)
        for pool in POOLS:
            runners = range(POOLS.index(pool) * 10, (POOLS.index(pool) + 1) * 10)
            self.assertEqual(by_pool("gocache:entry_bytes:sum_by_pool")[pool],
                             sum(sum_find(caches[i][0], "%s", "-type", "f") for i in runners))
            self.assertEqual(by_pool("gocache:trimmable_bytes:sum_by_pool")[pool],
                             sum(caches[i][2]["trimmable_bytes"] for i in runners))
        self.assertEqual(by_pool("gocache:exporters:count_by_pool"), dict.fromkeys(POOLS, 10))
        self.assertEqual(by_pool("gocache:exporters_down:sum_by_pool"), dict.fromkeys(POOLS, 0))
        failing = self.result(central, "gocache:collectors_failing:sum_by_pool")
        self.assertEqual({(s["metric"]["pool"], s["metric"]["collector"]) for s in failing},
                         {(p, c) for p in POOLS for c in ("inode", "density", "stale", "trace")})
        self.assertEqual({s["value"][1] for s in failing}, {"0"})
        rebuilds = by_pool("gocache:predicted_rebuilds:sum_by_pool")
        self.assertEqual(rebuilds, {pool: by_pool(
            f'sum(gocache_stale_packages{{pool="{pool}",reason!="{SERVED}"}}) '
            f'or sum(gocache_packages{{pool="{pool}"}}) * 0', edge, "none").get(None)
            for pool in POOLS})
        self.assertGreater(rebuilds[POOLS[0]], 0)  # the module was never built
        ratio = by_pool("gocache:build_hit_ratio:rate1h_by_pool")
        self.assertEqual(set(ratio), {POOLS[0]})  # the other pool read no traces
        self.assertAlmostEqual(ratio[POOLS[0]], 0.5, places=9)

        # Nothing per runner reached the central server but the inode usage
        # (and the alert on it); no exporter series at all.
        names = {}
        for s in self.result(central, '{__name__=~".+"}'):
            names.setdefault(s["metric"]["__name__"], []).append(s["metric"])
        recorded = {r["record"] for g in yaml.safe_load(fleet_rules)["groups"]
                    for r in g["rules"]}
        self.assertEqual(set(names) - CENTRAL_OWN, recorded)
        for name, series in names.items():
            if name in CENTRAL_OWN - {"ALERTS", "ALERTS_FOR_STATE"}:
                self.assertEqual({m["job"] for m in series}, {"gocache-federate"}, name)
            per_runner = [m for m in series if m.get("instance") in pool_of]
            if name not in ("gocache:filesystem_inode_usage_ratio:max_by_cache", "ALERTS",
                            "ALERTS_FOR_STATE"):
                self.assertEqual(per_runner, [], name)
        for exporter in exporters:
            self.assertEqual(exporter.stop(), 0, exporter.log())
            exporter.check_caches()
