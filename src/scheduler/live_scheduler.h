// The scheduling loop of `fulcrum server`: pods with no node, taken highest priority first,
// placed by the framework (framework.h) under the configured policy, bound through pods/binding.
// Pods that fit nowhere get a FailedScheduling event that says why and a PodScheduled=False
// condition, and are retried when the cluster changes (a node appears or changes, a pod goes) and
// once a minute; a pod that would fit after evicting lower-priority pods has them evicted
// (preemption) and is nominated to that node.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"
#include "client/api_client.h"
#include "scheduler/framework.h"

namespace fulcrum::scheduler {

struct LiveSchedulerOptions {
  std::string policy = "archimedes";  // requests | load-aware | archimedes
  std::string scheduler_name = "default-scheduler";  // pods naming another scheduler are left alone
  int binders = 4;                                    // concurrent binding requests
  // Learnt application profiles are written back as AppProfile objects at most this often each
  // (a newly learnt one at once); usage_feed.h.
  std::chrono::seconds profile_write_interval{60};
  // A profile slot, a divisor of a day (as AppProfile objects require); a day's cycle is 86400 /
  // this many slots. A slot's observations become the profile when the slot ends.
  int64_t profile_slot_seconds = 900;
  // The time zone profiles count their days in, in seconds east of UTC (28800: UTC+8): a day's
  // first slot begins at midnight there. Less than a day either way.
  int64_t profile_utc_offset_seconds = 0;
  // Batch pods are lent no more than the agents let them use: this percentage of a node's CPU
  // less what online pods and the system use (the agents' --qos-cpu-suppress-percent; Koordinator
  // sets its cpuReclaimThresholdPercent to the same 65).
  int batch_cpu_percent = 65;
  // Whether a node's usage outside pods counts as its system usage (the agents'
  // --qos-cpu-system-usage). false for a node shared with other work: the node's usage is then the
  // sum of its pods' and its system usage 0.
  bool count_system_usage = true;
};

class LiveScheduler {
 public:
  virtual ~LiveScheduler() = default;
  // Stops the loop, the binders and the informers. Idempotent.
  virtual void Stop() = 0;
};

// Starts informers on pods, nodes and NodeMetrics (the agents' usage reports: measured usage for
// the load-aware and archimedes policies, and application profiles, restored from the AppProfile
// objects at start and written back as they are learnt) and the loop. An application with no
// profile yet is taken to use exactly its requests (no spread), so that archimedes places it as
// the requests policy would and lends none of it to batch pods. Errors: NotFound for an unknown
// policy; Invalid for a profile slot that does not divide a day, a UTC offset of a day or more, or
// a batch CPU percentage outside 1-100.
// `api` and `clock` must outlive the scheduler.
base::Result<std::unique_ptr<LiveScheduler>> StartLiveScheduler(client::ApiClient* api,
                                                                base::Clock* clock,
                                                                LiveSchedulerOptions options);

// The scheduler's views of API objects (exposed for tests).
PodInfo PodInfoFromJson(const base::Json& pod);
// A Succeeded pod's runtime in seconds, from status.startTime to its containers' last
// finishedAt; -1 for any other pod, or when either time is missing.
int64_t CompletedRuntimeSeconds(const base::Json& pod);
// Node readiness is folded into taints: a node whose Ready condition is not True carries
// node.kubernetes.io/not-ready:NoSchedule, as the node lifecycle controller would add.
void UpdateNodeInfoFromJson(const base::Json& node, NodeInfo* info);

}  // namespace fulcrum::scheduler
