#include "cache/inode_usage.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

namespace gocache {
namespace {

TEST(InodeUsageRatioTest, Values) {
  EXPECT_EQ(InodeUsageRatio(0, 0), std::nullopt);
  EXPECT_EQ(InodeUsageRatio(0, 5), std::nullopt);
  EXPECT_EQ(InodeUsageRatio(100, 101), std::nullopt);
  EXPECT_EQ(InodeUsageRatio(1000, 100), 0.9);
  EXPECT_EQ(InodeUsageRatio(1000, 0), 1.0);
  EXPECT_EQ(InodeUsageRatio(1000, 1000), 0.0);
  EXPECT_EQ(InodeUsageRatio(4, 1), 0.75);
  // Large filesystems keep their precision.
  const auto big = InodeUsageRatio(uint64_t{1} << 40, uint64_t{1} << 39);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(*big, 0.5);
}

}  // namespace
}  // namespace gocache
