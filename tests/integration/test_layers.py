"""The layers include one way: scripts/check-layers.py passes on the
repository and fails, naming the file, line and rule, on an include planted
against each rule in a copy of it."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness

SCRIPT = os.path.join(harness.SOURCE_DIR, "scripts", "check-layers.py")
LAYERS = ("base", "cache", "collectors", "commands", "exporter")


def run_check(root):
    return subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True,
                          timeout=60)


class LayersTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gocache-layers-")
        self.addCleanup(shutil.rmtree, self.tmp)
        for layer in LAYERS:
            shutil.copytree(os.path.join(harness.SOURCE_DIR, layer), os.path.join(self.tmp, layer))

    def plant(self, rel, include):
        """Adds `#include "include"` to the copy's file `rel`; returns its line number."""
        path = os.path.join(self.tmp, rel)
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
        # After the first include, as a real change would put it.
        at = next(i for i, line in enumerate(lines) if line.startswith("#include")) + 1
        lines.insert(at, f'#include "{include}"\n')
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(lines)
        return at + 1

    def test_repository_passes(self):
        done = run_check(harness.SOURCE_DIR)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertRegex(done.stdout, r"check-layers: [1-9][0-9]+ files, every include points down")

    def test_copy_passes_unchanged(self):
        done = run_check(self.tmp)
        self.assertEqual(done.returncode, 0, done.stderr)

    def assert_rejected(self, rel, include, why):
        line = self.plant(rel, include)
        done = run_check(self.tmp)
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        lines = [l for l in done.stderr.splitlines() if not l.startswith("check-layers:")]
        self.assertEqual(lines, [f"{rel}:{line}: includes {include}: {why}"])
        self.assertIn("check-layers: 1 include(s) against the layers", done.stderr)

    def test_core_including_the_exporter_fails(self):
        self.assert_rejected("cache/cache_trim.cc", "exporter/options.h",
                             "exporter is not below cache: cache may include base and itself")

    def test_base_including_the_core_fails(self):
        self.assert_rejected(
            "base/log.h", "cache/build_cache.h",
            "cache is not below base: base is the lowest layer and may include only itself")

    def test_core_including_a_collector_fails(self):
        self.assert_rejected(
            "cache/scan_service.h", "collectors/collector.h",
            "collectors is not below cache: cache may include base and itself")

    def test_commands_including_collectors_fails(self):
        self.assert_rejected(
            "commands/commands.cc", "collectors/metric_family.h",
            "collectors is not below commands: commands may include base, cache and itself")

    def test_collectors_including_commands_fails(self):
        self.assert_rejected(
            "collectors/trim/trim_collector.cc", "commands/commands.h",
            "commands is not below collectors: collectors may include base, cache and itself")

    def test_collector_including_another_collector_fails(self):
        self.assert_rejected("collectors/density/density_collector.cc",
                             "collectors/inode/inode_collector.h",
                             "the density collector may not include the inode collector's headers")

    def test_collector_contract_including_a_collector_fails(self):
        self.assert_rejected(
            "collectors/collector.h", "collectors/trim/trim_collector.h",
            "the shared collector files may not include a collector's own headers")

    def test_allowed_includes_pass(self):
        # Down the layers, the registration list, and a system header.
        self.plant("exporter/scrape.cc", "commands/commands.h")
        self.plant("commands/commands.cc", "base/log.h")
        self.plant("collectors/all.cc", "collectors/trace/trace_tally.h")
        self.plant("collectors/trace/trace_tally.cc", "collectors/metric_family.h")
        self.plant("cache/cache_trim.cc", "third_party_header.h")
        done = run_check(self.tmp)
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_empty_tree_fails(self):
        empty = os.path.join(self.tmp, "nothing")
        os.mkdir(empty)
        done = run_check(empty)
        self.assertEqual(done.returncode, 1)
        self.assertIn("no sources under", done.stderr)


if __name__ == "__main__":
    unittest.main()
