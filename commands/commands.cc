#include "commands/commands.h"

#include <iostream>
#include <vector>

#include "cache/cache_discovery.h"
#include "commands/cacheprog/cacheprog.h"
#include "commands/check.h"
#include "commands/command.h"
#include "commands/trim.h"

namespace gocache {
namespace {

constexpr auto kGoEnvTimeout = std::chrono::seconds(10);

const std::vector<const Command*>& AllCommands() {
  static const std::vector<const Command*> all = {&CheckCommand(), &TrimCommand(),
                                                  &CacheprogCommand()};
  return all;
}

const Command* FindCommand(std::string_view name) {
  for (const Command* command : AllCommands()) {
    if (name == command->name) return command;
  }
  return nullptr;
}

// The command's own arguments, argv[0] being the command.
int Run(const Command& command, int argc, const char* const argv[]) {
  const std::string program = std::string("gocache_exporter ") + command.name;
  FlagSet options(program, command.description);
  command.add_flags(options);
  if (command.formats) options.Group().Value("format", "text or json.", "text");
  options.Group().Switch("h,help", "Show this help.");
  const auto usage_error = [&](const std::string& message) {
    std::cerr << UsageErrorLine(program, message);
    return kExitUsage;
  };
  // Everything after `--` is the command to run, not the command's flags.
  int flag_count = argc;
  std::vector<std::string> after_dashes;
  if (command.runs_command) {
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) != "--") continue;
      flag_count = i;
      after_dashes.assign(argv + i + 1, argv + argc);
      break;
    }
  }
  std::string error;
  const auto flags = options.Parse(flag_count, argv, error);
  if (!flags) return usage_error(error);
  if (flags->given("help")) {
    std::cout << options.Help();
    return kExitHealthy;
  }
  if (const auto unexpected = UnexpectedArgument(*flags); !unexpected.empty()) {
    return usage_error(unexpected);
  }
  FlagReader read(*flags);
  const std::string format = command.formats ? read.Text("format") : "text";
  if (format != "text" && format != "json") {
    return usage_error("--format '" + format + "': want text or json");
  }
  const auto outcome = command.run(Invocation{
      .flags = read,
      .format = format == "json" ? OutputFormat::kJson : OutputFormat::kText,
      .command = std::move(after_dashes),
  });
  if (!outcome.usage_error.empty()) return usage_error(outcome.usage_error);
  return outcome.exit_code;
}

}  // namespace

std::vector<std::string> GoBuildCaches() {
  std::vector<std::string> dirs;
  for (const auto& cache : DiscoverCaches({}, {}, kGoEnvTimeout)) {
    if (cache.kind == CacheKind::kBuild) dirs.push_back(cache.path);
  }
  return dirs;
}

bool IsCommand(std::string_view name) { return FindCommand(name) != nullptr; }

std::string CommandsHelp() {
  std::string help = "Commands:\n";
  for (const Command* command : AllCommands()) {
    std::string name = command->name;
    name.resize(15, ' ');
    help += "  " + name + command->summary + "\n";
  }
  return help + "  help [COMMAND] This help, or a command's (the same as COMMAND --help).\n";
}

int RunCommandLine(int argc, char** argv) {
  // cxxopts sees the command's own arguments, with the command as argv[0].
  return Run(*FindCommand(argv[1]), argc - 1, argv + 1);
}

}  // namespace gocache
