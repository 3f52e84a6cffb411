// Command-line flags: declared in a FlagSet, parsed into ParsedFlags, read
// with a FlagReader. cxxopts does the work, included by flags.cc alone: each
// translation unit that includes <cxxopts.hpp> compiles six regular
// expressions when the program starts (about half a millisecond each), and
// the GOCACHEPROG helper, this same binary, starts once per go command.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cxxopts {
class Options;
class ParseResult;
}  // namespace cxxopts

namespace gocache {

class FlagSet;
class ParsedFlags;

// Declares flags in one group of a FlagSet's help; each returns itself.
class FlagGroup {
 public:
  FlagGroup(FlagSet& set, std::string name) : set_(set), name_(std::move(name)) {}

  // A flag with a value, without or with a default.
  FlagGroup& Value(const std::string& name, const std::string& help);
  FlagGroup& Value(const std::string& name, const std::string& help,
                   const std::string& default_value);
  // A flag that may be given more than once, each value kept (paths may
  // contain commas: no comma lists).
  FlagGroup& Repeated(const std::string& name, const std::string& help);
  // A flag without a value ("-h,help" gives it a short name too).
  FlagGroup& Switch(const std::string& name, const std::string& help);
  // --name or --name=true|false.
  FlagGroup& Bool(const std::string& name, const std::string& help);
  FlagGroup& Int(const std::string& name, const std::string& help, int default_value);

 private:
  FlagSet& set_;
  std::string name_;
};

// The flags of a program or command.
class FlagSet {
 public:
  FlagSet(const std::string& program, const std::string& description);
  ~FlagSet();
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Flags in `group` ("" for the first, untitled one).
  FlagGroup Group(const std::string& group = "") { return FlagGroup(*this, group); }
  // What the help's usage line says after the program's name.
  void SetUsage(const std::string& usage);

  std::vector<std::string> Groups() const;
  // The help of the given groups, or of all.
  std::string Help(const std::vector<std::string>& groups = {}) const;

  // Parses a command line: none, with `error` worded as a usage error
  // ("unknown flag --bogus", plain quotes), when it does not parse.
  // Arguments that are not flags are left for UnexpectedArgument (after
  // --help, which ignores them).
  std::optional<ParsedFlags> Parse(int argc, const char* const argv[], std::string& error);

 private:
  friend class FlagGroup;
  std::unique_ptr<cxxopts::Options> options_;
};

// A parsed command line.
class ParsedFlags {
 public:
  explicit ParsedFlags(std::unique_ptr<cxxopts::ParseResult> result);
  ~ParsedFlags();
  ParsedFlags(ParsedFlags&&) noexcept;
  ParsedFlags& operator=(ParsedFlags&&) noexcept;

  // No flags at all (a test's, or a collector configured without any).
  static ParsedFlags Empty();

  bool given(const std::string& name) const;
  // The flag's value, else its default, else empty (also for a flag that
  // was never declared).
  std::string Text(const std::string& name) const;
  // The values of a repeatable flag, in order; empty when not given.
  std::vector<std::string> Repeated(const std::string& name) const;
  int Int(const std::string& name) const;
  bool Bool(const std::string& name) const;
  // The arguments that are not flags.
  const std::vector<std::string>& Unmatched() const;

 private:
  std::unique_ptr<cxxopts::ParseResult> result_;
};

// "unexpected argument 'x'" for the first argument that is not a flag, or "".
std::string UnexpectedArgument(const ParsedFlags& flags);

// The one line a usage error prints, then exit 2:
// "<program>: error: <message> (see <program> --help)".
std::string UsageErrorLine(const std::string& program, const std::string& message);

// Reads typed values out of parsed flags, each parsed once, keeping the first
// error (a usage error naming the flag and its value). A value that failed
// reads as zero: check error() before using any.
class FlagReader {
 public:
  explicit FlagReader(const ParsedFlags& flags) : flags_(flags) {}

  bool given(const std::string& name) const { return flags_.given(name); }
  // The flag's text: its value, else its default, else empty.
  std::string Text(const std::string& name) const { return flags_.Text(name); }
  std::vector<std::string> Repeated(const std::string& name) const { return flags_.Repeated(name); }
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
  const ParsedFlags& flags_;
  std::string error_;
};

}  // namespace gocache
