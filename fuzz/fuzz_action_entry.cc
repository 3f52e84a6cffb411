// Fuzzes gocache::buildcache::ParseActionEntry, the reading of a build
// cache action entry ("<hex>-a", 175 bytes), against a second reading of the
// go command's rules written with std::from_chars; and the file-name
// helpers Classify, ShardIndex and IdKey on the same bytes.
//
// The input is what a read of up to 176 bytes returned (a real entry file
// is a seed as it is); bytes past that, when there are any, are the file's
// ID, else the ID is the one the entry names, as in a real cache.
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>
#include <system_error>

#include "cache/build_cache.h"
#include "fuzz/fuzz_check.h"

namespace {

namespace bc = gocache::buildcache;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// strconv.ParseInt(s, 10, 64) after the field's leading spaces.
std::optional<int64_t> Field(std::string_view field) {
  field.remove_prefix(std::min(field.find_first_not_of(' '), field.size()));
  // A sign, then only digits; from_chars takes a '-' but not a '+'.
  std::string_view digits = field;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty() || digits[0] < '0' || digits[0] > '9') return std::nullopt;
  if (field[0] == '+') field.remove_prefix(1);
  int64_t value = 0;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (error != std::errc() || end != field.data() + field.size()) return std::nullopt;
  return value;
}

std::optional<bc::ActionEntry> Reference(std::string_view entry, std::string_view file_id) {
  // "v1 <64 hex action ID> <64 hex output ID> <size:20> <time ns:20>\n"
  if (entry.size() != 175 || !entry.starts_with("v1 ") || entry[67] != ' ' || entry[132] != ' ' ||
      entry[153] != ' ' || entry[174] != '\n' || file_id.size() != 64) {
    return std::nullopt;
  }
  for (size_t i = 0; i < 64; ++i) {
    const int id = HexValue(entry[3 + i]);
    if (id < 0 || id != HexValue(file_id[i]) || HexValue(entry[68 + i]) < 0) return std::nullopt;
  }
  const auto size = Field(entry.substr(133, 20));
  const auto time = Field(entry.substr(154, 20));
  if (!size || *size < 0 || !time || *time < 0) return std::nullopt;
  bc::Id output{};
  for (size_t i = 0; i < output.size(); ++i) {
    output[i] =
        static_cast<uint8_t>(HexValue(entry[68 + 2 * i]) << 4 | HexValue(entry[69 + 2 * i]));
  }
  uint64_t key = 0;
  for (size_t i = 0; i < 8; ++i) key = key << 8 | output[i];
  return bc::ActionEntry{output, key, *size, *time};
}

void CheckName(std::string_view name) {
  const int shard = bc::ShardIndex(name.substr(0, 2));
  FUZZ_CHECK(shard >= -1 && shard <= 255);
  FUZZ_CHECK(bc::ShardIndex(name) == -1 || name.size() == 2);
  const bc::EntryType type = bc::Classify(shard, name);
  if (type != bc::EntryType::kOther) {
    FUZZ_CHECK(shard >= 0 && name.size() == 66 && name[64] == '-');
    FUZZ_CHECK(name[65] == (type == bc::EntryType::kAction ? 'a' : 'd'));
    FUZZ_CHECK(bc::TrimConsiders(name));
    // The shard is the ID's first byte, so the key's top byte.
    FUZZ_CHECK(bc::IdKey(name) >> 56 == static_cast<uint64_t>(shard));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string_view entry = input.substr(0, bc::kActionEntrySize + 1);
    const std::string_view file_id =
        input.size() > entry.size()
            ? input.substr(entry.size())
            : entry.substr(std::min<size_t>(3, entry.size()), bc::kHexIdSize);
    const auto got = bc::ParseActionEntry(entry, file_id);
    const auto want = Reference(entry, file_id);
    FUZZ_CHECK(got.has_value() == want.has_value());
    if (got) {
      FUZZ_CHECK(got->output_id == want->output_id);
      FUZZ_CHECK(got->output_key == want->output_key);
      FUZZ_CHECK(got->output_size == want->output_size);
      FUZZ_CHECK(got->time_ns == want->time_ns);
      // What the helper writes reads back as itself.
      const auto action = bc::DecodeHexId(file_id);
      FUZZ_CHECK(action.has_value());
      const std::string written =
          bc::FormatActionEntry(*action, got->output_id, got->output_size, got->time_ns);
      const auto reread = bc::ParseActionEntry(written, bc::HexId(*action));
      FUZZ_CHECK(written.size() == bc::kActionEntrySize && reread.has_value());
      FUZZ_CHECK(reread->output_id == got->output_id && reread->time_ns == got->time_ns &&
                 reread->output_size == got->output_size);
    }
    CheckName(input);
    CheckName(file_id);
  });
}
