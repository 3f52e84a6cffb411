#include "base/flags.h"

// Paths may contain commas, so repeated flags, not comma lists, make a vector.
#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>

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

FlagGroup& FlagGroup::Value(const std::string& name, const std::string& help) {
  set_.options_->add_options(name_)(name, help, cxxopts::value<std::string>());
  return *this;
}

FlagGroup& FlagGroup::Value(const std::string& name, const std::string& help,
                            const std::string& default_value) {
  set_.options_->add_options(name_)(name, help,
                                    cxxopts::value<std::string>()->default_value(default_value));
  return *this;
}

FlagGroup& FlagGroup::Repeated(const std::string& name, const std::string& help) {
  set_.options_->add_options(name_)(name, help, cxxopts::value<std::vector<std::string>>());
  return *this;
}

FlagGroup& FlagGroup::Switch(const std::string& name, const std::string& help) {
  set_.options_->add_options(name_)(name, help);
  return *this;
}

FlagGroup& FlagGroup::Bool(const std::string& name, const std::string& help) {
  set_.options_->add_options(name_)(name, help, cxxopts::value<bool>());
  return *this;
}

FlagGroup& FlagGroup::Int(const std::string& name, const std::string& help, int default_value) {
  set_.options_->add_options(name_)(
      name, help, cxxopts::value<int>()->default_value(std::to_string(default_value)));
  return *this;
}

FlagSet::FlagSet(const std::string& program, const std::string& description)
    : options_(std::make_unique<cxxopts::Options>(program, description)) {
  options_->set_width(100);
}

FlagSet::~FlagSet() = default;

void FlagSet::SetUsage(const std::string& usage) { options_->custom_help(usage); }

std::vector<std::string> FlagSet::Groups() const { return options_->groups(); }

std::string FlagSet::Help(const std::vector<std::string>& groups) const {
  return options_->help(groups);
}

std::optional<ParsedFlags> FlagSet::Parse(int argc, const char* const argv[], std::string& error) {
  try {
    return ParsedFlags(std::make_unique<cxxopts::ParseResult>(options_->parse(argc, argv)));
  } catch (const cxxopts::exceptions::no_such_option& e) {
    error = "unknown " + FlagNamed(PlainQuotes(e.what()));
  } catch (const cxxopts::exceptions::exception& e) {
    // "Option 'max-bytes' is missing an argument": "flag --max-bytes ...".
    std::string text = PlainQuotes(e.what());
    if (text.starts_with("Option '")) {
      const size_t close = text.find('\'', 8);
      text = FlagNamed(text) + text.substr(close + 1);
    }
    error = text;
  }
  return std::nullopt;
}

ParsedFlags::ParsedFlags(std::unique_ptr<cxxopts::ParseResult> result)
    : result_(std::move(result)) {}
ParsedFlags::~ParsedFlags() = default;
ParsedFlags::ParsedFlags(ParsedFlags&&) noexcept = default;
ParsedFlags& ParsedFlags::operator=(ParsedFlags&&) noexcept = default;

ParsedFlags ParsedFlags::Empty() {
  cxxopts::Options options("none");
  const char* argv[] = {"none"};
  return ParsedFlags(std::make_unique<cxxopts::ParseResult>(options.parse(1, argv)));
}

bool ParsedFlags::given(const std::string& name) const { return result_->count(name) > 0; }

std::string ParsedFlags::Text(const std::string& name) const {
  // A flag with a default counts as present; one without, only when given.
  try {
    const auto& value = (*result_)[name];
    return given(name) || value.has_default() ? value.as<std::string>() : "";
  } catch (const cxxopts::exceptions::exception&) {
    return "";  // never declared
  }
}

std::vector<std::string> ParsedFlags::Repeated(const std::string& name) const {
  return given(name) ? (*result_)[name].as<std::vector<std::string>>() : std::vector<std::string>{};
}

int ParsedFlags::Int(const std::string& name) const { return (*result_)[name].as<int>(); }

bool ParsedFlags::Bool(const std::string& name) const { return (*result_)[name].as<bool>(); }

const std::vector<std::string>& ParsedFlags::Unmatched() const { return result_->unmatched(); }

std::string UnexpectedArgument(const ParsedFlags& flags) {
  return flags.Unmatched().empty() ? "" : "unexpected argument '" + flags.Unmatched().front() + "'";
}

std::string UsageErrorLine(const std::string& program, const std::string& message) {
  return program + ": error: " + message + " (see " + program + " --help)\n";
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
