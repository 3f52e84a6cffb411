#include "cache/cache_budget.h"

#include <sys/wait.h>

#include "base/file_time.h"
#include "fixtures.h"

namespace gocache {
namespace {

using testing_util::GoEntry;
using testing_util::Id;
using testing_util::kNs;
using testing_util::SetMtime;
using testing_util::TempDir;

buildcache::Id Bytes(const std::string& hex) { return *buildcache::DecodeHexId(hex); }

// A cache of `count` units (an action and its 1000-byte output), the first
// the least recently used.
struct Units {
  std::vector<std::string> actions, outputs;
};

Units MakeUnits(const TempDir& dir, int count) {
  Units units;
  const int64_t now = NowNs();
  for (int i = 0; i < count; ++i) {
    const std::string action = Id(0x10 + i, 1), output = Id(0x80 + i, 2);
    const std::string a =
        dir.WriteFile(action.substr(0, 2) + "/" + action + "-a", GoEntry(action, output, 1000));
    const std::string o =
        dir.WriteFile(output.substr(0, 2) + "/" + output + "-d", std::string(1000, 'x'));
    SetMtime(a, now - (count - i) * 60 * kNs);
    SetMtime(o, now - (count - i) * 60 * kNs);
    units.actions.push_back(a);
    units.outputs.push_back(o);
  }
  return units;
}

class CacheBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int shard = 0; shard < 256; ++shard) {
      char name[3];
      std::snprintf(name, sizeof name, "%02x", shard);
      dir_.MakeDir(name);
    }
  }
  CacheBudget Open(const CacheLimits& limits) {
    std::string error;
    auto budget = CacheBudget::Open(dir_.path(), limits, error);
    EXPECT_TRUE(budget.has_value()) << error;
    return std::move(*budget);
  }
  TempDir dir_;
};

TEST_F(CacheBudgetTest, APutThatWouldCrossTheBoundEvictsTheOldestToTheLowWaterMark) {
  const Units units = MakeUnits(dir_, 10);  // 10 x 1175 bytes
  CacheBudget budget = Open({.max_bytes = 12'000});
  std::string error;
  // 11,750 + 100 fits: no eviction, and the total (counted once) goes up.
  EXPECT_FALSE(budget.Reserve(100, 2, error).has_value()) << error;
  // 11,850 + 1,175 would not: down to 90% of 12,000 with room for the put.
  const auto eviction = budget.Reserve(1175, 2, error);
  ASSERT_TRUE(eviction.has_value()) << error;
  EXPECT_EQ(eviction->bound, TrimBound::kBytes);
  // Left: at most 10,800 - 1,175 = 9,625 bytes, so 8 units of 1,175: 2 go.
  EXPECT_EQ(eviction->entries, 4u);
  EXPECT_EQ(eviction->bytes, 2u * 1175);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(std::filesystem::exists(units.actions[i]), i >= 2) << i;
    EXPECT_EQ(std::filesystem::exists(units.outputs[i]), i >= 2) << i;
  }
  // The total is the walk's, plus the put's.
  std::ifstream state(dir_ / ".gocacheprog/state");
  uint64_t total = 0;
  state >> total;
  EXPECT_EQ(total, 8u * 1175 + 1175);
}

TEST_F(CacheBudgetTest, WhatARunningGoCommandHoldsIsNeverEvicted) {
  const Units units = MakeUnits(dir_, 4);
  CacheBudget budget = Open({.max_bytes = 1000});
  // The oldest output was handed to this process's go command.
  const std::string oldest_output = std::filesystem::path(units.outputs[0]).filename().string();
  budget.Hold(Bytes(oldest_output.substr(0, 64)));
  std::string error;
  const auto eviction = budget.Reserve(0, 0, error);
  ASSERT_TRUE(eviction.has_value()) << error;
  // Every action goes (nothing holds an action), every output but the held one.
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(std::filesystem::exists(units.actions[i])) << i;
  EXPECT_TRUE(std::filesystem::exists(units.outputs[0]));
  for (int i = 1; i < 4; ++i) EXPECT_FALSE(std::filesystem::exists(units.outputs[i])) << i;
}

TEST_F(CacheBudgetTest, AGetHoldsTheOutputItHandsOut) {
  const Units units = MakeUnits(dir_, 3);
  CacheBudget budget = Open({.max_bytes = 100});
  std::string error;
  const auto cache = DiskCache::Open(dir_.path(), error);
  ASSERT_TRUE(cache.has_value()) << error;
  const std::string oldest = std::filesystem::path(units.actions[0]).filename().string();
  const GetResult got = budget.GetAndHold(*cache, Bytes(oldest.substr(0, 64)));
  ASSERT_TRUE(got.hit.has_value());
  ASSERT_TRUE(budget.Reserve(0, 0, error).has_value()) << error;
  EXPECT_TRUE(std::filesystem::exists(got.hit->output_path));
  for (int i = 1; i < 3; ++i) EXPECT_FALSE(std::filesystem::exists(units.outputs[i])) << i;
  // A miss holds nothing.
  EXPECT_FALSE(budget.GetAndHold(*cache, Bytes(Id(0x20, 9))).hit.has_value());
}

TEST_F(CacheBudgetTest, AHelperThatIsGoneHoldsNothing) {
  const Units units = MakeUnits(dir_, 2);
  // A held file of a process that has exited.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  CacheBudget budget = Open({.max_bytes = 10});
  const std::string output = std::filesystem::path(units.outputs[1]).filename().string();
  const std::string held =
      dir_.WriteFile(".gocacheprog/held/" + std::to_string(child), output.substr(0, 64) + "\n");
  std::string error;
  ASSERT_TRUE(budget.Reserve(0, 0, error).has_value()) << error;
  EXPECT_FALSE(std::filesystem::exists(units.outputs[1]));
  EXPECT_FALSE(std::filesystem::exists(held));
}

TEST_F(CacheBudgetTest, WithoutABoundItCountsNothingAndEvictsNothing) {
  MakeUnits(dir_, 3);
  CacheBudget budget = Open({});
  std::string error;
  EXPECT_FALSE(budget.Reserve(1 << 30, 1'000'000, error).has_value());
  EXPECT_EQ(std::filesystem::file_size(dir_ / ".gocacheprog/state"), 0u);
}

TEST_F(CacheBudgetTest, ARecountFollowsChangesMadeBehindItsBack) {
  const Units units = MakeUnits(dir_, 4);
  CacheBudget budget = Open({.max_bytes = 4 * 1175 + 100});
  std::string error;
  EXPECT_FALSE(budget.Reserve(0, 0, error).has_value());
  // Another tool removes two units; after a recount their room is free.
  for (int i = 0; i < 2; ++i) {
    std::filesystem::remove(units.actions[i]);
    std::filesystem::remove(units.outputs[i]);
  }
  budget.Recount();
  EXPECT_FALSE(budget.Reserve(2 * 1175, 4, error).has_value()) << error;
  for (int i = 2; i < 4; ++i) EXPECT_TRUE(std::filesystem::exists(units.actions[i]));
}

}  // namespace
}  // namespace gocache
