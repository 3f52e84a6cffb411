// cxxopts, configured once for the whole program: paths may contain commas,
// so repeated flags, not comma lists, make a vector. Include this instead of
// <cxxopts.hpp> so that every file sees the same definitions.
#pragma once

#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <chrono>
#include <cstdint>
#include <cxxopts.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gocache {

// The values of a repeatable flag, in order; empty when it was not given.
inline std::vector<std::string> RepeatedFlag(const cxxopts::ParseResult& flags,
                                             const std::string& name) {
  return flags.count(name) ? flags[name].as<std::vector<std::string>>()
                           : std::vector<std::string>{};
}

// Parses a command line with `options`: none, with `error` worded as a usage
// error ("unknown flag --bogus", plain quotes), when it does not parse.
// Arguments that are not flags are left for UnexpectedArgument (after
// --help, which ignores them).
std::optional<cxxopts::ParseResult> ParseFlags(cxxopts::Options& options, int argc,
                                               const char* const argv[], std::string& error);

// "unexpected argument 'x'" for the first argument that is not a flag, or "".
std::string UnexpectedArgument(const cxxopts::ParseResult& flags);

// The one line a usage error prints, then exit 2:
// "<program>: error: <message> (see <program> --help)".
std::string UsageErrorLine(const std::string& program, const std::string& message);

// Reads typed values out of parsed flags, each parsed once, keeping the first
// error (a usage error naming the flag and its value). A value that failed
// reads as zero: check error() before using any.
class FlagReader {
 public:
  explicit FlagReader(const cxxopts::ParseResult& flags) : flags_(flags) {}

  bool given(const std::string& name) const { return flags_.count(name) > 0; }
  // The flag's text: its value, else its default, else empty.
  std::string Text(const std::string& name) const;
  std::vector<std::string> Repeated(const std::string& name) const {
    return RepeatedFlag(flags_, name);
  }
  // A repeatable flag naming directories: each made absolute (AbsolutePath);
  // an empty one is an error.
  std::vector<std::string> Paths(const std::string& name);

  std::chrono::milliseconds Duration(const std::string& name);          // zero allowed
  std::chrono::milliseconds PositiveDuration(const std::string& name);  // above zero
  uint64_t PositiveSize(const std::string& name);
  // Above 0 and at most 1 (below 1 unless `one_allowed`).
  double Ratio(const std::string& name, bool one_allowed);
  // The same for flags without a default: none when not given.
  std::optional<uint64_t> OptionalPositiveSize(const std::string& name);
  std::optional<double> OptionalRatio(const std::string& name, bool one_allowed);

  // Records a usage error of the caller's own; the first one is kept.
  void Fail(std::string message);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  const cxxopts::ParseResult& flags_;
  std::string error_;
};

}  // namespace gocache
