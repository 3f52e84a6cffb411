#include "cache/disk_cache.h"

#include <dirent.h>

#include "base/file_time.h"
#include "fixtures.h"

namespace gocache {
namespace {

using buildcache::DecodeHexId;
using testing_util::GoEntry;
using testing_util::Id;
using testing_util::kNs;
using testing_util::SetMtime;
using testing_util::TempDir;

buildcache::Id Bytes(const std::string& hex) { return *DecodeHexId(hex); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int64_t Mtime(const std::string& path) { return testing_util::MtimeNs(path); }

// Every file below dir, relative, sorted.
std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string().substr(dir.size() + 1));
  }
  std::sort(files.begin(), files.end());
  return files;
}

class DiskCacheTest : public ::testing::Test {
 protected:
  DiskCache Open() {
    std::string error;
    auto cache = DiskCache::Open(dir_.path(), error);
    EXPECT_TRUE(cache.has_value()) << error;
    return *cache;
  }
  TempDir dir_;
};

TEST_F(DiskCacheTest, OpenMakesTheShardDirectoriesAsTheGoCommandDoes) {
  Open();
  for (int shard = 0; shard < 256; ++shard) {
    char name[3];
    std::snprintf(name, sizeof name, "%02x", shard);
    EXPECT_TRUE(std::filesystem::is_directory(dir_ / name)) << name;
  }
  std::string error;
  EXPECT_FALSE(DiskCache::Open(dir_.WriteFile("file"), error).has_value());
  EXPECT_NE(error.find("not a directory"), std::string::npos) << error;
  EXPECT_FALSE(DiskCache::Open(dir_ / "missing", error).has_value());
}

TEST_F(DiskCacheTest, APutWritesTheGoCommandsFilesAndAGetFindsThem) {
  const DiskCache cache = Open();
  const std::string action = Id(0x3a, 1), output = Id(0xc5, 2);
  const int64_t before = NowNs();
  const PutResult put = cache.Put(Bytes(action), Bytes(output), "compiled bytes");
  ASSERT_EQ(put.error, "");
  const std::string output_path = dir_ / ("c5/" + output + "-d");
  EXPECT_EQ(put.output_path, output_path);
  EXPECT_EQ(ReadFile(output_path), "compiled bytes");

  const std::string entry = ReadFile(dir_ / ("3a/" + action + "-a"));
  ASSERT_EQ(entry.size(), buildcache::kActionEntrySize);
  const auto parsed = buildcache::ParseActionEntry(entry, action);
  ASSERT_TRUE(parsed.has_value()) << entry;
  EXPECT_EQ(entry, GoEntry(action, output, 14, parsed->time_ns));
  EXPECT_GE(parsed->time_ns, before);
  EXPECT_LE(parsed->time_ns, NowNs());
  // Nothing else: no temporary file left behind.
  EXPECT_EQ(Files(dir_.path()),
            (std::vector<std::string>{"3a/" + action + "-a", "c5/" + output + "-d"}));

  const GetResult got = cache.Get(Bytes(action));
  ASSERT_TRUE(got.hit.has_value()) << got.error;
  EXPECT_EQ(buildcache::HexId(got.hit->output_id), output);
  EXPECT_EQ(got.hit->size, 14);
  EXPECT_EQ(got.hit->time_ns, parsed->time_ns);
  EXPECT_EQ(got.hit->output_path, output_path);
}

TEST_F(DiskCacheTest, AnEmptyOutputIsStoredToo) {
  const DiskCache cache = Open();
  const std::string action = Id(1, 1), output = Id(2, 2);
  ASSERT_EQ(cache.Put(Bytes(action), Bytes(output), "").error, "");
  const GetResult got = cache.Get(Bytes(action));
  ASSERT_TRUE(got.hit.has_value());
  EXPECT_EQ(got.hit->size, 0);
  EXPECT_EQ(std::filesystem::file_size(got.hit->output_path), 0u);
}

TEST_F(DiskCacheTest, AGetHitsAnEntryTheGoCommandWrote) {
  const DiskCache cache = Open();
  const std::string action = Id(0x10, 7), output = Id(0x20, 8);
  dir_.WriteFile("10/" + action + "-a", GoEntry(action, output, 5, 1'700'000'000'123'456'789));
  dir_.WriteFile("20/" + output + "-d", "12345");
  const GetResult got = cache.Get(Bytes(action));
  ASSERT_TRUE(got.hit.has_value());
  EXPECT_EQ(got.hit->time_ns, 1'700'000'000'123'456'789);
  EXPECT_EQ(got.hit->size, 5);
}

