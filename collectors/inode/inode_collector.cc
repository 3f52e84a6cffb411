#include "collectors/inode/inode_collector.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>

#include "base/log.h"
#include "cache/inode_usage.h"
#include "cache/mountinfo.h"
#include "cache/scan_service.h"
#include "collectors/metric_family.h"

namespace gocache::inode {

std::optional<double> InodeShareRatio(uint64_t dir_inodes, uint64_t files, uint64_t files_free) {
  if (files_free >= files) return std::nullopt;
  return static_cast<double>(dir_inodes) / static_cast<double>(files - files_free);
}

namespace {

using prometheus::MetricType;

// Family indexes, in exposition order.
enum Family {
  kPresent,
  kFiles,
  kFilesFree,
  kInodeUsage,
  kSize,
  kFree,
  kAvail,
  kReadonly,
  kDirInodes,
  kDirShare,
  kFamilyCount
};

constexpr std::array<FamilyDecl, kFamilyCount> kFamilies = {{
    {"gocache_cache_present",
     "1 when the configured cache directory exists, 0 when it does not (yet): "
     "a runner that has not built yet, not a failure.",
     MetricType::Gauge},
    {"gocache_filesystem_files",
     "Total inodes of the filesystem that holds the cache (statvfs f_files).", MetricType::Gauge},
    {"gocache_filesystem_files_free",
     "Free inodes of the filesystem that holds the cache (statvfs f_ffree).", MetricType::Gauge},
    {"gocache_filesystem_inode_usage_ratio",
     "Used inodes over total inodes (df -i IUse% / 100); absent when the "
     "filesystem reports no inode total.",
     MetricType::Gauge},
    {"gocache_filesystem_size_bytes",
     "Size of the filesystem that holds the cache (f_blocks * f_frsize).", MetricType::Gauge},
    {"gocache_filesystem_free_bytes",
     "Free bytes of the filesystem that holds the cache (f_bfree * f_frsize).", MetricType::Gauge},
    {"gocache_filesystem_avail_bytes",
     "Bytes available to unprivileged users on the filesystem that holds the "
     "cache (f_bavail * f_frsize).",
     MetricType::Gauge},
    {"gocache_filesystem_readonly",
     "1 if the filesystem that holds the cache is mounted read-only.", MetricType::Gauge},
    {"gocache_dir_inodes",
     "Inodes used by the cache directory tree itself (files and directories, "
     "as find PATH | wc -l), from the latest background scan.",
     MetricType::Gauge},
    {"gocache_dir_inode_share_ratio", "gocache_dir_inodes over the used inodes of its filesystem.",
     MetricType::Gauge},
}};
static_assert(Complete(kFamilies));

std::string Canonical(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) ? std::string(resolved) : path;
}

class InodeCollector final : public Collector {
 public:
  explicit InodeCollector(const CollectorContext& context)
      : caches_(context.caches),
        scans_(context.scans),
        mountinfo_(context.procfs + "/self/mountinfo") {}

  CollectResult Update() override {
    CollectResult result;
    std::vector<Mount> mounts;
    std::string error;
    if (!ReadMountInfo(mountinfo_, mounts, error)) {
      result.errors.push_back(error);
      return result;
    }
    auto families = MakeFamilies(kFamilies);
    for (const auto& cache : caches_) Observe(cache, mounts, families, result.errors);
    AppendNonEmpty(result.families, std::move(families));
    return result;
  }

