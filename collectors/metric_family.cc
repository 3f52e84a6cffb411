#include "collectors/metric_family.h"

namespace gocache {

prometheus::MetricFamily MakeFamily(const FamilyDecl& decl) {
  prometheus::MetricFamily family;
  family.name = decl.name;
  family.help = decl.help;
  family.type = decl.type;
  return family;
}

void AddSample(prometheus::MetricFamily& family, Labels labels, double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  switch (family.type) {
    case prometheus::MetricType::Counter:
      metric.counter.value = value;
      break;
    case prometheus::MetricType::Gauge:
      metric.gauge.value = value;
      break;
    default:
      metric.untyped.value = value;
      break;
  }
  family.metric.push_back(std::move(metric));
}

void AddHistogram(prometheus::MetricFamily& family, Labels labels,
                  std::span<const double> upper_bounds, std::span<const uint64_t> counts,
                  double sum) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    cumulative += counts[i];
    metric.histogram.bucket.push_back({cumulative, upper_bounds[i]});
  }
  for (size_t i = upper_bounds.size(); i < counts.size(); ++i) cumulative += counts[i];
  metric.histogram.sample_count = cumulative;  // the +Inf bucket the serializer adds
  metric.histogram.sample_sum = sum;
  family.metric.push_back(std::move(metric));
}

void AppendNonEmpty(std::vector<prometheus::MetricFamily>& out,
                    std::vector<prometheus::MetricFamily>&& families) {
  for (auto& family : families) {
    if (!family.metric.empty()) out.push_back(std::move(family));
  }
}

}  // namespace gocache
