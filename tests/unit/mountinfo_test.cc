#include "cache/mountinfo.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gocache {
namespace {

std::vector<Mount> ReadFixture(const std::string& name) {
  std::vector<Mount> mounts;
  std::string error;
  const std::string file = std::string(GOCACHE_FIXTURES) + "/mountinfo/" + name;
  EXPECT_TRUE(ReadMountInfo(file, mounts, error)) << file << ": " << error;
  return mounts;
}

const Mount* ByMountPoint(const std::vector<Mount>& mounts, const std::string& point) {
  const Mount* found = nullptr;
  for (const auto& mount : mounts) {
    if (mount.mount_point == point) found = &mount;
  }
  return found;
}

std::string MountPointOf(const Mount* mount) { return mount ? mount->mount_point : "<none>"; }

TEST(ParseMountInfoTest, PlainHost) {
  const auto mounts = ReadFixture("host.txt");
  ASSERT_EQ(mounts.size(), 15u);

  const Mount* root = ByMountPoint(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->fstype, "ext4");
  EXPECT_EQ(root->source, "/dev/nvme0n1p2");
  EXPECT_EQ(root->root, "/");

  const Mount* proc = ByMountPoint(mounts, "/proc");
  ASSERT_NE(proc, nullptr);
  EXPECT_EQ(proc->fstype, "proc");
  EXPECT_EQ(proc->source, "proc");

  const Mount* sys = ByMountPoint(mounts, "/sys");
  ASSERT_NE(sys, nullptr);
  EXPECT_EQ(sys->fstype, "sysfs");

  const Mount* tmp = ByMountPoint(mounts, "/tmp");
  ASSERT_NE(tmp, nullptr);
  EXPECT_EQ(tmp->fstype, "tmpfs");
  EXPECT_EQ(tmp->source, "tmpfs");

  const Mount* autofs = ByMountPoint(mounts, "/proc/sys/fs/binfmt_misc");
  ASSERT_NE(autofs, nullptr);
  EXPECT_EQ(autofs->fstype, "autofs");
  EXPECT_EQ(autofs->source, "systemd-1");

  // Order is kept as listed.
  EXPECT_EQ(mounts.front().mount_point, "/sys");
  EXPECT_EQ(mounts.back().mount_point, "/run/user/1000");
}

TEST(ParseMountInfoTest, HostFindMount) {
  const auto mounts = ReadFixture("host.txt");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner/.cache/go-build")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/tmp/go-build123")), "/tmp");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/run/user/1000/go-build")), "/run/user/1000");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/run/lock")), "/run/lock");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/run/locker")), "/run");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/boot/efi/EFI")), "/boot/efi");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/boot")), "/");
}

TEST(ParseMountInfoTest, DockerOverlayContainer) {
  const auto mounts = ReadFixture("overlay.txt");
  ASSERT_EQ(mounts.size(), 21u);

  const Mount* root = ByMountPoint(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->fstype, "overlay");
  EXPECT_EQ(root->source, "overlay");
  EXPECT_EQ(root->root, "/");

  const Mount* hosts = ByMountPoint(mounts, "/etc/hosts");
  ASSERT_NE(hosts, nullptr);
  EXPECT_EQ(hosts->fstype, "ext4");
  EXPECT_EQ(hosts->source, "/dev/nvme0n1p2");
  EXPECT_EQ(hosts->root,
            "/var/lib/docker/containers/"
            "4f1c0e6a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e/hosts");

  const Mount* shm = ByMountPoint(mounts, "/dev/shm");
  ASSERT_NE(shm, nullptr);
  EXPECT_EQ(shm->fstype, "tmpfs");
  EXPECT_EQ(shm->source, "shm");

  const Mount* kcore = ByMountPoint(mounts, "/proc/kcore");
  ASSERT_NE(kcore, nullptr);
  EXPECT_EQ(kcore->root, "/null");

  // A cache inside the container's own filesystem is on the overlay root.
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/root/.cache/go-build")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/etc/hosts")), "/etc/hosts");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/etc/hostsfile")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/sys/fs/cgroup/cpu")), "/sys/fs/cgroup");
}

