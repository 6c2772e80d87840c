// The live scheduler's usage feed: the agents' NodeMetric reports (scheduling.fulcrum.dev/v1alpha1,
// written by agent/usage_reporter.h) turned into the measured usage the load-aware and archimedes
// policies read from NodeInfo, and into application usage histories (ProfileStore) kept as
// AppProfile objects so that they survive restarts and `kubectl get appprofiles` shows them.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"
#include "scheduler/framework.h"
#include "scheduler/profile.h"

namespace fulcrum::client {
class ApiClient;
}  // namespace fulcrum::client

namespace fulcrum::scheduler {

// One NodeMetric's status as plain data. Usage figures are negative when the report lacks them.
struct NodeUsageReport {
  struct Pod {
    std::string ns, name;
    std::string qos;                // "online", "batch", or "" when the agent did not know
    double cpu_milli = -1;          // latest
    double cpu_average_milli = -1;  // over the report window
    double memory_bytes = -1;       // latest working set
  };
  std::string node;
  int64_t unix_seconds = 0;  // status.updateTime
  double cpu_milli = -1, memory_bytes = -1;
  double system_cpu_milli = -1;
  std::vector<Pod> pods;
};

// Invalid (naming the field) when the NodeMetric has no usable status.updateTime or node usage.
base::Result<NodeUsageReport> NodeUsageFromMetric(const base::Json& metric);

// Sets the node's measured usage from the report (Koordinator's LoadAwareScheduling reads the
// latest node usage): cpu_usage_milli, memory_usage_bytes, system_cpu_usage_milli, and
// online_cpu_usage_milli as the sum over the reported online pods (the scheduler's own qos of the
// pod when it knows the pod, else the agent's). Pods in the report stop counting as unreported
// (their estimate from requests is dropped: the node's usage includes them now). A change of the
// system usage touches the node (the contention model counts it in every slot and is cached by
// generation). Returns true when the node's CPU or memory usage went down or a pod stopped being
// estimated from its requests (pods held back by usage may fit now).
bool ApplyNodeUsage(const NodeUsageReport& report, NodeInfo* node);

// For a node shared with other work: its usage outside pods is not its own. Sets the report's
// node usage to the sum of its pods' (CPU and memory) and its system usage to 0.
void DropSystemUsage(NodeUsageReport* report);

// Koordinator's nodeMetricExpirationSeconds: a node whose last report is older than this has no
// known usage (its agent is gone or stuck); load-aware then neither filters it by usage nor scores
// it above 0, and batch capacity falls back to online requests.
inline constexpr std::chrono::seconds kUsageExpiry{180};
// Sets the node's measured usage to unknown.
void ForgetNodeUsage(NodeInfo* node);

// Feeds application profiles from reports: each reported pod's average CPU over the window is one
// observation of its application (the app of the pod on the node, "ns/Kind/name"). The store's
// Commit is called when the profile slot changes (its model: a slot's history decays once per
// cycle); an application seen for the first time is learnt at once from what its slot has so far
// (ProfileStore::LearnSoFar), the others' partial slots left alone. Not thread-safe (as the
// store).
class ProfileFeed {
 public:
  // Profiles count days from midnight at `utc_offset_seconds` east of UTC: a report's time is
  // shifted by it before it is placed in a slot.
  explicit ProfileFeed(ProfileStore* profiles, int64_t utc_offset_seconds = 0)
      : profiles_(profiles), utc_offset_seconds_(utc_offset_seconds) {}
  void Observe(const NodeUsageReport& report, const NodeInfo& node);

 private:
  ProfileStore* const profiles_;
  const int64_t utc_offset_seconds_;
  int64_t committed_slot_ = -1;
};

// AppProfile objects (scheduling.fulcrum.dev/v1alpha1): metadata.name "<kind>-<name>" in the
// application's namespace, spec {app, slotSeconds, slots}, status {cpuMeanMilli, cpuStdMilli,
// samples, utcOffsetSeconds}. utcOffsetSeconds is the time zone the slots count days in (the
// server's --profile-utc-offset when they were learnt); absent means UTC.
std::string AppProfileName(std::string_view app);
std::string AppProfileNamespace(std::string_view app);
base::Json AppProfileObject(const AppProfile& profile, int64_t utc_offset_seconds = 0);
// The profile with its slots counted at `utc_offset_seconds`: series learnt at another offset are
// moved by the difference. Invalid when the object lacks spec.app, its series do not have
// spec.slots values, or the difference is not a whole number of slots.
base::Result<AppProfile> AppProfileFromObject(const base::Json& object,
                                              int64_t utc_offset_seconds = 0);

// Writes learnt profiles back to the API and reads them at start-up. Thread-compatible: Due needs
// the store's lock, Write and Load do API calls and should run without it.
class AppProfileWriter {
 public:
  // A profile is written when it changed and was not written within `min_interval`; a new one at
  // once. Slots count days at `utc_offset_seconds` (ProfileFeed's). `api` is borrowed.
  AppProfileWriter(client::ApiClient* api, std::chrono::seconds min_interval,
                   int64_t utc_offset_seconds = 0)
      : api_(api), min_interval_(min_interval), utc_offset_seconds_(utc_offset_seconds) {}

  // Restores every stored AppProfile whose slot layout matches the store's into `profiles` (the
  // cold-start history). Returns how many were restored.
  base::Result<int> Load(ProfileStore* profiles);
  // The learnt profiles due for a write, copied.
  std::vector<AppProfile> Due(const ProfileStore& profiles, base::WallTime now);
  // Writes them (status through a merge patch; the object is created when missing). The first
  // error is returned after trying all.
  base::Status Write(const std::vector<AppProfile>& profiles);

 private:
  struct Written {
    double samples = -1;
    base::WallTime at;
  };
  client::ApiClient* const api_;
  const std::chrono::seconds min_interval_;
  const int64_t utc_offset_seconds_;
  std::map<std::string, Written> written_;
};

}  // namespace fulcrum::scheduler