TEST_F(DiskCacheTest, AMissSaysWhy) {
  const DiskCache cache = Open();
  const std::string output = Id(0x20, 8);
  dir_.WriteFile("20/" + output + "-d", "12345");

  EXPECT_EQ(cache.Get(Bytes(Id(0x10, 1))).miss, MissReason::kNoEntry);

  const std::string corrupt = Id(0x10, 2);
  dir_.WriteFile("10/" + corrupt + "-a", "v1 not an entry\n");
  EXPECT_EQ(cache.Get(Bytes(corrupt)).miss, MissReason::kCorrupt);

  // An entry that names another action ID is corrupt as well.
  const std::string renamed = Id(0x10, 3);
  dir_.WriteFile("10/" + renamed + "-a", GoEntry(Id(0x10, 4), output, 5));
  EXPECT_EQ(cache.Get(Bytes(renamed)).miss, MissReason::kCorrupt);

  const std::string orphan = Id(0x10, 5);
  dir_.WriteFile("10/" + orphan + "-a", GoEntry(orphan, Id(0x30, 9), 5));
  EXPECT_EQ(cache.Get(Bytes(orphan)).miss, MissReason::kOutputMissing);

  const std::string torn = Id(0x10, 6);
  dir_.WriteFile("10/" + torn + "-a", GoEntry(torn, output, 6));
  const GetResult got = cache.Get(Bytes(torn));
  EXPECT_FALSE(got.hit.has_value());
  EXPECT_EQ(got.error, "");
  EXPECT_EQ(got.miss, MissReason::kSizeMismatch);
  EXPECT_EQ(MissReasonLabel(MissReason::kSizeMismatch), "size_mismatch");
}

TEST_F(DiskCacheTest, AHitMarksTheEntryUsedAtMostHourly) {
  const DiskCache cache = Open();
  const std::string action = Id(0x10, 7), output = Id(0x20, 8);
  const std::string action_path = dir_.WriteFile("10/" + action + "-a", GoEntry(action, output, 1));
  const std::string output_path = dir_.WriteFile("20/" + output + "-d", "x");
  const int64_t two_hours_ago = NowNs() - 2 * 3600 * kNs;
  SetMtime(action_path, two_hours_ago);
  SetMtime(output_path, two_hours_ago);
  ASSERT_TRUE(cache.Get(Bytes(action)).hit.has_value());
  EXPECT_GT(Mtime(action_path), NowNs() - 60 * kNs);
  EXPECT_GT(Mtime(output_path), NowNs() - 60 * kNs);

  // Used half an hour ago: left as it is, as the go command would.
  const int64_t half_an_hour_ago = NowNs() - 1800 * kNs;
  SetMtime(action_path, half_an_hour_ago);
  SetMtime(output_path, half_an_hour_ago);
  ASSERT_TRUE(cache.Get(Bytes(action)).hit.has_value());
  EXPECT_EQ(Mtime(action_path), half_an_hour_ago);
  EXPECT_EQ(Mtime(output_path), half_an_hour_ago);

  // A miss changes nothing.
  const std::string torn = Id(0x10, 9);
  const std::string torn_path = dir_.WriteFile("10/" + torn + "-a", GoEntry(torn, output, 2));
  SetMtime(torn_path, two_hours_ago);
  SetMtime(output_path, two_hours_ago);
  EXPECT_FALSE(cache.Get(Bytes(torn)).hit.has_value());
  EXPECT_EQ(Mtime(torn_path), two_hours_ago);
  EXPECT_EQ(Mtime(output_path), two_hours_ago);
}

