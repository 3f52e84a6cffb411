#include "cache/mountinfo.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gocache {
namespace {

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t start = line.find_first_not_of(' ', pos);
    if (start == std::string_view::npos) break;
    size_t end = line.find(' ', start);
    if (end == std::string_view::npos) end = line.size();
    fields.push_back(line.substr(start, end - start));
    pos = end;
  }
  return fields;
}

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

}  // namespace

std::string UnescapeMountField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && IsOctal(field[i + 1]) &&
        IsOctal(field[i + 2]) && IsOctal(field[i + 3])) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

std::vector<Mount> ParseMountInfo(std::string_view text) {
  std::vector<Mount> mounts;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);

    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const auto fields = SplitFields(line);
    size_t separator = 6;
    while (separator < fields.size() && fields[separator] != "-") ++separator;
    if (fields.size() < 7 || separator + 2 >= fields.size()) continue;
    mounts.push_back(Mount{
        .mount_point = UnescapeMountField(fields[4]),
        .root = UnescapeMountField(fields[3]),
        .fstype = UnescapeMountField(fields[separator + 1]),
        .source = UnescapeMountField(fields[separator + 2]),
    });
  }
  return mounts;
}

const Mount* FindMount(const std::vector<Mount>& mounts, std::string_view path) {
  const Mount* best = nullptr;
  for (const auto& mount : mounts) {
    const std::string_view point = mount.mount_point;
    const bool contains =
        point == "/" ||
        (path.starts_with(point) && (path.size() == point.size() || path[point.size()] == '/'));
    if (contains && (!best || point.size() >= best->mount_point.size())) best = &mount;
  }
  return best;
}

bool ReadMountInfo(const std::string& file, std::vector<Mount>& mounts, std::string& error) {
  std::ifstream in(file);
  if (!in) {
    error = "cannot read " + file + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  mounts = ParseMountInfo(text.str());
  if (mounts.empty()) {
    error = "no mounts found in " + file;
    return false;
  }
  return true;
}

}  // namespace gocache
