// Small helpers for building prometheus-cpp metric families by hand: the
// collectors render snapshots, so they fill families rather than keep live
// metric objects in a registry.
#pragma once

#include <prometheus/metric_family.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace gocache {

using Labels = std::vector<prometheus::ClientMetric::Label>;

prometheus::MetricFamily MakeFamily(std::string name, std::string help,
                                    prometheus::MetricType type);

// Adds one sample; the value lands in the field the family's type uses
// (gauge, counter or untyped).
void AddSample(prometheus::MetricFamily& family, Labels labels, double value);

// Adds one histogram sample from per-bucket counts (not cumulative): one per
// upper bound, then one for the observations above the last bound.
void AddHistogram(prometheus::MetricFamily& family, Labels labels,
                  const std::vector<double>& upper_bounds, const std::vector<uint64_t>& counts,
                  double sum);

// Moves the families that got at least one sample to `out`, in order.
void AppendNonEmpty(std::vector<prometheus::MetricFamily>& out,
                    std::vector<prometheus::MetricFamily>&& families);

}  // namespace gocache
