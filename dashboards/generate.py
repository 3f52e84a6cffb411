#!/usr/bin/env python3
"""Writes dashboards/gocache-exporter.json, the Grafana dashboard.

The dashboard is generated so that its rows, queries and layout stay
consistent; the tests check that the checked-in JSON equals this script's
output. Edit here, run `python3 dashboards/generate.py`, commit both."""

import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job="$job",instance=~"$instance"'
# The fleet row reads the recording rules of gocache.fleet.rules.yml, which a
# central Prometheus also holds.
FSEL = 'job="$job",pool=~"$pool"'
PSEL = SEL + ',path=~"$path"'


class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self):
        self.panels = []
        self.y = 0
        self.x = 0
        self.row_height = 0

    def _next_id(self):
        return len(self.panels) + 1

    def row(self, title):
        self._newline()
        self.panels.append({"id": self._next_id(), "type": "row", "title": title,
                            "collapsed": False, "panels": [],
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}})
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_height
            self.x = 0
            self.row_height = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._next_id()
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["datasource"] = DS
        for i, target in enumerate(panel.get("targets", [])):
            target.setdefault("refId", chr(ord("A") + i))
            target["datasource"] = DS
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)


def target(expr, legend="", fmt=None, instant=False):
    t = {"expr": expr, "legendFormat": legend}
    if fmt:
        t["format"] = fmt
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def thresholds(*steps):
    """steps: (value, color) pairs after the base green."""
    return {"mode": "absolute",
            "steps": [{"color": "green", "value": None}] +
                     [{"color": c, "value": v} for v, c in steps]}


def stat(title, expr, unit, legend="{{path}}", steps=(), description=""):
    return {"type": "stat", "title": title, "description": description,
            "targets": [target(expr, legend, instant=True)],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": thresholds(*steps)},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": "auto"}}


