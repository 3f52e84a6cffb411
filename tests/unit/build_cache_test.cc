#include "cache/build_cache.h"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <limits>
#include <optional>
#include <ostream>
#include <string>

#include "tests/unit/fixtures.h"

namespace gocache::buildcache {
namespace {

using testing_util::GoEntry;

// An ID in `shard` (lowercase, as the go command's %x writes it).
std::string MakeId(int shard, uint64_t n) { return testing_util::Id(shard, n, 0x5a5); }

// An entry with its size and time fields given verbatim (20 characters each).
std::string EntryWithFields(const std::string& id, const std::string& out,
                            const std::string& size_field, const std::string& time_field) {
  EXPECT_EQ(size_field.size(), 20u) << '"' << size_field << '"';
  EXPECT_EQ(time_field.size(), 20u) << '"' << time_field << '"';
  return "v1 " + id + " " + out + " " + size_field + " " + time_field + "\n";
}

// Right-aligns `s` in 20 characters, as %20s would.
std::string Pad20(const std::string& s) { return std::string(20 - s.size(), ' ') + s; }

std::string Upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

const std::string kId = MakeId(0xab, 0x0123456789abcd);
const std::string kOut = MakeId(0x7f, 0x42);
constexpr int64_t kTime = 1'700'000'000'123'456'789;

TEST(BuildCacheConstantsTest, MatchTheGoCommand) {
  EXPECT_EQ(kHexIdSize, 64u);
  EXPECT_EQ(kActionEntrySize, 175u);
  EXPECT_EQ(GoEntry(kId, kOut, 1, 2).size(), kActionEntrySize);
  // trimLimit (5 days) + mtimeInterval (1 hour).
  EXPECT_EQ(kTrimCutoffSeconds, 435600);
}

TEST(ParseActionEntryTest, AcceptsTheGoCommandsFormat) {
  const std::string entry = GoEntry(kId, kOut, 12345, kTime);
  const auto parsed = ParseActionEntry(entry, kId);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->output_key, IdKey(kOut));
  EXPECT_EQ(parsed->output_key, 0x7f00000000000042u);
  EXPECT_EQ(parsed->output_size, 12345);
  EXPECT_EQ(parsed->time_ns, kTime);
}

TEST(ParseActionEntryTest, AcceptsZeroAndLargestValues) {
  const auto zero = ParseActionEntry(GoEntry(kId, kOut, 0, 0), kId);
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(zero->output_size, 0);
  EXPECT_EQ(zero->time_ns, 0);

  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const auto max = ParseActionEntry(GoEntry(kId, kOut, kMax, kMax), kId);
  ASSERT_TRUE(max.has_value());
  EXPECT_EQ(max->output_size, kMax);
  EXPECT_EQ(max->time_ns, kMax);
}

TEST(ParseActionEntryTest, RejectsWrongLengths) {
  const std::string entry = GoEntry(kId, kOut, 10, kTime);
  EXPECT_EQ(ParseActionEntry("", kId), std::nullopt) << "file is empty";
  EXPECT_EQ(ParseActionEntry(entry.substr(0, 174), kId), std::nullopt) << "entry file incomplete";
  EXPECT_EQ(ParseActionEntry(entry.substr(1), kId), std::nullopt) << "entry file incomplete";
  EXPECT_EQ(ParseActionEntry(entry.substr(0, 1), kId), std::nullopt);
  // A read of kActionEntrySize + 1 bytes that got them all: "too long", even
  // though the first 175 bytes are a valid entry.
  EXPECT_EQ(ParseActionEntry(entry + "\n", kId), std::nullopt) << "too long";
  EXPECT_EQ(ParseActionEntry(entry + "x", kId), std::nullopt) << "too long";
  EXPECT_EQ(ParseActionEntry(entry + entry, kId), std::nullopt) << "too long";
  // One more space of padding in the size field: 176 bytes.
  const std::string padded =
      "v1 " + kId + " " + kOut + " " + Pad20("10") + "  " + Pad20(std::to_string(kTime)) + "\n";
  ASSERT_EQ(padded.size(), 176u);
  EXPECT_EQ(ParseActionEntry(padded, kId), std::nullopt);
}

TEST(ParseActionEntryTest, RejectsBadHeader) {
  const std::string entry = GoEntry(kId, kOut, 10, kTime);
  ASSERT_TRUE(ParseActionEntry(entry, kId).has_value());
  for (const char* version : {"v2", "V1", "v0", "x1", "1v"}) {
    std::string bad = entry;
    bad.replace(0, 2, version);
    EXPECT_EQ(ParseActionEntry(bad, kId), std::nullopt) << version;
  }
  // The separators at their fixed offsets: after "v1", after the action ID,
  // after the output ID, between size and time.
  for (size_t at : {2u, 67u, 132u, 153u}) {
    ASSERT_EQ(entry[at], ' ') << at;
    for (char c : {'x', '\t', '0', '\n'}) {
      std::string bad = entry;
      bad[at] = c;
      EXPECT_EQ(ParseActionEntry(bad, kId), std::nullopt) << "offset " << at << " char " << int(c);
    }
  }
  // The trailing newline.
  for (char c : {' ', '\r', '\0', '0'}) {
    std::string bad = entry;
    bad[174] = c;
    EXPECT_EQ(ParseActionEntry(bad, kId), std::nullopt) << int(c);
  }
}

TEST(ParseActionEntryTest, RejectsMismatchedId) {
  const std::string entry = GoEntry(kId, kOut, 10, kTime);
  std::string last = kId;
  last.back() = last.back() == '0' ? '1' : '0';
  std::string first = kId;
  first.front() = 'f';
  EXPECT_EQ(ParseActionEntry(entry, last), std::nullopt);
  EXPECT_EQ(ParseActionEntry(entry, first), std::nullopt);
  // The output ID is not the action ID.
  EXPECT_EQ(ParseActionEntry(entry, kOut), std::nullopt);
  // A file ID that is not 64 hex digits matches nothing.
  EXPECT_EQ(ParseActionEntry(entry, kId.substr(0, 63)), std::nullopt);
  EXPECT_EQ(ParseActionEntry(entry, ""), std::nullopt);
}

TEST(ParseActionEntryTest, RejectsNonHexIds) {
  // Not hex in the action ID, even where the file name has the same byte:
  // hex.Decode fails before the comparison.
  for (char c : {'g', 'G', ' ', 'x', '-'}) {
    std::string id = kId;
    id[10] = c;
    EXPECT_EQ(ParseActionEntry(GoEntry(id, kOut, 10, kTime), id), std::nullopt) << c;
    EXPECT_EQ(ParseActionEntry(GoEntry(id, kOut, 10, kTime), kId), std::nullopt) << c;
  }
  // Not hex in the output ID: "decoding output ID".
  for (size_t at : {0u, 31u, 63u}) {
    std::string out = kOut;
    out[at] = 'z';
    EXPECT_EQ(ParseActionEntry(GoEntry(kId, out, 10, kTime), kId), std::nullopt) << at;
  }
}

TEST(ParseActionEntryTest, AcceptsUppercaseHexInContent) {
  // encoding/hex decodes either case; the file name (from %x) is lowercase.
  const std::string upper_id = Upper(kId);
  const std::string upper_out = Upper(kOut);
  ASSERT_NE(upper_id, kId);
  ASSERT_NE(upper_out, kOut);
  const auto parsed = ParseActionEntry(GoEntry(upper_id, upper_out, 7, kTime), kId);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->output_key, IdKey(kOut));
  EXPECT_EQ(parsed->output_size, 7);

