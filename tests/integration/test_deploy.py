"""The files users deploy, checked with the tools that read them."""

import json
import os
import re
import subprocess

from harness import SOURCE_DIR, tool
import unittest

DASHBOARD = os.path.join(SOURCE_DIR, "dashboards", "gocache-exporter.json")


def readme_families():
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        return set(re.findall(r"^\| `?([a-z_:]+)`? \|", f.read(), re.M))


class DeployTest(unittest.TestCase):

    def test_prometheus_config_is_valid(self):
        r = subprocess.run([tool("promtool"), "check", "config",
                            os.path.join(SOURCE_DIR, "deploy", "prometheus", "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_dashboard_queries_only_documented_metrics(self):
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        self.assertEqual(dashboard["uid"], "gocache-exporter")
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]
                  if isinstance(v.get("query"), dict)]
        self.assertGreater(len(exprs), 5)
        used = {m for e in exprs for m in re.findall(r"\b(gocache_[a-z_]+)", e)}
        self.assertEqual(used - readme_families(), set())
        ids = [p["id"] for p in dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
