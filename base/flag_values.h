// Parsers for flag values, shared by every flag that takes such a value.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gocache {

// A Prometheus-style duration: "30s", "5m", "1h30m", "250ms" (units ms, s, m,
// h, d, w). None when malformed.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The value of a duration flag that may be zero; none with `error` naming the
// flag and the value.
std::optional<std::chrono::milliseconds> ParseDurationFlag(std::string_view flag,
                                                           std::string_view text,
                                                           std::string& error);

// The value of a duration flag that must be positive; none with `error`
// naming the flag and the value.
std::optional<std::chrono::milliseconds> ParsePositiveDurationFlag(std::string_view flag,
                                                                   std::string_view text,
                                                                   std::string& error);

// A byte size: plain bytes ("1048576") or a number with a unit, decimal
// ("500MB", "2kB") or binary ("256MiB", "10GiB"). None when malformed or
// past 2^63.
std::optional<uint64_t> ParseSize(std::string_view text);

// The value of a size flag that must be positive; none with `error` naming
// the flag and the value.
std::optional<uint64_t> ParsePositiveSizeFlag(std::string_view flag, std::string_view text,
                                              std::string& error);

// The value of a ratio flag: above 0 and at most 1 (below 1 when
// `one_allowed` is false); none with `error` naming the flag and the value.
std::optional<double> ParseRatioFlag(std::string_view flag, std::string_view text, bool one_allowed,
                                     std::string& error);

// Turns a listen address as node_exporter takes it ("host:port", "[v6]:port",
// ":port") into CivetWeb's listening_ports syntax. ":port" binds every IPv4
// address (CivetWeb's "port"); "[::]:port" binds IPv6. None when malformed,
// with `error` saying why.
std::optional<std::string> ListenAddressToCivetPorts(std::string_view address, std::string& error);

}  // namespace gocache
