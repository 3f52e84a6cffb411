// cxxopts, configured once for the whole program: paths may contain commas,
// so repeated flags, not comma lists, make a vector. Include this instead of
// <cxxopts.hpp> so that every file sees the same definitions.
#pragma once

#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>
#include <string>
#include <vector>

namespace gocache {

// The values of a repeatable flag, in order; empty when it was not given.
inline std::vector<std::string> RepeatedFlag(const cxxopts::ParseResult& flags,
                                             const std::string& name) {
  return flags.count(name) ? flags[name].as<std::vector<std::string>>()
                           : std::vector<std::string>{};
}

}  // namespace gocache