  // Mixed case in both IDs.
  std::string mixed_id = kId;
  for (size_t i = 0; i < mixed_id.size(); i += 2) mixed_id[i] = Upper(mixed_id.substr(i, 1))[0];
  ASSERT_TRUE(ParseActionEntry(GoEntry(mixed_id, kOut, 7, kTime), kId).has_value());
  // Still compared by value: an uppercase ID of another action does not match.
  std::string other = upper_id;
  other[5] = other[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(ParseActionEntry(GoEntry(other, kOut, 7, kTime), kId), std::nullopt);
}

TEST(ParseActionEntryTest, RejectsNegativeSizeAndTime) {
  EXPECT_EQ(ParseActionEntry(GoEntry(kId, kOut, -1, kTime), kId), std::nullopt) << "negative size";
  EXPECT_EQ(ParseActionEntry(GoEntry(kId, kOut, 10, -1), kId), std::nullopt) << "negative time";
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(ParseActionEntry(GoEntry(kId, kOut, kMin, kTime), kId), std::nullopt);
  EXPECT_EQ(ParseActionEntry(GoEntry(kId, kOut, 10, kMin), kId), std::nullopt);
}

// The size and time fields: leading spaces skipped, then strconv.ParseInt.
struct FieldCase {
  const char* field;  // right-aligned into 20 characters unless 20 long already
  std::optional<int64_t> want;
};

void PrintTo(const FieldCase& c, std::ostream* os) {
  *os << '"' << c.field << "\" -> ";
  if (c.want) {
    *os << *c.want;
  } else {
    *os << "miss";
  }
}

class NumericFieldTest : public ::testing::TestWithParam<FieldCase> {};

TEST_P(NumericFieldTest, SizeField) {
  const std::string field = Pad20(GetParam().field);
  const auto parsed =
      ParseActionEntry(EntryWithFields(kId, kOut, field, Pad20(std::to_string(kTime))), kId);
  if (!GetParam().want) {
    EXPECT_EQ(parsed, std::nullopt) << '"' << field << '"';
    return;
  }
  ASSERT_TRUE(parsed.has_value()) << '"' << field << '"';
  EXPECT_EQ(parsed->output_size, *GetParam().want);
  EXPECT_EQ(parsed->time_ns, kTime);
}

TEST_P(NumericFieldTest, TimeField) {
  const std::string field = Pad20(GetParam().field);
  const auto parsed = ParseActionEntry(EntryWithFields(kId, kOut, Pad20("10"), field), kId);
  if (!GetParam().want) {
    EXPECT_EQ(parsed, std::nullopt) << '"' << field << '"';
    return;
  }
  ASSERT_TRUE(parsed.has_value()) << '"' << field << '"';
  EXPECT_EQ(parsed->time_ns, *GetParam().want);
  EXPECT_EQ(parsed->output_size, 10);
}

INSTANTIATE_TEST_SUITE_P(
    GoSemantics, NumericFieldTest,
    ::testing::Values(FieldCase{"5", 5}, FieldCase{"00000000000000000042", 42},
                      FieldCase{"+5", 5},      // ParseInt accepts an explicit plus sign
                      FieldCase{"-0", 0},      // parses as 0, which is not negative
                      FieldCase{"+0", 0},      //
                      FieldCase{"-5", {}},     // negative
                      FieldCase{"5   ", {}},   // trailing spaces are not skipped
                      FieldCase{"5 6", {}},    // nor inner ones
                      FieldCase{"\t5", {}},    // only spaces are skipped, not tabs
                      FieldCase{"", {}},       // twenty spaces: ParseInt("") fails
                      FieldCase{"+", {}},      //
                      FieldCase{"-", {}},      //
                      FieldCase{"+-5", {}},    //
                      FieldCase{"0x10", {}},   // base 10 only
                      FieldCase{"1_000", {}},  // no underscores in base 10
                      FieldCase{"1.5", {}},    //
                      FieldCase{"1e3", {}},    //
                      FieldCase{"9223372036854775807", 9223372036854775807},
                      FieldCase{"+9223372036854775807", 9223372036854775807},
                      FieldCase{"9223372036854775808", {}},   // overflows int64
                      FieldCase{"99999999999999999999", {}},  // 20 digits: overflows
                      FieldCase{"18446744073709551616", {}},  // 2^64: wraps to 0 if not caught
                      FieldCase{"18446744073709551621", {}},  // 2^64 + 5: wraps to 5 if not caught
                      FieldCase{"-9223372036854775808", {}},  // parses, but negative
                      FieldCase{"-9223372036854775809", {}}));

TEST(ParseTrimTimeTest, GoSemantics) {
  EXPECT_EQ(ParseTrimTime("1700000000\n"), 1700000000);
  EXPECT_EQ(ParseTrimTime("1700000000"), 1700000000);  // as the go command writes it
  EXPECT_EQ(ParseTrimTime("  42  "), 42);
  EXPECT_EQ(ParseTrimTime("\t\r\n\v\f 7 \r\n"), 7);
  EXPECT_EQ(ParseTrimTime("+5"), 5);
  EXPECT_EQ(ParseTrimTime("-5"), -5);  // parses; the go command then sees a trim long ago
  EXPECT_EQ(ParseTrimTime("0"), 0);
  EXPECT_EQ(ParseTrimTime("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseTrimTime("-9223372036854775808"), std::numeric_limits<int64_t>::min());

  EXPECT_EQ(ParseTrimTime(""), std::nullopt);
  EXPECT_EQ(ParseTrimTime(" \n"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("abc"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("1.5"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("1 2"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("17e8"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("0x10"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("+"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("-"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("1700000000x"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("9223372036854775808"), std::nullopt);  // overflow
  EXPECT_EQ(ParseTrimTime("-9223372036854775809"), std::nullopt);
  EXPECT_EQ(ParseTrimTime("18446744073709551617"), std::nullopt);
  EXPECT_EQ(ParseTrimTime(std::string_view("42\0", 3)), std::nullopt);  // NUL is not space
}

TEST(ShardIndexTest, Names) {
  EXPECT_EQ(ShardIndex("00"), 0);
  EXPECT_EQ(ShardIndex("0f"), 15);
  EXPECT_EQ(ShardIndex("10"), 16);
  EXPECT_EQ(ShardIndex("ab"), 0xab);
  EXPECT_EQ(ShardIndex("ff"), 255);
  // The go command names shards with %02x: lowercase only.
  EXPECT_EQ(ShardIndex("FF"), -1);
  EXPECT_EQ(ShardIndex("Ab"), -1);
  EXPECT_EQ(ShardIndex("0"), -1);
  EXPECT_EQ(ShardIndex("000"), -1);
  EXPECT_EQ(ShardIndex(""), -1);
  EXPECT_EQ(ShardIndex("0g"), -1);
  EXPECT_EQ(ShardIndex("g0"), -1);
  EXPECT_EQ(ShardIndex("fuzz"), -1);
  EXPECT_EQ(ShardIndex(".."), -1);
}

TEST(ClassifyTest, ActionsAndOutputsInTheirShard) {
  const std::string id = MakeId(0xab, 1);
  EXPECT_EQ(Classify(0xab, id + "-a"), EntryType::kAction);
  EXPECT_EQ(Classify(0xab, id + "-d"), EntryType::kOutput);
  EXPECT_EQ(Classify(0, MakeId(0, 9) + "-a"), EntryType::kAction);
  EXPECT_EQ(Classify(255, MakeId(255, 9) + "-d"), EntryType::kOutput);
}

TEST(ClassifyTest, EverythingElseIsOther) {
  const std::string id = MakeId(0xab, 1);
  // Where the go command would not look for it.
  EXPECT_EQ(Classify(0xac, id + "-a"), EntryType::kOther);
  EXPECT_EQ(Classify(0xba, id + "-d"), EntryType::kOther);
  EXPECT_EQ(Classify(-1, id + "-a"), EntryType::kOther);
  // Not 64 hex digits.
  EXPECT_EQ(Classify(0xab, id.substr(0, 63) + "-a"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, id + "0-a"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, id.substr(0, 63) + "g-a"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, "ab" + Upper(id.substr(2)) + "-a"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, Upper(id) + "-d"), EntryType::kOther);
  // Other suffixes and separators.
  EXPECT_EQ(Classify(0xab, id + "-b"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, id + "-A"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, id + "_a"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, id + "-a.tmp"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, id), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, "README"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, "ab-a"), EntryType::kOther);
  EXPECT_EQ(Classify(0xab, ""), EntryType::kOther);
}

TEST(HexIdTest, DecodesAndEncodes) {
  const std::string hex = "0123456789abcdef" + std::string(46, '7') + "fe";
  const auto id = DecodeHexId(hex);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ((*id)[0], 0x01);
  EXPECT_EQ((*id)[7], 0xef);
  EXPECT_EQ((*id)[31], 0xfe);
  EXPECT_EQ(HexId(*id), hex);
  EXPECT_EQ(DecodeHexId(Upper(hex)), id);           // either case, as hex.Decode
  EXPECT_EQ(HexId(*DecodeHexId(Upper(hex))), hex);  // written lowercase, as %x
  EXPECT_EQ(DecodeHexId(hex.substr(1)), std::nullopt);
  EXPECT_EQ(DecodeHexId(hex + "0"), std::nullopt);
  EXPECT_EQ(DecodeHexId(""), std::nullopt);
  for (char bad : {'g', 'G', ' ', '-', '\0'}) {
    std::string wrong = hex;
    wrong[40] = bad;
    EXPECT_EQ(DecodeHexId(wrong), std::nullopt) << bad;
  }
}

TEST(TrimmableTest, PastTheGoCommandsCutoff) {
  constexpr int64_t kSecond = 1'000'000'000;
  const int64_t now = 1'700'000'000 * kSecond;
  const int64_t cutoff = now - kTrimCutoffSeconds * kSecond;
  EXPECT_EQ(kTrimCutoffSeconds, (5 * 24 + 1) * 3600);  // trimLimit + mtimeInterval
  EXPECT_TRUE(Trimmable(cutoff - 1, now));
  EXPECT_FALSE(Trimmable(cutoff, now));
  EXPECT_FALSE(Trimmable(now, now));
  EXPECT_FALSE(Trimmable(now + kSecond, now));  // from the future: not old
  EXPECT_TRUE(Trimmable(0, now));
}

TEST(IdKeyTest, FirstEightBytes) {
  const std::string id = "0123456789abcdef" + std::string(48, '7');
  EXPECT_EQ(IdKey(id), 0x0123456789abcdefu);
  EXPECT_EQ(IdKey(Upper(id)), 0x0123456789abcdefu);  // either case, as hex.Decode
  EXPECT_EQ(IdKey(std::string(64, 'f')), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(IdKey(std::string(64, '0')), 0u);
  // Only the first 16 digits matter.
  EXPECT_EQ(IdKey("0123456789abcdef" + std::string(48, '0')), IdKey(id));
  EXPECT_NE(IdKey("0123456789abcdee" + std::string(48, '7')), IdKey(id));
  EXPECT_EQ(IdKey(MakeId(0x7f, 0x42)), 0x7f00000000000042u);
}

TEST(TrimConsidersTest, NamesEndingInDashAOrD) {
  // trimSubdir: strings.HasSuffix(name, "-a") || strings.HasSuffix(name, "-d").
  EXPECT_TRUE(TrimConsiders(MakeId(1, 2) + "-a"));
  EXPECT_TRUE(TrimConsiders(MakeId(1, 2) + "-d"));
  EXPECT_TRUE(TrimConsiders("stray-a"));
  EXPECT_TRUE(TrimConsiders("-d"));
  EXPECT_FALSE(TrimConsiders("README"));
  EXPECT_FALSE(TrimConsiders("trim.txt"));
  EXPECT_FALSE(TrimConsiders(MakeId(1, 2) + "-b"));
  EXPECT_FALSE(TrimConsiders(MakeId(1, 2) + "-A"));
  EXPECT_FALSE(TrimConsiders(MakeId(1, 2) + "-a.tmp"));
  EXPECT_FALSE(TrimConsiders("a"));
  EXPECT_FALSE(TrimConsiders(""));
}

}  // namespace
}  // namespace gocache::buildcache
