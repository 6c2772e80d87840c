#pragma once

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace fulcrum::apiserver {

// Request counters and latency histograms by verb, resource and code, in the Prometheus text
// exposition format under the names kube-apiserver uses. Thread-safe.
class RequestMetrics {
 public:
  void Observe(const std::string& verb, const std::string& resource, int code,
               std::chrono::nanoseconds latency);
  // Appends the metrics in Prometheus text format.
  void Render(std::string* out) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1.0,  2.5,   5.0};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> totals_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
};

}  // namespace fulcrum::apiserver