 private:
  void Observe(const CacheDir& cache, const std::vector<Mount>& mounts,
               std::vector<prometheus::MetricFamily>& families, std::vector<std::string>& errors) {
    const std::string kind(KindLabel(cache.kind));
    const Labels dir_labels = {{"path", cache.path}, {"kind", kind}};
    // A directory that does not exist yet is a state (the go command makes
    // it at its first build; a runner that never downloads a module never
    // gets a GOMODCACHE), not a failure. Anything else that keeps the
    // directory from being read is one.
    struct stat st;
    if (stat(cache.path.c_str(), &st) != 0) {
      if (errno != ENOENT) {
        errors.push_back("stat " + cache.path + ": " + std::strerror(errno));
        return;
      }
      AddSample(families[kPresent], dir_labels, 0);
      NotePresence(cache, false);
      return;
    }
    if (!S_ISDIR(st.st_mode)) {
      AddSample(families[kPresent], dir_labels, 0);
      errors.push_back(cache.path + ": not a directory");
      return;
    }
    AddSample(families[kPresent], dir_labels, 1);
    NotePresence(cache, true);
    struct statvfs fs;
    if (statvfs(cache.path.c_str(), &fs) != 0) {
      errors.push_back("statvfs " + cache.path + ": " + std::strerror(errno));
      return;
    }
    const Mount* mount = FindMount(mounts, Canonical(cache.path));
    const Labels labels = {{"path", cache.path},
                           {"kind", kind},
                           {"mountpoint", mount ? mount->mount_point : ""},
                           {"fstype", mount ? mount->fstype : ""}};
    const double block = static_cast<double>(fs.f_frsize);
    AddSample(families[kFiles], labels, static_cast<double>(fs.f_files));
    AddSample(families[kFilesFree], labels, static_cast<double>(fs.f_ffree));
    if (auto ratio = InodeUsageRatio(fs.f_files, fs.f_ffree)) {
      AddSample(families[kInodeUsage], labels, *ratio);
    }
    AddSample(families[kSize], labels, static_cast<double>(fs.f_blocks) * block);
    AddSample(families[kFree], labels, static_cast<double>(fs.f_bfree) * block);
    AddSample(families[kAvail], labels, static_cast<double>(fs.f_bavail) * block);
    AddSample(families[kReadonly], labels, (fs.f_flag & ST_RDONLY) ? 1 : 0);

    const auto scan = scans_->Latest(cache.path);
    if (!scan) return;  // the first background scan has not finished yet
    if (scan->walk.root_errno == ENOENT) {
      // The directory has appeared since the last scan (statvfs found it):
      // not an error, and worth a scan now rather than at the next interval.
      scans_->RequestScan();
      return;
    }
    if (auto problem = ScanProblem(cache.path, *scan); !problem.empty()) {
      errors.push_back(std::move(problem));
    }
    const ScanResult& walk = scan->walk;
    if (!walk.root_readable) return;
    AddSample(families[kDirInodes], dir_labels, static_cast<double>(walk.inodes));
    if (auto share = InodeShareRatio(walk.inodes, fs.f_files, fs.f_ffree)) {
      AddSample(families[kDirShare], dir_labels, *share);
    }
  }

  // Logs a cache directory's absence once, and its appearance.
  void NotePresence(const CacheDir& cache, bool present) {
    const auto [it, first] = present_.try_emplace(cache.path, present);
    if (!first && it->second == present) return;
    it->second = present;
    if (!present) {
      log::Info("cache directory does not exist (yet); watching for it",
                {{"path", cache.path}, {"kind", std::string(KindLabel(cache.kind))}});
    } else if (!first) {
      log::Info("cache directory appeared",
                {{"path", cache.path}, {"kind", std::string(KindLabel(cache.kind))}});
    }
  }

  const std::vector<CacheDir> caches_;  // copies: a worker stuck past shutdown owns what it reads
  const std::shared_ptr<const ScanService> scans_;
  const std::string mountinfo_;          // which filesystem holds each cache
  std::map<std::string, bool> present_;  // as last seen, for the log
};

}  // namespace

CollectorInfo Info() {
  return CollectorInfo{
      .name = "inode",
      .help = "inode and space usage of the filesystem under each cache",
      .enabled_by_default = true,
      .add_flags = nullptr,
      // No flags of its own: it renders the latest background scan.
      .configure = [](const ParsedFlags&) -> Configured {
        return ConfiguredCollector{
            Schedule::AtScrape(),
            [](const CollectorContext& context) -> std::unique_ptr<Collector> {
              return std::make_unique<InodeCollector>(context);
            }};
      },
      .scan_depth = ScanDepth::kCount,
  };
}

}  // namespace gocache::inode
