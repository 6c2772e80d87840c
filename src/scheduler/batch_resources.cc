#include "scheduler/batch_resources.h"

#include <cmath>

#include "api/validation.h"
#include "client/api_client.h"

namespace fulcrum::scheduler {

std::optional<BatchResources> BatchResourcesOf(const base::Json& node) {
  const base::Json* allocatable = base::FindPath(node, {"status", "allocatable"});
  if (allocatable == nullptr || !allocatable->is_object()) return std::nullopt;
  auto cpu = allocatable->find(kBatchCpuResource);
  auto memory = allocatable->find(kBatchMemoryResource);
  if (cpu == allocatable->end() && memory == allocatable->end()) return std::nullopt;
  BatchResources r;
  api::Quantity q;
  // batch-cpu is a count of millicores, so its Value() is the millicores.
  if (cpu != allocatable->end() && api::ParseQuantity(*cpu, &q)) r.cpu_milli = q.Value();
  if (memory != allocatable->end() && api::ParseQuantity(*memory, &q)) r.memory_bytes = q.Value();
  return r;
}

base::Json BatchResourcesPatch(const BatchResources& r) {
  base::Json resources = {
      {kBatchCpuResource, std::to_string(std::max<int64_t>(0, r.cpu_milli))},
      {kBatchMemoryResource, std::to_string(std::max<int64_t>(0, r.memory_bytes))}};
  return {{"status", {{"allocatable", resources}, {"capacity", resources}}}};
}

void BatchResourcePublisher::Seen(const std::string& node, const base::Json& object,
                                  base::WallTime now) {
  std::optional<BatchResources> in_api = BatchResourcesOf(object);
  auto it = published_.find(node);
  if (!in_api) {
    // Nothing published (yet, or any more): written at the next Due. An event from before this
    // publisher's own write can land here too; it costs one write more.
    if (it != published_.end()) published_.erase(it);
    return;
  }
  if (it == published_.end()) published_[node] = Published{*in_api, now};
}

void BatchResourcePublisher::Forget(const std::string& node) { published_.erase(node); }

bool BatchResourcePublisher::Differs(int64_t published, int64_t computed) const {
  // Koordinator's IsResourceDiff: strictly beyond the threshold either way (so 0 stays 0).
  double old = static_cast<double>(published), now = static_cast<double>(computed);
  return now > old * (1 + options_.diff_threshold) || now < old * (1 - options_.diff_threshold);
}

std::vector<std::pair<std::string, BatchResources>> BatchResourcePublisher::Due(
    const std::vector<std::pair<std::string, BatchResources>>& computed, base::WallTime now) {
  std::vector<std::pair<std::string, BatchResources>> due;
  for (const auto& [node, value] : computed) {
    auto it = published_.find(node);
    bool write = it == published_.end() || Differs(it->second.value.cpu_milli, value.cpu_milli) ||
                 Differs(it->second.value.memory_bytes, value.memory_bytes) ||
                 (it->second.value != value && now - it->second.at >= options_.max_age);
    if (!write) continue;
    published_[node] = Published{value, now};
    due.emplace_back(node, value);
  }
  return due;
}

std::pair<std::vector<std::string>, base::Status> BatchResourcePublisher::Write(
    const std::vector<std::pair<std::string, BatchResources>>& due) {
  std::vector<std::string> failed;
  base::Status first;
  for (const auto& [node, value] : due) {
    auto r = api_->Patch(client::ResourcePath("v1", "nodes", "", node, "status"),
                         client::PatchType::kMerge, BatchResourcesPatch(value));
    if (r.ok() || r.status().IsNotFound()) continue;
    failed.push_back(node);
    if (first.ok()) first = r.status();
  }
  return {failed, first};
}

}  // namespace fulcrum::scheduler