def timeseries(title, targets, unit, description="", threshold_line=None, stack=False,
               minimum=None, maximum=None):
    custom = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    defaults = {"unit": unit, "custom": custom}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    if threshold_line is not None:
        custom["thresholdsStyle"] = {"mode": "line+area"}
        defaults["thresholds"] = thresholds((threshold_line, "red"))
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {"type": "timeseries", "title": title, "description": description,
            "targets": targets, "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def heatmap(title, expr, description=""):
    return {"type": "heatmap", "title": title, "description": description,
            "targets": [target(expr, "{{le}}", fmt="heatmap")],
            "fieldConfig": {"defaults": {"custom": {"scaleDistribution": {"type": "linear"}}},
                            "overrides": []},
            "options": {"calculate": False, "cellGap": 1, "yAxis": {"unit": "s"},
                        "color": {"mode": "scheme", "scheme": "Spectral", "steps": 64,
                                  "exponent": 0.5, "fill": "dark-orange", "scale": "exponential"},
                        "rowsFrame": {"layout": "auto"}, "tooltip": {"show": True,
                                                                     "yHistogram": True},
                        "legend": {"show": True}}}


def build():
    lay = Layout()

    lay.row("Fleet")
    lay.add(timeseries("Worst inode usage by pool", [target(
        f"gocache:filesystem_inode_usage_ratio:max_by_pool{{{FSEL}}}", "{{pool}}")],
        "percentunit", threshold_line=0.9, minimum=0, maximum=1,
        description="The fullest cache filesystem of each pool of runners; the inode alert "
                    "fires at 90%."), 8, 8)
    lay.add(timeseries("Fullest caches", [target(
        f"topk(10, gocache:filesystem_inode_usage_ratio:max_by_cache{{{FSEL}}})",
        "{{instance}} {{path}}")], "percentunit", threshold_line=0.9, minimum=0, maximum=1,
        description="The ten runner caches with the highest inode usage."), 8, 8)
    lay.add(timeseries("Compile hit ratio by pool", [target(
        f"gocache:build_hit_ratio:rate1h_by_pool{{{FSEL}}}", "{{pool}}")], "percentunit",
        minimum=0, maximum=1,
        description="Compile actions served from the cache over all compile actions in the "
                    "last hour, from the action graphs in the trace spools."), 8, 8)
    lay.add(timeseries("Predicted rebuilds by pool", [target(
        f"gocache:predicted_rebuilds:sum_by_pool{{{FSEL}}}", "{{pool}}")], "short",
        description="Packages the next builds would compile again, summed over the pool's "
                    "runners, modules and targets."), 8, 8)
    lay.add(timeseries("Cache and trimmable bytes by pool", [
        target(f"gocache:entry_bytes:sum_by_pool{{{FSEL}}}", "{{pool}} cached"),
        target(f"gocache:trimmable_bytes:sum_by_pool{{{FSEL}}}", "{{pool}} trimmable")],
        "bytes", description="Bytes in the pool's build and module caches, and what the go "
                             "command's next trims delete."), 8, 8)
    lay.add(timeseries("Failing collectors and exporters down", [
        target(f"gocache:collectors_failing:sum_by_pool{{{FSEL}}}",
               "{{pool}} {{collector}} failing"),
        target(f"gocache:exporters_down:sum_by_pool{{{FSEL}}}", "{{pool}} exporters down")],
        "short", minimum=0,
        description="Runners per pool whose collector failed its last update, and exporters "
                    "the pool's Prometheus cannot scrape."), 8, 8)

    lay.row("Overview")
    lay.add(stat("Inode usage", f"gocache_filesystem_inode_usage_ratio{{{PSEL}}}",
                 "percentunit", steps=((0.9, "orange"), (0.97, "red")),
                 description="Used inodes of the filesystem holding each cache; alerts at 90% "
                             "and 97%."), 4, 4)
    lay.add(stat("Cache bytes", f"sum by (path) (gocache_entry_bytes{{{PSEL}}})", "bytes"), 4, 4)
    lay.add(stat("Entries", f'sum by (path) (gocache_entries{{{PSEL},type=~"action|output"}})',
                 "short"), 4, 4)
    lay.add(stat("Trimmable", f"gocache_trimmable_bytes{{{PSEL}}}", "bytes",
                 description="What the go command's next trim deletes: entries unused for more "
                             "than 5 days."), 4, 4)
    lay.add(stat("Since last trim", f"time() - gocache_last_trim_timestamp_seconds{{{PSEL}}}",
                 "s", steps=((2 * 86400, "orange"),),
                 description="The go command trims at most daily, when it runs; over 2 days "
                             "alerts."), 4, 4)
    lay.add(stat("Collectors up", f"sum(gocache_scrape_collector_success{{{SEL}}}) / "
                 f"count(gocache_scrape_collector_success{{{SEL}}})", "percentunit", legend="",
                 description="Share of collectors whose last update succeeded."), 4, 4)

    lay.row("Inode and space usage")
    lay.add(timeseries("Inode usage", [target(f"gocache_filesystem_inode_usage_ratio{{{PSEL}}}",
                                              "{{instance}} {{mountpoint}}")],
                       "percentunit", threshold_line=0.9, minimum=0, maximum=1,
                       description="The red line is the 90% alert threshold."), 12, 8)
    lay.add(timeseries("Space usage", [target(
        f"1 - gocache_filesystem_avail_bytes{{{PSEL}}} / gocache_filesystem_size_bytes{{{PSEL}}}",
        "{{instance}} {{mountpoint}}")], "percentunit", threshold_line=0.9, minimum=0, maximum=1),
        12, 8)
    lay.add(timeseries("Available bytes", [target(f"gocache_filesystem_avail_bytes{{{PSEL}}}",
                                                  "{{instance}} {{mountpoint}}")], "bytes"), 12, 8)
    lay.add(timeseries("Cache tree inodes", [
        target(f"gocache_dir_inodes{{{PSEL}}}", "{{instance}} {{path}}")], "short",
        description="Files and directories of the cache tree itself, from the background scan."),
        6, 8)
    lay.add(timeseries("Share of used inodes", [
        target(f"gocache_dir_inode_share_ratio{{{PSEL}}}", "{{instance}} {{path}}")],
        "percentunit", minimum=0, maximum=1), 6, 8)

    lay.row("Density")
    lay.add(timeseries("Entries per shard", [
        target(f"gocache_shard_entries_min{{{PSEL}}}", "min {{path}}"),
        target(f"gocache_shard_entries_mean{{{PSEL}}}", "mean {{path}}"),
        target(f"gocache_shard_entries_max{{{PSEL}}}", "max {{path}}")], "short",
        description="Spread of entries over the 256 shard directories."), 8, 8)
    lay.add(timeseries("Shard imbalance and slack", [
        target(f"gocache_shard_imbalance_ratio{{{PSEL}}}", "imbalance {{path}}"),
        target(f"gocache_slack_ratio{{{PSEL}}}", "slack {{path}}")], "percentunit",
        description="Imbalance: stddev/mean of entries per shard. Slack: space lost to block "
                    "rounding of small files."), 8, 8)
    lay.add(timeseries("Directory bytes per entry", [target(
        f"gocache_shard_dir_bytes{{{PSEL}}} / on (job, instance, path) "
        f'sum by (job, instance, path) (gocache_entries{{{PSEL},type=~"action|output"}})',
        "{{instance}} {{path}}")], "bytes",
        description="Shard directories grow with churn and do not shrink on ext4: a rising "
                    "value is directory bloat."), 8, 8)
    lay.add(timeseries("Broken entries", [
        target(f"gocache_orphan_entries{{{PSEL}}}", "{{type}} {{path}}"),
        target(f"gocache_corrupt_entries{{{PSEL}}}", "corrupt {{path}}")], "short",
        description="Each is a miss for the go command; they are removed only by its trim."),
        12, 8)
    lay.add(timeseries("Scan errors and duration", [
        target(f"increase(gocache_scan_errors_total{{{PSEL}}}[$__rate_interval])",
               "errors {{path}}"),
        target(f"gocache_scan_duration_seconds{{{PSEL}}}", "scan seconds {{path}}")], "short"),
        12, 8)

    lay.row("Entry age")
    lay.add(heatmap("Entries by time since last use", f"sum by (le) (gocache_entry_age_seconds_bucket{{{PSEL}}})",
                    description="A gauge histogram from each scan: how long ago entries were "
                                "last used. Past 5 days, the next trim removes them."), 12, 8)
    lay.add(timeseries("Trimmable", [
        target(f"gocache_trimmable_entries{{{PSEL}}}", "entries {{path}}")], "short"), 12, 8)

    lay.row("Staleness")
    # Only reasons that occur have series: "or" the packages listed times 0,
    # so that a module with nothing stale shows 0 rather than no data.
    lay.add(timeseries("Predicted rebuilds by module and target", [target(
        f'sum by (module, goos, goarch) (gocache_stale_packages{{{SEL},'
        f'reason!="not installed but available in build cache"}}) '
        f'or sum by (module, goos, goarch) (gocache_packages{{{SEL}}}) * 0',
        "{{module}} {{goos}}/{{goarch}}")], "short",
        description="Packages the next build would compile again, from go list's StaleReason."),
        12, 8)
    lay.add(timeseries("Stale packages by reason", [target(
        f"sum by (reason) (gocache_stale_packages{{{SEL}}})", "{{reason}}")], "short", stack=True),
        12, 8)
    lay.add(timeseries("go list", [
        target(f"gocache_stale_list_duration_seconds{{{SEL}}}", "seconds {{module}}"),
        target(f"gocache_stale_list_success{{{SEL}}}", "success {{module}}")], "short"), 12, 8)
    lay.add(timeseries("Packages listed", [
        target(f"gocache_packages{{{SEL}}}", "{{module}} {{goos}}/{{goarch}}")], "short"), 12, 8)

    lay.row("Cache latency from the GOCACHEPROG helper")
    lay.add(heatmap("Read latency (get hits)",
                    "sum by (le) (increase(gocache_cacheprog_request_duration_seconds_bucket"
                    f'{{{PSEL},command="get",result="hit"}}[$__rate_interval]))',
                    description="Every get a go command sent to gocache_exporter cacheprog and "
                                "it served from the cache, timed from the request to the "
                                "answer."), 12, 8)
    lay.add(heatmap("Write latency (puts)",
                    "sum by (le) (increase(gocache_cacheprog_request_duration_seconds_bucket"
                    f'{{{PSEL},command="put",result="ok"}}[$__rate_interval]))',
                    description="Every put stored by the helper, evictions to hold its bounds "
                                "included."), 12, 8)
    lay.add(timeseries("Get hit ratio", [target(
        f'sum(rate(gocache_cacheprog_requests_total{{{PSEL},command="get",result="hit"}}'
        f"[$__rate_interval])) / sum(rate(gocache_cacheprog_requests_total"
        f'{{{PSEL},command="get"}}[$__rate_interval]))',
        "hit ratio")], "percentunit", minimum=0, maximum=1,
        description="Gets served from the cache over all gets the helpers answered."), 8, 8)
    lay.add(timeseries("Requests", [
        target(f"sum by (command, result) (rate(gocache_cacheprog_requests_total{{{PSEL}}}"
               "[$__rate_interval]))", "{{command}} {{result}}"),
        target(f"sum by (reason) (rate(gocache_cacheprog_get_misses_total{{{PSEL}}}"
               "[$__rate_interval]))", "miss: {{reason}}")], "ops"), 8, 8)
    lay.add(timeseries("Helpers", [
        target(f"sum(gocache_cacheprog_processes{{{PSEL}}})", "running"),
        target(f"sum by (reason) (increase(gocache_cacheprog_evictions_total{{{PSEL}}}"
               "[$__rate_interval]))", "evicted: {{reason}}"),
        target(f"sum(increase(gocache_cacheprog_reports_lost_total{{{PSEL}}}"
               "[$__rate_interval]))", "reports lost")], "short",
        description="Helpers running now, entries they evicted and reports that did not "
                    "reach the exporter."), 8, 8)

    lay.row("Cache latency derived from action graphs")
    lay.add(heatmap("Cache read latency (hits)",
                    "sum by (le) (increase(gocache_trace_cache_read_seconds_bucket"
                    f'{{{SEL},mode="build"}}[$__rate_interval]))',
                    description="Compile actions served from the cache, from the action graphs "
                                "builds drop into the trace spool: the whole action, hashing "
                                "its inputs included. For go commands run without the "
                                "helper."), 12, 8)
    lay.add(heatmap("Cache write latency (misses)",
                    "sum by (le) (increase(gocache_trace_cache_write_seconds_bucket"
                    f'{{{SEL},mode="build"}}[$__rate_interval]))',
                    description="Time of compile actions outside the compiler, mostly writing "
                                "the result to the cache."), 12, 8)
    lay.add(timeseries("Hit ratio", [target(
        f'sum(rate(gocache_trace_actions_total{{{SEL},mode="build",result="hit"}}[$__rate_interval]))'
        f' / sum(rate(gocache_trace_actions_total{{{SEL},mode="build"}}[$__rate_interval]))',
        "hit ratio")], "percentunit", minimum=0, maximum=1,
        description="Compile actions served from the cache over all compile actions."), 8, 8)
    lay.add(timeseries("Actions", [target(
        f"sum by (mode, result) (rate(gocache_trace_actions_total{{{SEL}}}[$__rate_interval]))",
        "{{mode}} {{result}}")], "ops"), 8, 8)
    lay.add(timeseries("Trace files", [target(
        f"sum by (format, result) (increase(gocache_trace_files_total{{{SEL}}}[$__rate_interval]))",
        "{{format}} {{result}}")], "short"), 8, 8)

    lay.row("Exporter health")
    lay.add(timeseries("Collector success", [target(
        f"gocache_scrape_collector_success{{{SEL}}}", "{{instance}} {{collector}}")], "short",
        minimum=0, maximum=1), 8, 8)
    lay.add(timeseries("Collector duration", [target(
        f"gocache_scrape_collector_duration_seconds{{{SEL}}}", "{{instance}} {{collector}}")], "s"),
        8, 8)
    lay.add(timeseries("Age of collector data", [target(
        f"time() - gocache_collector_last_success_timestamp_seconds{{{SEL}}}",
        "{{instance}} {{collector}}")], "s",
        description="Background collectors publish snapshots; this is how old each one is."),
        8, 8)

    def variable(name, query, include_all):
        v = {"name": name, "type": "query", "datasource": DS,
             "query": {"query": query, "refId": name}, "definition": query, "refresh": 2,
             "includeAll": include_all, "multi": include_all, "current": {}, "options": [],
             "sort": 1}
        if include_all:
            v["allValue"] = ".*"
        return v

    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
            {"type": "panel", "id": "heatmap", "name": "Heatmap", "version": ""}],
        "uid": "gocache-exporter",
        "title": "Go cache health",
        "description": "gocache_exporter: inode pressure, density, staleness and cache latency "
                       "of Go build caches on CI runners.",
        "tags": ["go", "ci", "gocache_exporter"],
        "schemaVersion": 39,
        "version": 2,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "hide": 0,
             "label": "Data source", "current": {"text": "${DS_PROMETHEUS}",
                                                 "value": "${DS_PROMETHEUS}"}},
            # The per-runner series, or on a central Prometheus only the fleet
            # rules' series, name the job.
            variable("job", 'label_values({__name__=~"gocache_exporter_build_info|'
                            'gocache:exporters:count_by_pool"}, job)', False),
            variable("pool", 'label_values(gocache:exporters:count_by_pool{job="$job"}, pool)',
                     True),
            variable("instance", 'label_values(gocache_exporter_build_info{job="$job"}, instance)',
                     True),
            variable("path", 'label_values(gocache_filesystem_files{job="$job",'
                             'instance=~"$instance"}, path)', True),
        ]},
        "panels": lay.panels,
    }


def render():
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gocache-exporter.json")
    with open(out, "w") as f:
        f.write(render())
