// The batch capacity the live scheduler publishes on each Node, as Koordinator's node resource
// controller (slo-controller, batchresource plugin) does: kubernetes.io/batch-cpu (millicores, as
// a plain integer: Koordinator's unit) and kubernetes.io/batch-memory (bytes) in the Node's
// status.allocatable and status.capacity. The values come from the scheduling policy's own
// BatchAllocatable, so what `kubectl get node` shows is what batch pods are placed against.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::client {
class ApiClient;
}  // namespace fulcrum::client

namespace fulcrum::scheduler {

inline constexpr char kBatchCpuResource[] = "kubernetes.io/batch-cpu";
inline constexpr char kBatchMemoryResource[] = "kubernetes.io/batch-memory";

struct BatchResources {
  int64_t cpu_milli = 0;
  int64_t memory_bytes = 0;
  bool operator==(const BatchResources&) const = default;
};

// What a Node object's status.allocatable holds; nullopt when it has neither key (a key alone
// reads the other as 0).
std::optional<BatchResources> BatchResourcesOf(const base::Json& node);

// The merge patch of a Node's status that sets both keys in allocatable and capacity (a merge
// patch leaves the other resources, which the agent writes, as they are).
base::Json BatchResourcesPatch(const BatchResources& resources);

// Koordinator's ColocationStrategy defaults: a value is rewritten when it moved by more than
// resourceDiffThreshold (10%) of what is published, or, when it moved at all, once the published
// value is updateTimeThresholdSeconds (300 s) old.
struct BatchPublishOptions {
  double diff_threshold = 0.1;
  std::chrono::seconds max_age{300};
};

// Decides which nodes need a write, and writes them. Thread-compatible: Seen, Forget, Due and
// Failed need the caller's lock; Write does API calls and should run without it.
class BatchResourcePublisher {
 public:
  // `api` is borrowed.
  BatchResourcePublisher(client::ApiClient* api, BatchPublishOptions options = {})
      : api_(api), options_(options) {}

  // The node as the API holds it (an informer's add or update). Its values become the published
  // ones when this publisher has no record of the node (a scheduler restarted over published
  // nodes writes nothing until the values move); a node that lost both keys (re-registered, or
  // its status replaced) is written again at the next Due.
  void Seen(const std::string& node, const base::Json& object, base::WallTime now);
  void Forget(const std::string& node);

  // The nodes whose `computed` resources are due for a write, recorded as published at `now`.
  std::vector<std::pair<std::string, BatchResources>> Due(
      const std::vector<std::pair<std::string, BatchResources>>& computed, base::WallTime now);
  // A write that failed: the node is due again at the next Due.
  void Failed(const std::string& node) { Forget(node); }

  // Patches each node's status (the status subresource). NotFound for a node that is gone is not
  // an error. Returns the nodes whose write failed, with the first error.
  std::pair<std::vector<std::string>, base::Status> Write(
      const std::vector<std::pair<std::string, BatchResources>>& due);

 private:
  struct Published {
    BatchResources value;
    base::WallTime at;
  };
  bool Differs(int64_t published, int64_t computed) const;

  client::ApiClient* const api_;
  const BatchPublishOptions options_;
  std::map<std::string, Published> published_;
};

}  // namespace fulcrum::scheduler
