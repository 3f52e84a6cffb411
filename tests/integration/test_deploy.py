"""The files users deploy, checked with the tools that read them: promtool for
the scrape configuration and the alert rules (with their unit tests), amtool
for the Alertmanager routing, systemd-analyze for the unit, the Grafana
dashboard against its generator and its structure, the Kubernetes manifests
against each other, and the Dockerfile's runtime packages against what the
built binary links."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

from harness import EXPORTER, SOURCE_DIR, TempDirTest, debian_minbase, run_exporter, tool

DEPLOY = os.path.join(SOURCE_DIR, "deploy")
DASHBOARD = os.path.join(SOURCE_DIR, "dashboards", "gocache-exporter.json")
RULES = os.path.join(DEPLOY, "prometheus", "gocache.rules.yml")
FLEET_RULES = os.path.join(DEPLOY, "prometheus", "gocache.fleet.rules.yml")
CENTRAL_RULES = os.path.join(DEPLOY, "prometheus", "gocache.central.rules.yml")
ALERTMANAGER = os.path.join(DEPLOY, "alertmanager", "alertmanager.yml")
UNIT = os.path.join(DEPLOY, "systemd", "gocache_exporter.service")
AUTOTRIM_UNIT = os.path.join(DEPLOY, "systemd", "gocache_exporter-autotrim.service")
KUBERNETES = os.path.join(DEPLOY, "kubernetes")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def readme():
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        return f.read()


def readme_families():
    return set(re.findall(r"^\| `?([a-z_:]+)`? \|", readme(), re.M))


def run(*cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


def load_yaml(path):
    with open(path) as f:
        return list(yaml.safe_load_all(f))


def dashboard_exprs(dashboard):
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_exprs():
    return [r["expr"] for g in load_yaml(RULES)[0]["groups"] for r in g["rules"]]


def metric_names(expr):
    return {HISTOGRAM_SUFFIX.sub("", m) for m in re.findall(r"\b(gocache_[a-z_]+)", expr)}


class PrometheusFilesTest(unittest.TestCase):

    def test_scrape_configs_are_valid(self):
        # Single tier: the alerts and the fleet rules (the dashboard's fleet
        # row); two tiers: the fleet rules at the edge, alerts on them at the
        # center.
        for name, rule_counts in (("prometheus.yml", (6, 9)), ("file_sd.yml", (6, 9)),
                                  ("edge.yml", (9,)), ("central.yml", (4,))):
            r = run(tool("promtool"), "check", "config", os.path.join(DEPLOY, "prometheus", name))
            self.assertEqual(r.returncode, 0, name + r.stdout + r.stderr)
            self.assertEqual(re.findall(r"SUCCESS: (\d+) rules found", r.stdout),
                             [str(n) for n in rule_counts], name)

    def test_kubernetes_scrape_config_matches_the_daemonset(self):
        # Debian's promtool is built without Kubernetes discovery and cannot
        # load this file: check that it selects what the DaemonSet runs.
        [config] = load_yaml(os.path.join(DEPLOY, "prometheus", "kubernetes-pods.yml"))
        [job] = config["scrape_configs"]
        self.assertEqual(job["job_name"], "gocache")
        self.assertEqual(job["kubernetes_sd_configs"][0]["role"], "pod")
        keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"]
                if r.get("action") == "keep"}
        [daemonset] = load_yaml(os.path.join(KUBERNETES, "daemonset.yaml"))
        pod = daemonset["spec"]["template"]
        self.assertEqual(keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                         pod["metadata"]["labels"]["app.kubernetes.io/name"])
        self.assertEqual(keep["__meta_kubernetes_pod_container_port_name"],
                         pod["spec"]["containers"][0]["ports"][0]["name"])
        self.assertEqual(job["kubernetes_sd_configs"][0]["namespaces"]["names"],
                         [daemonset["metadata"]["namespace"]])

    def test_rules_are_valid(self):
        r = run(tool("promtool"), "check", "rules", RULES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 6 rules found", r.stdout)

    def test_rule_unit_tests_pass(self):
        for tests in ("gocache.rules.test.yml", "gocache.fleet.rules.test.yml"):
            r = run(tool("promtool"), "test", "rules", tests,
                    cwd=os.path.join(DEPLOY, "prometheus"))
            self.assertEqual(r.returncode, 0, tests + r.stdout + r.stderr)
            self.assertIn("SUCCESS", r.stdout)

    def test_fleet_rules_follow_the_naming_convention(self):
        # gocache:<quantity>:<operation>_by_<level>, each level keeping the
        # labels it names; every source metric is documented.
        levels = {"cache": "job, pool, instance, path, mountpoint", "pool": "job, pool"}
        [doc] = load_yaml(FLEET_RULES)
        for rule in doc["groups"][0]["rules"]:
            name = rule["record"]
            m = re.fullmatch(r"gocache:([a-z_]+):([a-z0-9]+)_by_(cache|pool)", name)
            self.assertTrue(m, name)
            self.assertIn(f"by ({levels[m.group(3)]}", rule["expr"], name)
            self.assertEqual(metric_names(rule["expr"]) - readme_families(), set(), name)
            self.assertTrue(f"| `{name}` |" in readme(), f"the README does not list {name}")

    def test_central_alerts_read_recorded_series_and_have_runbooks(self):
        recorded = {r["record"] for r in load_yaml(FLEET_RULES)[0]["groups"][0]["rules"]}
        edge_alerts = {r["alert"]: r for g in load_yaml(RULES)[0]["groups"] for r in g["rules"]}
        for rule in load_yaml(CENTRAL_RULES)[0]["groups"][0]["rules"]:
            name = rule["alert"]
            self.assertEqual(set(re.findall(r"\bgocache[:_][a-z_:]+", rule["expr"])) - recorded,
                             set(), name)
            # The runbook of the single-tier alert of the same name applies:
            # same severity, wait and threshold.
            self.assertIn(name, edge_alerts)
            edge = edge_alerts[name]
            self.assertEqual(rule["labels"], edge["labels"], name)
            self.assertEqual(rule["for"], edge["for"], name)
            if "inode_usage_ratio" in rule["expr"]:
                self.assertEqual(rule["expr"].split(" >= ")[1], edge["expr"].split(" >= ")[1])
                self.assertEqual(rule["annotations"], edge["annotations"], name)
            self.assertTrue(f"#### {name}\n" in readme(), name)

    def test_a_fresh_runner_pages_nobody(self):
        # What the real exporter reports for a runner whose caches do not
        # exist yet, as promtool input series held for five hours: no alert.
        with tempfile.TemporaryDirectory() as tmp:
            r = run_exporter("--once", f"--cache.dir={tmp}/home/.cache/go-build",
                             f"--modcache.dir={tmp}/home/go/pkg/mod")
            self.assertEqual(r.returncode, 0, r.stderr)
            text = r.stdout.decode()
            self.assertIn("gocache_cache_present{", text)
            instance = 'job="gocache",instance="fresh:9959"'
            series = {f"up{{{instance}}}": "1"}  # (series, value)
            for line in text.splitlines():
                name_labels, _, sample = line.rpartition(" ")
                if line.startswith("#") or "_timestamp_seconds" in name_labels:
                    continue  # absolute times: promtool's clock starts at 0
                name, _, labels = name_labels.partition("{")
                series[f"{name}{{{instance}{',' + labels.rstrip('}') if labels else ''}}}"] = sample
            present = {k: v for k, v in series.items() if k.startswith("gocache_cache_present")}
            self.assertEqual(list(present.values()), ["0", "0"], present)
            self.assertEqual(series[f'gocache_scrape_collector_success{{{instance},'
                                    'collector="inode"}'], "1")
            alerts = [r["alert"] for g in load_yaml(RULES)[0]["groups"] for r in g["rules"]]
            shutil.copy(RULES, tmp)
            test = {
                "rule_files": [os.path.basename(RULES)],
                "evaluation_interval": "1m",
                "tests": [{
                    "interval": "1m",
                    "input_series": [{"series": k, "values": f"{v}x300"}
                                     for k, v in series.items()],
                    "alert_rule_test": [{"eval_time": "5h", "alertname": a, "exp_alerts": []}
                                        for a in alerts],
                }],
            }
            path = os.path.join(tmp, "fresh.test.yml")
            with open(path, "w") as f:
                yaml.safe_dump(test, f)
            r = run(tool("promtool"), "test", "rules", path, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("SUCCESS", r.stdout)

    def test_rules_use_documented_metrics_and_have_runbooks(self):
        text = readme()
        for group in load_yaml(RULES)[0]["groups"]:
            for rule in group["rules"]:
                name = rule["alert"]
                self.assertIn(rule["labels"]["severity"], ("warning", "critical"), name)
                for key in ("summary", "description"):
                    self.assertTrue(rule["annotations"].get(key), f"{name} has no {key}")
                self.assertTrue(f"#### {name}\n" in text, f"README has no runbook for {name}")
                self.assertEqual(metric_names(rule["expr"]) - readme_families(), set(), name)

    def test_prometheus_rule_is_generated_from_the_rules(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "prometheusrule.yaml")
            r = run(os.path.join(SOURCE_DIR, "scripts", "gen-prometheusrule.sh"), out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f, open(os.path.join(KUBERNETES, "prometheusrule.yaml")) as g:
                self.assertEqual(f.read(), g.read(),
                                 "rerun scripts/gen-prometheusrule.sh after editing the rules")
        rule = load_yaml(os.path.join(KUBERNETES, "prometheusrule.yaml"))[0]
        self.assertEqual(rule["kind"], "PrometheusRule")
        self.assertEqual(rule["spec"]["groups"],
                         load_yaml(RULES)[0]["groups"] + load_yaml(FLEET_RULES)[0]["groups"])


class AlertmanagerTest(unittest.TestCase):

    def test_config_is_valid(self):
        r = run(tool("amtool"), "check-config", ALERTMANAGER)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_routes_by_severity(self):
        for labels, receiver in ((["severity=critical", "alertname=GoCacheInodeUsageCritical"],
                                  "ci-infra-pager"),
                                 (["severity=warning", "alertname=GoCacheInodeUsageHigh"],
                                  "ci-infra-chat")):
            r = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                    *labels)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stdout.strip(), receiver, labels)

    def test_critical_inhibits_warning_for_the_same_cache(self):
        config = load_yaml(ALERTMANAGER)[0]
        [rule] = config["inhibit_rules"]
        self.assertEqual(rule["source_matchers"], ['severity="critical"'])
        self.assertEqual(rule["target_matchers"], ['severity="warning"'])
        self.assertEqual(sorted(rule["equal"]), ["instance", "path"])


class SystemdTest(unittest.TestCase):
    UNITS = [UNIT, AUTOTRIM_UNIT]

    def unit_for_this_build(self, unit, tmp):
        """The unit with ExecStart pointing at the binary built here, which
        systemd-analyze checks for existence."""
        with open(unit) as f:
            text = f.read()
        self.assertIn("ExecStart=/usr/local/bin/gocache_exporter", text)
        path = os.path.join(tmp, os.path.basename(unit))
        with open(path, "w") as f:
            f.write(text.replace("/usr/local/bin/gocache_exporter", EXPORTER))
        return path

    def test_units_verify_as_shipped(self):
        # The units as they are installed, with the binary where the README
        # installs it: in a private mount namespace, /usr/local/bin is a
        # tmpfs holding only the binary, so nothing on this machine changes.
        installed = "/usr/local/bin/gocache_exporter"
        for unit in self.UNITS:
            with self.subTest(unit=unit):
                r = run(tool("unshare"), "--mount", "--propagation=private", "sh", "-ec",
                        'mount -t tmpfs -o mode=755 gocache-verify /usr/local/bin\n'
                        'cp "$1" "$2"\n'
                        'exec systemd-analyze verify "$3"', "sh", EXPORTER, installed, unit)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertEqual(r.stderr.strip(), "")
        self.assertFalse(os.path.exists(installed) and
                         os.path.samefile(installed, EXPORTER))

    def test_units_are_hardened(self):
        for unit in self.UNITS:
            # The threshold is in tenths: 20 is an exposure of 2.0 of 10.
            with self.subTest(unit=unit), tempfile.TemporaryDirectory() as tmp:
                r = run(tool("systemd-analyze"), "security", "--offline=true", "--threshold=20",
                        self.unit_for_this_build(unit, tmp))
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)",
                                        r.stdout).group(1))
                self.assertLess(level, 2.0)
                with open(unit) as f:
                    text = f.read()
                for option in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                               "ProtectHome=read-only", "CapabilityBoundingSet=\n"):
                    self.assertIn(option, text)

    def test_read_only_unit_writes_nowhere(self):
        with open(UNIT) as f:
            text = f.read()
        self.assertIn("DynamicUser=yes", text)
        self.assertNotRegex(text, r"(?m)^ReadWritePaths=")
        self.assertNotIn("--trim.auto", text)

    def test_autotrim_unit_may_write_only_its_cache(self):
        with open(AUTOTRIM_UNIT) as f:
            text = f.read()
        cache = re.search(r"(?m)^Environment=GOCACHE_DIR=(\S+)$", text).group(1)
        self.assertEqual(re.findall(r"(?m)^ReadWritePaths=(.*)$", text), [cache])
        self.assertIn("--trim.auto-inode-usage=0.90", text)
        # The flags it gives are ones the exporter accepts.
        flags = re.findall(r"(--[a-z.-]+=\S+)", text.split("ExecStart=")[1].split("Restart=")[0])
        with tempfile.TemporaryDirectory() as tmp:
            args = [f.replace("${GOCACHE_DIR}", tmp).replace(":9959", "127.0.0.1:0")
                    for f in flags]
            # run_exporter also proves that the empty cache stays as it is.
            r = run_exporter(*args, "--once", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())


class CiInstallTest(TempDirTest):
    """deploy/ci/README.md's install steps, as written, in a scratch Debian
    root: they must make every user, group and directory they use."""

    def steps(self):
        with open(os.path.join(DEPLOY, "ci", "README.md")) as f:
            text = f.read()
        block = re.search(r"\n## Install\n.*?```sh\n(.*?)```", text, re.S).group(1)
        lines = [line.split("  #")[0].rstrip() for line in block.splitlines()
                 if line and not line.startswith("#")]  # less comments
        self.assertTrue(all(line.startswith("sudo ") for line in lines), lines)
        return [line[len("sudo "):] for line in lines]

    def in_root(self, *cmd):
        r = run("chroot", self.root, *cmd)
        self.assertEqual(r.returncode, 0, f"{cmd}: {r.stdout}{r.stderr}")
        return r.stdout

    def test_install_steps_make_what_they_use(self):
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root)
        r = run("tar", "-xf", debian_minbase(), "-C", self.root)
        self.assertEqual(r.returncode, 0, r.stderr)
        shutil.copytree(DEPLOY, os.path.join(self.root, "src", "deploy"))
        self.in_root("useradd", "--create-home", "runner")  # the CI's user, there already
        steps = self.steps()
        self.assertIn("systemd-sysusers gocache_exporter.conf", steps)
        for attempt in ("first", "again"):  # safe to run twice
            for step in steps:
                with self.subTest(attempt=attempt, step=step):
                    if step.startswith("systemd-sysusers "):
                        # The root's files, by the host's systemd (minbase has none).
                        r = run(tool("systemd-sysusers"), f"--root={self.root}",
                                *step.split()[1:])
                        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                    else:
                        self.in_root("sh", "-ec", f"cd /src && {step}")
            user = self.in_root("getent", "passwd", "gocache-exporter").strip().split(":")
            self.assertLess(int(user[2]), 1000, user)  # a system user
            self.assertEqual(user[6], "/usr/sbin/nologin")
            group = self.in_root("getent", "group", "gocache-ci").strip().split(":")
            self.assertEqual(group[3].split(","), ["runner"])
            self.assertIn("gocache-ci", self.in_root("id", "-nG", "runner").split())
            st = self.in_root("stat", "-c", "%U %G %a", "/var/spool/gocache-traces").split()
            self.assertEqual(st, ["gocache-exporter", "gocache-ci", "3775"])
            self.assertEqual(self.in_root("stat", "-c", "%a", "/opt/gocache_exporter/ci/go"),
                             "755\n")
            with open(os.path.join(DEPLOY, "ci", "go"), "rb") as a, open(
                    os.path.join(self.root, "opt/gocache_exporter/ci/go"), "rb") as b:
                self.assertEqual(a.read(), b.read())
        # A CI user can write into the spool; the exporter's user can rename there.
        self.in_root("su", "runner", "-s", "/bin/sh", "-c",
                     "touch /var/spool/gocache-traces/job.actiongraph.json")
        self.in_root("setpriv", "--reuid=gocache-exporter", "--regid=gocache-exporter",
                     "--init-groups", "mv", "/var/spool/gocache-traces/job.actiongraph.json",
                     "/var/spool/gocache-traces/job.actiongraph.json.done")


class KubernetesTest(unittest.TestCase):

    def manifests(self):
        by_kind = {}
        for name in sorted(os.listdir(KUBERNETES)):
            for doc in load_yaml(os.path.join(KUBERNETES, name)):
                by_kind[doc["kind"]] = doc
        return by_kind

    def test_manifests_fit_together(self):
        m = self.manifests()
        self.assertEqual(set(m), {"DaemonSet", "Service", "ServiceMonitor", "PrometheusRule"})
        pod = m["DaemonSet"]["spec"]["template"]
        labels = pod["metadata"]["labels"]
        self.assertEqual(m["DaemonSet"]["spec"]["selector"]["matchLabels"], labels)
        self.assertLessEqual(m["Service"]["spec"]["selector"].items(), labels.items())
        self.assertLessEqual(m["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items(),
                             m["Service"]["metadata"]["labels"].items())
        [container] = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertEqual(ports, {"metrics": 9959})
        self.assertEqual([p["targetPort"] for p in m["Service"]["spec"]["ports"]], ["metrics"])
        self.assertEqual([e["port"] for e in m["ServiceMonitor"]["spec"]["endpoints"]],
                         ["metrics"])
        # The rules' GoCacheExporterDown expects job="gocache".
        relabel = m["ServiceMonitor"]["spec"]["endpoints"][0]["relabelings"]
        self.assertIn({"targetLabel": "job", "replacement": "gocache"}, relabel)

    def test_daemonset_is_unprivileged_and_read_only(self):
        pod = self.manifests()["DaemonSet"]["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
        [container] = pod["containers"]
        sc = container["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        mounts = container["volumeMounts"]
        self.assertTrue(mounts)
        self.assertTrue(all(v["readOnly"] for v in mounts), mounts)
        host_paths = {v["name"] for v in pod["volumes"] if "hostPath" in v}
        self.assertEqual({v["name"] for v in mounts}, host_paths)
        # Every cache the container mounts is one the exporter is told to watch.
        for v in mounts:
            self.assertTrue(any(a.endswith("=" + v["mountPath"]) for a in container["args"]), v)


class DockerfileTest(unittest.TestCase):
    """No container engine runs here: the Dockerfile is checked by reading
    it, against the libraries the binary built here actually needs."""

    BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:bookworm-slim

    def stages(self):
        with open(os.path.join(DEPLOY, "docker", "Dockerfile")) as f:
            text = f.read()
        return re.split(r"^FROM ", text, flags=re.M)[1:]

    def test_runtime_stage_installs_every_library_the_binary_links(self):
        build, runtime = self.stages()
        self.assertTrue(build.startswith("debian:bookworm AS build"))
        self.assertTrue(runtime.startswith("debian:bookworm-slim"))
        self.assertRegex(runtime, r"(?m)^USER 65534:65534$")
        installed = set(re.findall(r"\b(lib[a-z0-9.+-]+|zlib1g)\b",
                                   runtime.split("COPY")[0])) | self.BASE_PACKAGES
        r = run("ldd", EXPORTER)
        self.assertEqual(r.returncode, 0, r.stderr)
        # A sanitizer build (make test-asan) also links the sanitizers'
        # runtimes, which no release image carries.
        libraries = [lib for lib in re.findall(r"=> (/\S+)", r.stdout)
                     if not re.search(r"/lib(asan|ubsan|lsan|tsan)\.so", lib)]
        self.assertGreater(len(libraries), 5)
        for library in libraries:
            owner = run("dpkg", "-S", os.path.realpath(library))
            if owner.returncode != 0:  # the merged-/usr alias of the same file
                owner = run("dpkg", "-S", os.path.realpath(library).replace("/usr/lib/", "/lib/"))
            self.assertEqual(owner.returncode, 0, library)
            package = owner.stdout.split(":")[0]
            self.assertIn(package, installed, f"{library} comes from {package}")

    def test_build_stage_installs_what_install_deps_builds_with(self):
        build = self.stages()[0]
        with open(os.path.join(SOURCE_DIR, "scripts", "install-deps.sh")) as f:
            deps = f.read()
        block = deps[deps.index("declare -A build_pkgs"):deps.index("declare -A test_pkgs")]
        for package in re.findall(r"\]=(\S+)", block):
            self.assertIn(package, build, package)


class DashboardTest(unittest.TestCase):

    def setUp(self):
        with open(DASHBOARD) as f:
            self.dashboard = json.load(f)
        self.panels = [p for p in self.dashboard["panels"] if p["type"] != "row"]

    def test_is_what_the_generator_writes(self):
        sys.path.insert(0, os.path.join(SOURCE_DIR, "dashboards"))
        try:
            import generate
        finally:
            sys.path.pop(0)
        with open(DASHBOARD) as f:
            self.assertEqual(f.read(), generate.render(),
                             "run python3 dashboards/generate.py after editing it")

    def test_importable_with_a_datasource_input_and_variables(self):
        d = self.dashboard
        self.assertEqual(d["uid"], "gocache-exporter")
        self.assertEqual([i["name"] for i in d["__inputs"]], ["DS_PROMETHEUS"])
        names = [v["name"] for v in d["templating"]["list"]]
        self.assertEqual(names, ["datasource", "job", "pool", "instance", "path"])

    def test_queries_only_documented_metrics(self):
        exprs = dashboard_exprs(self.dashboard)
        exprs += [v["query"]["query"] for v in self.dashboard["templating"]["list"]
                  if isinstance(v.get("query"), dict)]
        used = set().union(*(metric_names(e) for e in exprs))
        self.assertGreater(len(used), 25)
        self.assertEqual(used - readme_families(), set())

    def test_structure(self):
        ids = [p["id"] for p in self.dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        cells = {}
        for p in self.dashboard["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, f'{p["title"]} overlaps {cells.get((x, y))}')
                    cells[(x, y)] = p["title"]
        for p in self.panels:
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${datasource}"},
                             p["title"])
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])

    def test_predicted_rebuilds_are_zero_when_nothing_is_stale(self):
        # The dashboard's query and the README's, evaluated by promtool's
        # PromQL engine: a module whose only stale packages are served from
        # the cache shows 0 predicted rebuilds, not an empty result.
        [panel] = [p for p in self.panels
                   if p["title"] == "Predicted rebuilds by module and target"]
        dashboard_expr = (panel["targets"][0]["expr"].replace('"$job"', '"gocache"')
                          .replace('"$instance"', '"r1:9959"'))
        readme_expr = re.search(r"^`(sum without \(reason\) \(gocache_stale_packages.*)`\.$",
                                readme(), re.M).group(1)
        target = 'job="gocache",instance="r1:9959",module="/src/m",goos="linux",goarch="amd64"'
        served = 'reason="not installed but available in build cache"'
        test = {
            "evaluation_interval": "1m",
            "tests": [{
                "interval": "1m",
                "input_series": [
                    {"series": f"gocache_packages{{{target}}}", "values": "40x10"},
                    {"series": f"gocache_stale_packages{{{target},{served}}}", "values": "3x10"},
                ],
                "promql_expr_test": [
                    {"expr": dashboard_expr, "eval_time": "5m", "exp_samples": [
                        {"labels": '{module="/src/m",goos="linux",goarch="amd64"}', "value": 0}]},
                    {"expr": readme_expr, "eval_time": "5m", "exp_samples": [
                        {"labels": "{" + target + "}", "value": 0}]},
                ],
            }, {
                "interval": "1m",
                "input_series": [
                    {"series": f"gocache_packages{{{target}}}", "values": "40x10"},
                    {"series": f"gocache_stale_packages{{{target},{served}}}", "values": "3x10"},
                    {"series": f'gocache_stale_packages{{{target},reason="stale dependency"}}',
                     "values": "5x10"},
                    {"series": f'gocache_stale_packages{{{target},reason="build ID mismatch"}}',
                     "values": "2x10"},
                ],
                "promql_expr_test": [
                    {"expr": dashboard_expr, "eval_time": "5m", "exp_samples": [
                        {"labels": '{module="/src/m",goos="linux",goarch="amd64"}', "value": 7}]},
                    {"expr": readme_expr, "eval_time": "5m", "exp_samples": [
                        {"labels": "{" + target + "}", "value": 7}]},
                ],
            }],
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rebuilds.test.yml")
            with open(path, "w") as f:
                yaml.safe_dump(test, f)
            r = run(tool("promtool"), "test", "rules", path)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("SUCCESS", r.stdout)

    def test_heatmaps_read_buckets_in_heatmap_format(self):
        heatmaps = [p for p in self.panels if p["type"] == "heatmap"]
        self.assertGreaterEqual(len(heatmaps), 2)
        for p in heatmaps:
            for t in p["targets"]:
                self.assertEqual(t["format"], "heatmap", p["title"])
                self.assertRegex(t["expr"], r"^sum by \(le\) \(.*_bucket\{", p["title"])
        latency = [t["expr"] for p in heatmaps for t in p["targets"] if "trace" in t["expr"]]
        self.assertEqual(len(latency), 2)
        for expr in latency:
            self.assertRegex(expr, r"increase\(gocache_trace_cache_(read|write)_seconds_bucket"
                                   r"\{.*\}\[\$__rate_interval\]\)")
        exact = [t["expr"] for p in heatmaps for t in p["targets"] if "cacheprog" in t["expr"]]
        self.assertEqual(len(exact), 2)
        for expr, command in zip(exact, ("get", "put")):
            self.assertRegex(expr, r"increase\(gocache_cacheprog_request_duration_seconds_bucket"
                                   r'\{.*command="' + command + r'".*\}\[\$__rate_interval\]\)')

    def test_has_the_rows_users_look_for(self):
        rows = [p["title"] for p in self.dashboard["panels"] if p["type"] == "row"]
        self.assertEqual(rows, ["Fleet", "Overview", "Inode and space usage", "Density", "Entry age",
                                "Staleness", "Cache latency from the GOCACHEPROG helper",
                                "Cache latency derived from action graphs", "Exporter health"])
        inode = next(p for p in self.panels if p["title"] == "Inode usage" and
                     p["type"] == "timeseries")
        steps = inode["fieldConfig"]["defaults"]["thresholds"]["steps"]
        self.assertIn({"color": "red", "value": 0.9}, steps)


if __name__ == "__main__":
    unittest.main()
