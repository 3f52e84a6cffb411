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

// cxxopts quotes names with typographic quotes; plain ones read better in a
// terminal and in logs.
std::string PlainQuotes(std::string text) {
  for (const char* quote : {"\u2018", "\u2019"}) {
    for (size_t at; (at = text.find(quote)) != std::string::npos;) text.replace(at, 3, "'");
  }
  return text;
}

// "flag --name" (or "flag -n") for the first name quoted in `text`.
std::string FlagNamed(const std::string& text) {
  const size_t open = text.find('\''), close = text.find('\'', open + 1);
  const std::string name = text.substr(open + 1, close - open - 1);
  return "flag " + std::string(name.size() == 1 ? "-" : "--") + name;
}

}  // namespace

std::optional<cxxopts::ParseResult> ParseFlags(cxxopts::Options& options, int argc,
                                               const char* const argv[], std::string& error) {
  std::optional<cxxopts::ParseResult> flags;
  try {
    flags = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::no_such_option& e) {
    error = "unknown " + FlagNamed(PlainQuotes(e.what()));
    return std::nullopt;
  } catch (const cxxopts::exceptions::exception& e) {
    // "Option 'max-bytes' is missing an argument": "flag --max-bytes ...".
    std::string text = PlainQuotes(e.what());
    if (text.starts_with("Option '")) {
      const size_t close = text.find('\'', 8);
      text = FlagNamed(text) + text.substr(close + 1);
    }
    error = text;
    return std::nullopt;
  }
  return flags;
}

std::string UnexpectedArgument(const cxxopts::ParseResult& flags) {
  return flags.unmatched().empty() ? "" : "unexpected argument '" + flags.unmatched().front() + "'";
}

std::string UsageErrorLine(const std::string& program, const std::string& message) {
  return program + ": error: " + message + " (see " + program + " --help)\n";
}

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
