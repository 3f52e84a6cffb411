#include "cache/census_index.h"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "base/file_time.h"

namespace gocache {
namespace {

constexpr int64_t kNow = 1'800'000'000 * kNanosPerSecond;
constexpr int64_t kHourNs = 3600 * kNanosPerSecond;

// A key in `shard` and the entry name it comes from.
uint64_t Key(int shard, uint64_t n) { return static_cast<uint64_t>(shard) << 56 | n; }

std::string Name(uint64_t key, char suffix) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, key);
  return std::string(hex) + std::string(48, '0') + "-" + suffix;
}

NameState Action(uint64_t key, uint64_t output_key, int64_t output_size, int64_t mtime = kNow) {
  NameState s{Name(key, 'a'), {}, {}, {}, {}};
  s.action = ActionRecord{key, mtime, 175, output_key, output_size, 8};
  return s;
}

NameState Output(uint64_t key, int64_t size, int64_t mtime = kNow) {
  NameState s{Name(key, 'd'), {}, {}, {}, {}};
  s.output = OutputRecord{key, mtime, size, 8};
  return s;
}

NameState Gone(uint64_t key, char suffix) { return {Name(key, suffix), {}, {}, {}, {}}; }

class CensusIndexTest : public testing::Test {
 protected:
  void SetUp() override {
    for (int s = 0; s < 256; ++s) index_.ReplaceShard(s, {}, 4096);
  }
  CensusIndex index_;
};

TEST_F(CensusIndexTest, PairsActionsWithOutputsAcrossShards) {
  const uint64_t o1 = Key(0x20, 1), o2 = Key(0x20, 2), o3 = Key(0x30, 3);
  index_.Apply(0x10, {Action(Key(0x10, 1), o1, 10), Action(Key(0x10, 2), o2, 99),
                      Action(Key(0x10, 3), Key(0x40, 9), 5),
                      Action(Key(0x10, 4), 0, IndexedAction::kCorrupt)});
  index_.Apply(0x20, {Output(o1, 10), Output(o2, 20)});
  index_.Apply(0x30, {Output(o3, 30)});
  CacheCensus c = index_.Census(kNow);
  EXPECT_EQ(c.entries[0], 4u);
  EXPECT_EQ(c.entries[1], 3u);
  EXPECT_EQ(c.size_mismatch, 1u);          // o2 recorded as 99, is 20
  EXPECT_EQ(c.action_without_output, 1u);  // names an output in 0x40 that is not there
  EXPECT_EQ(c.output_without_action, 1u);  // o3
  EXPECT_EQ(c.corrupt, 1u);
  EXPECT_EQ(c.shard_entries[0x10], 4u);
  EXPECT_EQ(c.shard_entries[0x20], 2u);

  // The missing output appears; o2 is rewritten to its recorded size; the
  // action naming o1 goes, leaving o1 alone.
  index_.Apply(0x40, {Output(Key(0x40, 9), 5)});
  index_.Apply(0x20, {Output(o2, 99)});
  index_.Apply(0x10, {Gone(Key(0x10, 1), 'a')});
  c = index_.Census(kNow);
  EXPECT_EQ(c.size_mismatch, 0u);
  EXPECT_EQ(c.action_without_output, 0u);
  EXPECT_EQ(c.output_without_action, 2u);  // o1, o3
  EXPECT_EQ(c.entries[0], 3u);
  EXPECT_EQ(c.entries[1], 4u);
}

TEST_F(CensusIndexTest, SizesMoveBetweenBucketsAsEntriesChange) {
  index_.Apply(0x10, {Output(Key(0x10, 1), 256), Output(Key(0x10, 2), 257),
                      Action(Key(0x10, 3), Key(0x10, 1), 256)});
  index_.Apply(0x11, {Output(Key(0x11, 1), 67108865)});
  CacheCensus c = index_.Census(kNow);
  EXPECT_EQ(c.sizes.counts[0][0], 1u);  // the action: 175 bytes
  EXPECT_EQ(c.sizes.counts[1][0], 1u);
  EXPECT_EQ(c.sizes.counts[1][1], 1u);
  EXPECT_EQ(c.sizes.counts[1][kSizeBuckets.size()], 1u);  // past 64 MiB

  // Rewritten larger, and gone.
  index_.Apply(0x10, {Output(Key(0x10, 1), 5000), Gone(Key(0x10, 2), 'd')});
  c = index_.Census(kNow);
  EXPECT_EQ(c.sizes.counts[1][0], 0u);
  EXPECT_EQ(c.sizes.counts[1][1], 0u);
  EXPECT_EQ(c.sizes.counts[1][3], 1u);  // 4097 to 16384
  uint64_t outputs = 0;
  for (uint64_t n : c.sizes.counts[1]) outputs += n;
  EXPECT_EQ(outputs, c.entries[1]);
}

TEST_F(CensusIndexTest, TwoActionsNamingOneOutput) {
  const uint64_t o = Key(0x05, 7);
  index_.Apply(0x01, {Action(Key(0x01, 1), o, 3), Action(Key(0x01, 2), o, 3)});
  index_.Apply(0x05, {Output(o, 3)});
  EXPECT_EQ(index_.Census(kNow).output_without_action, 0u);
  index_.Apply(0x01, {Gone(Key(0x01, 1), 'a')});
  EXPECT_EQ(index_.Census(kNow).output_without_action, 0u);  // the other still names it
  index_.Apply(0x01, {Gone(Key(0x01, 2), 'a')});
  EXPECT_EQ(index_.Census(kNow).output_without_action, 1u);
}