TEST(ParseMountInfoTest, BindMountOfSubdirectory) {
  const auto mounts = ReadFixture("bind_nested.txt");
  ASSERT_EQ(mounts.size(), 5u);

  const Mount* cache = ByMountPoint(mounts, "/home/runner/.cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->root, "/var/lib/ci-cache");
  EXPECT_EQ(cache->fstype, "xfs");
  EXPECT_EQ(cache->source, "/dev/sdb1");

  const Mount* mod = ByMountPoint(mounts, "/home/runner/go/pkg/mod");
  ASSERT_NE(mod, nullptr);
  EXPECT_EQ(mod->root, "/var/lib/ci-cache/go-mod");
}

TEST(ParseMountInfoTest, NestedMountPoints) {
  const auto mounts = ReadFixture("bind_nested.txt");
  const Mount* build = FindMount(mounts, "/home/runner/.cache/go-build");
  ASSERT_NE(build, nullptr);
  EXPECT_EQ(build->mount_point, "/home/runner/.cache");
  EXPECT_EQ(build->fstype, "xfs");

  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner/go/pkg/mod/cache/download")),
            "/home/runner/go/pkg/mod");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner/go/pkg")), "/home");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner")), "/home");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home")), "/home");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/homer")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/var/lib/ci-cache")), "/");
}

TEST(ParseMountInfoTest, EscapedMountPoints) {
  const auto mounts = ReadFixture("escaped.txt");
  ASSERT_EQ(mounts.size(), 6u);
  EXPECT_EQ(mounts[1].mount_point, "/mnt/my cache");
  EXPECT_EQ(mounts[2].mount_point, "/mnt/tab\tdir");
  EXPECT_EQ(mounts[3].mount_point, "/mnt/back\\slash");
  EXPECT_EQ(mounts[4].mount_point, "/srv/go cache");
  EXPECT_EQ(mounts[4].root, "/exports/go cache");
  EXPECT_EQ(mounts[4].fstype, "nfs4");
  EXPECT_EQ(mounts[4].source, "fileserver:/exports/go cache");
  EXPECT_EQ(mounts[5].mount_point, "/mnt/new\nline");

  EXPECT_EQ(MountPointOf(FindMount(mounts, "/mnt/my cache/go-build")), "/mnt/my cache");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/mnt/my")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/mnt/back\\slash/x")), "/mnt/back\\slash");
}

TEST(ParseMountInfoTest, OptionalFields) {
  const auto mounts = ReadFixture("optional_fields.txt");
  ASSERT_EQ(mounts.size(), 5u);

  const Mount* shared = ByMountPoint(mounts, "/srv/shared");
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->fstype, "tmpfs");
  EXPECT_EQ(shared->source, "tmpfs");

  const Mount* slave = ByMountPoint(mounts, "/srv/slave");
  ASSERT_NE(slave, nullptr);
  EXPECT_EQ(slave->fstype, "xfs");
  EXPECT_EQ(slave->source, "/dev/sdc1");

  const Mount* unbindable = ByMountPoint(mounts, "/srv/unbindable");
  ASSERT_NE(unbindable, nullptr);
  EXPECT_EQ(unbindable->fstype, "btrfs");
  EXPECT_EQ(unbindable->source, "/dev/sdd1");

  // No optional field at all: the separator is the seventh field.
  const Mount* priv = ByMountPoint(mounts, "/srv/private");
  ASSERT_NE(priv, nullptr);
  EXPECT_EQ(priv->fstype, "ext4");
  EXPECT_EQ(priv->source, "/dev/sde1");
}

