// Small helpers for building prometheus-cpp metric families by hand: the
// collectors render snapshots, so they fill families rather than keep live
// metric objects in a registry.
#pragma once

#include <prometheus/metric_family.h>

#include <array>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gocache {

using Labels = std::vector<prometheus::ClientMetric::Label>;

// How every family is declared: a constant row of name, help and type. A
// collector keeps its rows in one table, in exposition order, indexed by an
// enum of its own; the README's metric table lists the same families.
struct FamilyDecl {
  const char* name;
  const char* help;
  prometheus::MetricType type;
};

// Whether every row of a table is filled in: a table longer than its
// initializers would hold empty rows. For static_assert.
template <size_t N>
constexpr bool Complete(const std::array<FamilyDecl, N>& table) {
  for (const auto& row : table) {
    if (row.name == nullptr || row.help == nullptr) return false;
  }
  return true;
}

// An empty family as declared.
prometheus::MetricFamily MakeFamily(const FamilyDecl& decl);

// One empty family per row, in order.
template <size_t N>
std::vector<prometheus::MetricFamily> MakeFamilies(const std::array<FamilyDecl, N>& table) {
  std::vector<prometheus::MetricFamily> families;
  families.reserve(N);
  for (const auto& row : table) families.push_back(MakeFamily(row));
  return families;
}

// Adds one sample; the value lands in the field the family's type uses
// (gauge, counter or untyped).
void AddSample(prometheus::MetricFamily& family, Labels labels, double value);

// Adds one histogram sample from per-bucket counts (not cumulative): one per
// upper bound, then one for the observations above the last bound.
void AddHistogram(prometheus::MetricFamily& family, Labels labels,
                  std::span<const double> upper_bounds, std::span<const uint64_t> counts,
                  double sum);

// Moves the families that got at least one sample to `out`, in order.
void AppendNonEmpty(std::vector<prometheus::MetricFamily>& out,
                    std::vector<prometheus::MetricFamily>&& families);

}  // namespace gocache
