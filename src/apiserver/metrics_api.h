// The resource metrics API, metrics.k8s.io/v1beta1 NodeMetrics and PodMetrics (what
// metrics-server serves and `kubectl top` reads), served from the agents' NodeMetric objects
// (scheduling.fulcrum.dev/v1alpha1, usage_reporter.h) in the watch cache: no store of its own.
#pragma once

#include <optional>

#include "api/registry.h"
#include "apiserver/http.h"
#include "apiserver/watch_cache.h"
#include "base/clock.h"
#include "base/json.h"

namespace fulcrum::apiserver {

inline constexpr char kMetricsGroup[] = "metrics.k8s.io";

// The group's entry in /apis (an APIGroup without kind and apiVersion).
base::Json MetricsApiGroup();

// Serves a GET under /apis/metrics.k8s.io: the group, its resource list, and
//   /apis/metrics.k8s.io/v1beta1/nodes[/NAME]
//   /apis/metrics.k8s.io/v1beta1[/namespaces/NS]/pods[/NAME]
// with labelSelector (on the Node's or Pod's labels) and fieldSelector (metadata.name,
// metadata.namespace). A node whose report is older than five report intervals (at least a minute)
// by `clock` has no metrics, nor have its pods; so has a pod that no longer exists. Returns nullopt
// for any other path, so the caller serves it. Thread-safe (reads the cache only).
std::optional<HttpResponse> ServeMetricsApi(const HttpRequest& request, const api::Registry& registry,
                                            const WatchCache& cache, const base::Clock& clock);

}  // namespace fulcrum::apiserver