TEST(ParseMountInfoTest, InlineZeroAndManyOptionalFields) {
  const auto mounts = ParseMountInfo(
      "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
      "2 1 0:9 / /a rw shared:1 master:2 propagate_from:2 unbindable - tmpfs src rw\n");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].fstype, "ext4");
  EXPECT_EQ(mounts[0].source, "/dev/sda1");
  EXPECT_EQ(mounts[1].mount_point, "/a");
  EXPECT_EQ(mounts[1].fstype, "tmpfs");
  EXPECT_EQ(mounts[1].source, "src");
}

TEST(ParseMountInfoTest, StackedMountsLaterWins) {
  const auto mounts = ReadFixture("stacked.txt");
  ASSERT_EQ(mounts.size(), 4u);
  const Mount* top = FindMount(mounts, "/srv/cache/go-build");
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top->mount_point, "/srv/cache");
  EXPECT_EQ(top->fstype, "xfs");
  EXPECT_EQ(top->source, "/dev/sdc1");

  const Mount* exact = FindMount(mounts, "/srv/cache");
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(exact->fstype, "xfs");

  // Stacked on "/" as well: the later root mount wins.
  const auto roots = ParseMountInfo(
      "1 0 0:1 / / rw - rootfs rootfs rw\n"
      "2 1 0:2 / / rw - overlay overlay rw,lowerdir=/l\n");
  const Mount* root = FindMount(roots, "/anything/at/all");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->fstype, "overlay");
}

TEST(ParseMountInfoTest, MalformedLinesSkipped) {
  const auto mounts = ReadFixture("malformed.txt");
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_EQ(mounts[0].mount_point, "/");
  EXPECT_EQ(mounts[1].mount_point, "/srv/good");
  EXPECT_EQ(mounts[1].fstype, "tmpfs");
  EXPECT_EQ(mounts[2].mount_point, "/srv/last-no-newline");
  EXPECT_EQ(mounts[2].source, "tmpfs");
  for (const auto& mount : mounts) {
    EXPECT_NE(mount.mount_point, "/srv/no-separator");
    EXPECT_NE(mount.mount_point, "/srv/missing-source");
    EXPECT_NE(mount.mount_point, "/srv/short");
    EXPECT_NE(mount.mount_point, "/srv/sep-only");
  }
}

TEST(ParseMountInfoTest, EmptyText) {
  EXPECT_TRUE(ParseMountInfo("").empty());
  EXPECT_TRUE(ParseMountInfo("\n\n\n").empty());
}

TEST(FindMountTest, LongestPrefixWins) {
  const std::vector<Mount> mounts = {
      {.mount_point = "/", .root = "/", .fstype = "ext4", .source = "/dev/sda1"},
      {.mount_point = "/home/runner/.cache", .root = "/", .fstype = "xfs", .source = "/dev/sdc"},
      {.mount_point = "/home", .root = "/", .fstype = "ext4", .source = "/dev/sdb"},
  };
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner/.cache/go-build/ab")),
            "/home/runner/.cache");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner/.cachex")), "/home");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner")), "/home");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/var")), "/");
}

TEST(FindMountTest, StringPrefixIsNotAPathPrefix) {
  const std::vector<Mount> mounts = {
      {.mount_point = "/", .root = "/", .fstype = "ext4", .source = "a"},
      {.mount_point = "/home/run", .root = "/", .fstype = "tmpfs", .source = "b"},
  };
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/runner/x")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/home/run/x")), "/home/run");

  // The same with the fixture, where /home is a mount of its own.
  const auto nested = ReadFixture("bind_nested.txt");
  EXPECT_EQ(MountPointOf(FindMount(nested, "/home/runner/x")), "/home");
  EXPECT_EQ(MountPointOf(FindMount(nested, "/home/run/x")), "/home/run");
}

TEST(FindMountTest, ExactMountPointMatchesItself) {
  const std::vector<Mount> mounts = {
      {.mount_point = "/", .root = "/", .fstype = "ext4", .source = "a"},
      {.mount_point = "/srv/cache", .root = "/", .fstype = "xfs", .source = "b"},
  };
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/srv/cache")), "/srv/cache");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/srv")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/")), "/");
}

