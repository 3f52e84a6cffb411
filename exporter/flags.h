// cxxopts, configured once for the whole program: paths may contain commas,
// so repeated flags, not comma lists, make a vector. Include this instead of
// <cxxopts.hpp> so that every file sees the same definitions.
#pragma once

#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>
