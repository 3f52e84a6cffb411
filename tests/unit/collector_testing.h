// Helpers for tests of collectors: empty flags to build one with, and
// look-ups in the metric families it returned.
#pragma once

#include <prometheus/metric_family.h>

#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "base/flags.h"
#include "collectors/collector.h"

namespace gocache::testing_util {

// A parse of no flags at all.
inline cxxopts::ParseResult NoFlags() {
  cxxopts::Options options("test");
  const char* argv[] = {"test"};
  return options.parse(1, argv);
}

// The collector `info` registers, configured without flags and made; null
// when that fails.
inline std::unique_ptr<Collector> Make(const CollectorInfo& info, const CollectorContext& context) {
  const auto configured = info.configure(NoFlags());
  const auto* collector = std::get_if<ConfiguredCollector>(&configured);
  if (!collector || !collector->make) return nullptr;
  return collector->make(context);
}

inline const prometheus::MetricFamily* FindFamily(
    const std::vector<prometheus::MetricFamily>& families, const std::string& name) {
  for (const auto& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

inline std::map<std::string, std::string> LabelMap(const prometheus::ClientMetric& metric) {
  std::map<std::string, std::string> labels;
  for (const auto& label : metric.label) labels[label.name] = label.value;
  return labels;
}

}  // namespace gocache::testing_util