TEST_F(DiskCacheTest, AnOutputAlreadyThereIsKeptAndMarkedUsed) {
  const DiskCache cache = Open();
  const std::string output = Id(0x20, 8);
  const std::string output_path = dir_.WriteFile("20/" + output + "-d", "12345");
  SetMtime(output_path, NowNs() - 3 * 3600 * kNs);
  struct stat before, after;
  ASSERT_EQ(stat(output_path.c_str(), &before), 0);
  ASSERT_EQ(cache.Put(Bytes(Id(0x10, 1)), Bytes(output), "12345").error, "");
  ASSERT_EQ(stat(output_path.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_GT(MtimeNs(after), NowNs() - 60 * kNs);

  // One of another size (torn) is replaced.
  ASSERT_EQ(cache.Put(Bytes(Id(0x10, 2)), Bytes(output), "123456").error, "");
  EXPECT_EQ(ReadFile(output_path), "123456");
}

TEST_F(DiskCacheTest, AFailedPutLeavesNothing) {
  const DiskCache cache = Open();
  const std::string action = Id(0x10, 1), output = Id(0x20, 2);
  // The action's shard is a file: its entry cannot be written (even by root).
  std::filesystem::remove(dir_ / "10");
  dir_.WriteFile("10", "");
  const PutResult put = cache.Put(Bytes(action), Bytes(output), "body");
  EXPECT_NE(put.error, "");
  EXPECT_EQ(put.output_path, "");
  EXPECT_EQ(Files(dir_.path()), std::vector<std::string>{"10"});
}

TEST_F(DiskCacheTest, TrimsAsTheGoCommandDoesAtMostDaily) {
  const DiskCache cache = Open();
  const int64_t now = NowNs();
  const std::string old_action = Id(0x10, 1), old_output = Id(0x20, 2);
  const std::string new_action = Id(0x10, 3), new_output = Id(0x20, 4);
  const std::string paths[] = {
      dir_.WriteFile("10/" + old_action + "-a", GoEntry(old_action, old_output, 1)),
      dir_.WriteFile("20/" + old_output + "-d", "x"),
      dir_.WriteFile("10/" + new_action + "-a", GoEntry(new_action, new_output, 1)),
      dir_.WriteFile("20/" + new_output + "-d", "y"),
  };
  const int64_t past_cutoff = now - (buildcache::kTrimCutoffSeconds + 60) * kNs;
  const int64_t within = now - (buildcache::kTrimCutoffSeconds - 60) * kNs;
  SetMtime(paths[0], past_cutoff);
  SetMtime(paths[1], past_cutoff);
  SetMtime(paths[2], within);
  SetMtime(paths[3], within);

  std::string error;
  const auto trimmed = cache.TrimIfDue(error);
  ASSERT_TRUE(trimmed.has_value()) << error;
  EXPECT_EQ(trimmed->entries(), 2u);
  EXPECT_FALSE(std::filesystem::exists(paths[0]));
  EXPECT_FALSE(std::filesystem::exists(paths[1]));
  EXPECT_TRUE(std::filesystem::exists(paths[2]));
  EXPECT_TRUE(std::filesystem::exists(paths[3]));
  const auto recorded = buildcache::ReadTrimTime(dir_.path());
  ASSERT_TRUE(recorded.has_value());
  EXPECT_NEAR(static_cast<double>(*recorded), static_cast<double>(now / kNs), 5);

  // Not again within the day.
  SetMtime(paths[2], past_cutoff);
  EXPECT_FALSE(cache.TrimIfDue(error).has_value());
  EXPECT_EQ(error, "");
  EXPECT_TRUE(std::filesystem::exists(paths[2]));

  // A day later it is due again.
  dir_.WriteFile("trim.txt", std::to_string(now / kNs - buildcache::kTrimIntervalSeconds));
  ASSERT_TRUE(cache.TrimIfDue(error).has_value()) << error;
  EXPECT_FALSE(std::filesystem::exists(paths[2]));
}

TEST(TrimDueTest, FollowsTheGoCommandsSchedule) {
  const int64_t now = 1'800'000'000;
  EXPECT_TRUE(buildcache::TrimDue(std::nullopt, now));
  EXPECT_FALSE(buildcache::TrimDue(now, now));
  EXPECT_FALSE(buildcache::TrimDue(now - 86399, now));
  EXPECT_TRUE(buildcache::TrimDue(now - 86400, now));
  // From the future: within the hour of imprecision it waits, beyond it not.
  EXPECT_FALSE(buildcache::TrimDue(now + 3599, now));
  EXPECT_TRUE(buildcache::TrimDue(now + 3600, now));
}

}  // namespace
}  // namespace gocache
