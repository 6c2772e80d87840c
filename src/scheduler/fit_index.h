#pragma once

// An index over a span of nodes of how much CPU a batch pod could still request on each (an upper
// bound), so that Schedule() skips the nodes it rules out without running their filters: a
// cluster full of batch work answers "fits nowhere" in O(log n) instead of a scan of every node,
// and a pod that fits finds its candidates without visiting every full node on the way.
//
// Exactness is the caller's contract: a node's value must never be below what its filters would
// accept (BatchCpuHeadroom() computes such a value). Set it again whenever the node's pods, its
// usage, the policy's view (profiles, clock) or the clock change; the simulator rebuilds it once a
// minute and updates a node after each bind. Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "scheduler/framework.h"

namespace fulcrum::scheduler {

class FreeCpuIndex {
 public:
  static constexpr size_t kNone = static_cast<size_t>(-1);

  // n nodes, each with nothing free (no pod fits).
  void Reset(size_t n);
  size_t size() const { return n_; }

  // One node's value; O(log n).
  void Set(size_t i, double free_cpu_milli);
  double Get(size_t i) const { return values_[i]; }
  // Sets every node's value, then builds the tree once; O(n).
  void Assign(std::span<const double> free_cpu_milli);

  // The first node in [from, to) whose value is at least `need`; kNone when there is none.
  size_t FindFirst(size_t from, size_t to, double need) const;

 private:
  // Nodes per leaf of the tree (one cache line of values): the tree is that much smaller, and the
  // last levels of a search are one scan of a block.
  static constexpr size_t kBlock = 8;

  double BlockMax(size_t block) const;

  size_t n_ = 0;
  size_t leaves_ = 1;            // a power of two >= the number of blocks
  std::vector<double> values_;   // per node, then -inf up to a whole block
  std::vector<double> tree_;     // max-tree over blocks: tree_[1] is the root, block b's maximum
                                 // at tree_[leaves_ + b]
};

// An upper bound of the CPU (millicores) one more batch pod may request on nodes[i] under `policy`
// now, for a pod expected to run at least `min_runtime_seconds` (0: any pod; a longer runtime can
// only lower the bound): negative when the node has no room for another pod. For a policy that
// does not reclaim, allocatable minus requested CPU; otherwise Policy::BatchCpuBounds() minus the
// batch pods' requests.
double BatchCpuHeadroom(Policy& policy, std::span<const NodeInfo> nodes, size_t i,
                        int64_t min_runtime_seconds = 0);
// The same for several runtimes at once, into `out[k]` for `min_runtime_seconds[k]` (one policy
// call per node: an index per runtime class is rebuilt from these).
void BatchCpuHeadrooms(Policy& policy, std::span<const NodeInfo> nodes, size_t i,
                       std::span<const int64_t> min_runtime_seconds, std::span<double> out);

}  // namespace fulcrum::scheduler