TEST(FindMountTest, RootMatchesAnything) {
  const std::vector<Mount> mounts = {
      {.mount_point = "/", .root = "/", .fstype = "ext4", .source = "a"},
  };
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/a")), "/");
  EXPECT_EQ(MountPointOf(FindMount(mounts, "/a/b/c/d")), "/");
}

TEST(FindMountTest, NoMatch) {
  EXPECT_EQ(FindMount({}, "/a"), nullptr);
  const std::vector<Mount> mounts = {
      {.mount_point = "/srv", .root = "/", .fstype = "xfs", .source = "b"},
  };
  EXPECT_EQ(FindMount(mounts, "/var/cache"), nullptr);
  EXPECT_EQ(FindMount(mounts, "/srvx"), nullptr);
}

TEST(UnescapeMountFieldTest, KernelEscapes) {
  EXPECT_EQ(UnescapeMountField("/mnt/my\\040cache"), "/mnt/my cache");
  EXPECT_EQ(UnescapeMountField("/mnt/a\\011b"), "/mnt/a\tb");
  EXPECT_EQ(UnescapeMountField("/mnt/a\\012b"), "/mnt/a\nb");
  EXPECT_EQ(UnescapeMountField("/mnt/a\\134b"), "/mnt/a\\b");
  EXPECT_EQ(UnescapeMountField("\\040\\040"), "  ");
  EXPECT_EQ(UnescapeMountField("/end\\040"), "/end ");
  EXPECT_EQ(UnescapeMountField("/plain/path"), "/plain/path");
  EXPECT_EQ(UnescapeMountField(""), "");
}

TEST(UnescapeMountFieldTest, IncompleteOrInvalidEscapesKept) {
  EXPECT_EQ(UnescapeMountField("/mnt/x\\"), "/mnt/x\\");
  EXPECT_EQ(UnescapeMountField("\\"), "\\");
  EXPECT_EQ(UnescapeMountField("/mnt/x\\04"), "/mnt/x\\04");
  EXPECT_EQ(UnescapeMountField("/mnt/x\\0"), "/mnt/x\\0");
  EXPECT_EQ(UnescapeMountField("/mnt/x\\089"), "/mnt/x\\089");
  EXPECT_EQ(UnescapeMountField("/mnt/x\\9ab"), "/mnt/x\\9ab");
  EXPECT_EQ(UnescapeMountField("/mnt/x\\04a"), "/mnt/x\\04a");
  // A backslash escaped as \134 followed by digits is not escaped twice.
  EXPECT_EQ(UnescapeMountField("\\134040"), "\\040");
}

TEST(ReadMountInfoTest, MissingFile) {
  std::vector<Mount> mounts;
  std::string error;
  const std::string file = std::string(GOCACHE_FIXTURES) + "/mountinfo/does-not-exist.txt";
  EXPECT_FALSE(ReadMountInfo(file, mounts, error));
  EXPECT_NE(error.find(file), std::string::npos) << error;
  EXPECT_TRUE(mounts.empty());
}

TEST(ReadMountInfoTest, EmptyFileIsAnError) {
  std::vector<Mount> mounts;
  std::string error;
  const std::string file = std::string(GOCACHE_FIXTURES) + "/mountinfo/empty.txt";
  EXPECT_FALSE(ReadMountInfo(file, mounts, error));
  EXPECT_NE(error.find(file), std::string::npos) << error;
}

TEST(ReadMountInfoTest, RealProcSelfMountinfo) {
  std::vector<Mount> mounts;
  std::string error;
  ASSERT_TRUE(ReadMountInfo("/proc/self/mountinfo", mounts, error)) << error;
  const Mount* root = FindMount(mounts, "/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->mount_point, "/");
  EXPECT_FALSE(root->fstype.empty());
}

}  // namespace
}  // namespace gocache
