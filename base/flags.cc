#include "base/flags.h"

#include "base/flag_values.h"
#include "base/paths.h"

namespace gocache {
namespace {

// The value, or zero after recording the error.
template <typename T>
T Or(std::optional<T> value, std::string& error, FlagReader& reader) {
  if (value) return *value;
  reader.Fail(std::move(error));
  return T{};
}

}  // namespace

std::string FlagReader::Text(const std::string& name) const {
  // A flag with a default counts as present; one without, only when given.
  return flags_.count(name) || flags_[name].has_default() ? flags_[name].as<std::string>() : "";
}

std::vector<std::string> FlagReader::Paths(const std::string& name) {
  std::vector<std::string> paths;
  for (const auto& path : Repeated(name)) {
    if (path.empty()) Fail("--" + name + " must not be empty");
    paths.push_back(AbsolutePath(path));
  }
  return paths;
}

std::chrono::milliseconds FlagReader::Duration(const std::string& name) {
  std::string error;
  return Or(ParseDurationFlag(name, Text(name), error), error, *this);
}

std::chrono::milliseconds FlagReader::PositiveDuration(const std::string& name) {
  std::string error;
  return Or(ParsePositiveDurationFlag(name, Text(name), error), error, *this);
}

uint64_t FlagReader::PositiveSize(const std::string& name) {
  std::string error;
  return Or(ParsePositiveSizeFlag(name, Text(name), error), error, *this);
}

double FlagReader::Ratio(const std::string& name, bool one_allowed) {
  std::string error;
  return Or(ParseRatioFlag(name, Text(name), one_allowed, error), error, *this);
}

std::optional<uint64_t> FlagReader::OptionalPositiveSize(const std::string& name) {
  if (!given(name)) return std::nullopt;
  return PositiveSize(name);
}

std::optional<double> FlagReader::OptionalRatio(const std::string& name, bool one_allowed) {
  if (!given(name)) return std::nullopt;
  return Ratio(name, one_allowed);
}

void FlagReader::Fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
}

}  // namespace gocache
