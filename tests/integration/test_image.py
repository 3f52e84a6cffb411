"""The container image, built and run for real: Debian's podman (with runc)
builds deploy/docker/Dockerfile on a Debian bookworm base made here by
mmdebstrap from the mirrors apt uses (imported under the names the
Dockerfile's FROM lines use; nothing comes from a container registry), then
runs it with the DaemonSet's hardening and a real cache mounted read-only.
What it serves must equal what find counts. Everything podman stores stays
in the test's own directory. Run once per `make test` (not in the sanitizer
round: the image builds its own binary)."""

import os
import re
import subprocess
import time
import urllib.request

from harness import (SOURCE_DIR, TempDirTest, copy_go_cache, debian_minbase, find_count,
                     free_port, parse_metrics, promtool_check, tool, tree_state, value)

DOCKERFILE = os.path.join(SOURCE_DIR, "deploy", "docker", "Dockerfile")
IMAGE = "localhost/gocache-exporter:test"
# Bounds for the slow steps.
BUILD_TIMEOUT = 1500
START_TIMEOUT = 60


class ImageTest(TempDirTest):

    def setUp(self):
        super().setUp()
        # podman's configuration and storage of this test alone: runc (crun
        # cannot run in this machine's hybrid cgroup mode) and open-file and
        # process limits the machine allows.
        conf = os.path.join(self.tmp, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\n'
                    'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\n')
        storage = os.path.join(self.tmp, "storage.conf")
        with open(storage, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\n'
                    f'graphroot = "{self.tmp}/podman/storage"\n'
                    f'runroot = "{self.tmp}/podman/run"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage)
        # Last cleanup first: leave no container, mount or image behind.
        self.addCleanup(self.podman, "system", "reset", "--force", check=False)

    def podman(self, *args, timeout=120, check=True):
        r = subprocess.run([tool("podman"), *args], capture_output=True, text=True,
                           timeout=timeout, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {r.returncode}:\n"
                                 f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
        return r

    def import_bases(self):
        """The bookworm root, under every name a FROM line of the Dockerfile uses."""
        with open(DOCKERFILE) as f:
            bases = re.findall(r"(?m)^FROM (\S+)", f.read())
        self.assertEqual(sorted(set(bases)), ["debian:bookworm", "debian:bookworm-slim"])
        tar = debian_minbase()
        for base in sorted(set(bases)):
            self.podman("import", tar, f"docker.io/library/{base}", timeout=600)

    def test_image_builds_and_serves_a_read_only_cache(self):
        self.import_bases()
        # The build context is the repository, build trees and all: the
        # .dockerignore must keep them (and their CMakeCache.txt) out.
        self.assertTrue(os.path.exists(os.path.join(SOURCE_DIR, "build", "CMakeCache.txt")) or
                        os.path.exists(os.path.join(SOURCE_DIR, "build-asan", "CMakeCache.txt")),
                        "expected a build tree in the source directory, as make test leaves")
        self.podman("build", "--pull=never", "-f", DOCKERFILE, "-t", IMAGE, SOURCE_DIR,
                    timeout=BUILD_TIMEOUT)
        config = self.podman("image", "inspect", "--format",
                             "{{.Config.User}} {{json .Config.Entrypoint}}", IMAGE).stdout
        self.assertEqual(config.strip(), '65534:65534 ["/usr/local/bin/gocache_exporter"]')

        cache, _ = copy_go_cache(self.tmp)
        before = tree_state(cache)
        port = free_port()
        self.podman("run", "--detach", "--name", "gocache-exporter-test", "--read-only",
                    "--cap-drop=ALL", "--security-opt=no-new-privileges",
                    "-v", f"{cache}:/caches/go-build:ro", "-p", f"127.0.0.1:{port}:9959",
                    IMAGE, "--cache.dir=/caches/go-build")
        self.addCleanup(self.podman, "rm", "--force", "gocache-exporter-test", check=False)
        text = self.scrape_until_scanned(port)
        samples = parse_metrics(text)
        self.assertEqual(promtool_check(text), (0, ""))
        path = "/caches/go-build"
        self.assertEqual(value(samples, "gocache_cache_present", path=path, kind="build"), 1)
        self.assertEqual(value(samples, "gocache_dir_inodes", path=path, kind="build"),
                         find_count(cache))
        names = [n for _, _, files in os.walk(cache) for n in files]
        for kind, suffix in (("action", "-a"), ("output", "-d")):
            self.assertEqual(value(samples, "gocache_entries", path=path, type=kind),
                             sum(1 for n in names if re.fullmatch(r"[0-9a-f]{64}" + suffix, n)))
        for collector in ("inode", "density"):
            self.assertEqual(value(samples, "gocache_scrape_collector_success",
                                   collector=collector), 1)
        # Hardened as the DaemonSet runs it: as nobody, with no capability,
        # no way to gain one, on a read-only root.
        status = self.podman("exec", "gocache-exporter-test", "cat", "/proc/1/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        self.assertEqual(fields["Uid"].split()[:2], ["65534", "65534"])
        self.assertEqual(fields["CapEff"].strip(), "0000000000000000")
        self.assertEqual(fields["CapPrm"].strip(), "0000000000000000")
        self.assertEqual(fields["NoNewPrivs"].strip(), "1")
        self.assertNotEqual(self.podman("exec", "gocache-exporter-test", "touch", "/x",
                                        check=False).returncode, 0)
        self.podman("stop", "--time=10", "gocache-exporter-test")
        logs = self.podman("logs", "gocache-exporter-test").stderr
        self.assertIn("msg=listening", logs)
        self.assertIn('msg="shut down"', logs)
        self.assertEqual(tree_state(cache), before, "the container changed the cache")

    def scrape_until_scanned(self, port):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                if "gocache_dir_inodes{" in text and "gocache_entries{" in text:
                    return text
            except OSError as e:
                last = e
            time.sleep(0.5)
        logs = self.podman("logs", "gocache-exporter-test", check=False)
        self.fail(f"the container served no scanned cache within {START_TIMEOUT}s ({last}):\n"
                  f"{logs.stdout}{logs.stderr}")


if __name__ == "__main__":
    import unittest
    unittest.main()
