// Prometheus text exposition format 0.0.4.
#include "apiserver/metrics.h"

#include <cstdio>

namespace fulcrum::apiserver {

void RequestMetrics::Observe(const std::string& verb, const std::string& resource, int code,
                             std::chrono::nanoseconds latency) {
  double seconds = std::chrono::duration<double>(latency).count();
  std::lock_guard lock(mu_);
  ++totals_[{verb, resource, code}];
  Histogram& h = latency_[{verb, resource}];
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.counts[i];
  }
  ++h.count;
  h.sum += seconds;
}

void RequestMetrics::Render(std::string* out) const {
  std::lock_guard lock(mu_);
  char buf[512];
  *out += "# HELP apiserver_request_total Counter of apiserver requests by verb, resource and "
          "HTTP response code.\n# TYPE apiserver_request_total counter\n";
  for (const auto& [key, n] : totals_) {
    const auto& [verb, resource, code] = key;
    std::snprintf(buf, sizeof buf,
                  "apiserver_request_total{verb=\"%s\",resource=\"%s\",code=\"%d\"} %llu\n",
                  verb.c_str(), resource.c_str(), code, static_cast<unsigned long long>(n));
    *out += buf;
  }
  *out += "# HELP apiserver_request_duration_seconds Response latency distribution in seconds "
          "by verb and resource.\n# TYPE apiserver_request_duration_seconds histogram\n";
  for (const auto& [key, h] : latency_) {
    const auto& [verb, resource] = key;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      std::snprintf(buf, sizeof buf,
                    "apiserver_request_duration_seconds_bucket{verb=\"%s\",resource=\"%s\","
                    "le=\"%g\"} %llu\n",
                    verb.c_str(), resource.c_str(), kBuckets[i],
                    static_cast<unsigned long long>(h.counts[i]));
      *out += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "apiserver_request_duration_seconds_bucket{verb=\"%s\",resource=\"%s\","
                  "le=\"+Inf\"} %llu\n"
                  "apiserver_request_duration_seconds_sum{verb=\"%s\",resource=\"%s\"} %g\n"
                  "apiserver_request_duration_seconds_count{verb=\"%s\",resource=\"%s\"} %llu\n",
                  verb.c_str(), resource.c_str(), static_cast<unsigned long long>(h.count),
                  verb.c_str(), resource.c_str(), h.sum, verb.c_str(), resource.c_str(),
                  static_cast<unsigned long long>(h.count));
    *out += buf;
  }
}

}  // namespace fulcrum::apiserver