TEST_F(CensusIndexTest, AgesAndTrimmableMoveWithTheClockAlone) {
  // Half an hour old, and 5 days + 1 hour less a minute old.
  const int64_t young = kNow - kHourNs / 2;
  const int64_t near_cutoff = kNow - (5 * 24 + 1) * kHourNs + 60 * kNanosPerSecond;
  index_.Apply(0x00, {Output(Key(0, 1), 100, young), Output(Key(0, 2), 200, near_cutoff)});
  CacheCensus c = index_.Census(kNow);
  EXPECT_EQ(c.age_counts[0], 1u);  // <= 1h
  EXPECT_EQ(c.trimmable_entries, 0u);
  EXPECT_NEAR(c.age_sum_seconds, 1800 + (5 * 24 + 1) * 3600 - 60, 1e-3);
  // The next change: the older one crosses the trim cutoff in a minute.
  EXPECT_EQ(index_.next_change_ns(), kNow + 60 * kNanosPerSecond + 1);
  c = index_.Census(kNow + 61 * kNanosPerSecond);
  EXPECT_EQ(c.trimmable_entries, 1u);
  // Then the younger one crosses the hour, half an hour from the start.
  EXPECT_EQ(index_.next_change_ns(), young + kHourNs + 1);

  const int64_t later = kNow + 2 * kHourNs;
  c = index_.Census(later);
  EXPECT_EQ(c.age_counts[0], 0u);
  EXPECT_EQ(c.age_counts[1], 1u);  // (1h, 6h]
  EXPECT_EQ(c.trimmable_entries, 1u);
  EXPECT_EQ(c.trimmable_bytes, 200u);
  EXPECT_NEAR(c.age_sum_seconds, 1800 + (5 * 24 + 1) * 3600 - 60 + 2 * 2 * 3600, 1e-3);
}

TEST_F(CensusIndexTest, ManyChangesAtOnceMergeAsFewDo) {
  std::vector<NameState> many, few;
  for (uint64_t i = 0; i < 400; ++i) many.push_back(Output(Key(7, i * 2), 1));
  index_.Apply(7, many);
  // Few: in place; many: one merge pass. Both leave the same sorted run.
  for (uint64_t i = 0; i < 10; ++i) few.push_back(Output(Key(7, i * 2 + 1), 2));
  index_.Apply(7, few);
  many.clear();
  for (uint64_t i = 0; i < 400; i += 2) many.push_back(Gone(Key(7, i * 2), 'd'));
  many.push_back(Output(Key(7, 10'001), 3));
  index_.Apply(7, many);
  const auto& outputs = index_.shard(7).outputs;
  ASSERT_EQ(outputs.size(), 400u + 10 - 200 + 1);
  for (size_t i = 1; i < outputs.size(); ++i) {
    const uint64_t before = outputs[i - 1].key, key = outputs[i].key;  // packed: copies
    EXPECT_LT(before, key);
  }
  const CacheCensus c = index_.Census(kNow);
  EXPECT_EQ(c.entries[1], 211u);
  EXPECT_EQ(c.bytes[1], 200u + 20 + 3);
}

TEST_F(CensusIndexTest, TheLastLookAtANameWins) {
  index_.Apply(3, {Output(Key(3, 1), 10), Gone(Key(3, 1), 'd'), Output(Key(3, 1), 30)});
  EXPECT_EQ(index_.Census(kNow).bytes[1], 30u);
}

TEST_F(CensusIndexTest, OtherFilesSubtreesAndInodes) {
  NameState stray{"stray-a", {}, {}, OtherFile{kNow - 10 * 24 * kHourNs, 5, 4096}, {}};
  NameState dir{"sub", {}, {}, {}, SubtreeTally{3, 2, 1, 7, 4096}};
  index_.Apply(9, {stray, dir, Output(Key(9, 1), 1)});
  index_.ApplyRoot("README", OtherFile{kNow, 100, 4096}, std::nullopt);
  index_.ApplyRoot("fuzz", std::nullopt, SubtreeTally{4, 2, 2, 50, 8192});
  const CacheCensus c = index_.Census(kNow);
  EXPECT_EQ(c.entries[2], 1u + 1 + 1 + 2);  // stray, sub's file, README, fuzz's two
  EXPECT_EQ(c.bytes[2], 5u + 7 + 100 + 50);
  EXPECT_EQ(c.trimmable_entries, 1u);  // stray-a is one the go command's trim considers
  EXPECT_EQ(c.shard_entries[9], 1u);
  // The root, 256 shards, README, fuzz's 4, and in shard 9: stray, sub's 3, the output.
  EXPECT_EQ(index_.inodes(), 1u + 256 + 1 + 4 + 1 + 3 + 1);
  EXPECT_EQ(index_.directories(), 1u + 256 + 2 + 2);
  index_.RemoveShard(9);
  EXPECT_EQ(index_.inodes(), 1u + 255 + 1 + 4);
  EXPECT_FALSE(index_.Census(kNow).shards_present[9]);
}

TEST_F(CensusIndexTest, DifferencesCountNamesThatDiffer) {
  index_.Apply(2, {Output(Key(2, 1), 10), Output(Key(2, 2), 20), Output(Key(2, 3), 30)});
  ShardContents fresh = index_.shard(2);
  EXPECT_EQ(index_.Differences(2, fresh, {}), 0u);
  fresh.outputs[0].size = 11;                         // changed
  fresh.outputs.erase(fresh.outputs.begin() + 1);     // gone
  fresh.outputs.push_back({Key(2, 4), kNow, 40, 0});  // new
  fresh.outputs[1].blocks = 16;                       // allocated later: still settling
  EXPECT_EQ(index_.Differences(2, fresh, {Name(Key(2, 3), 'd')}), 3u);
  EXPECT_EQ(index_.Differences(2, fresh, {}), 4u);
}

}  // namespace
}  // namespace gocache
