#include "scheduler/fit_index.h"

#include <algorithm>
#include <cmath>

namespace fulcrum::scheduler {

void FreeCpuIndex::Reset(size_t n) {
  n_ = n;
  size_t blocks = std::max<size_t>(1, (n + kBlock - 1) / kBlock);
  leaves_ = 1;
  while (leaves_ < blocks) leaves_ <<= 1;
  values_.assign(blocks * kBlock, -HUGE_VAL);
  tree_.assign(2 * leaves_, -HUGE_VAL);
}

double FreeCpuIndex::BlockMax(size_t block) const {
  const double* v = values_.data() + block * kBlock;
  double m = v[0];
  for (size_t k = 1; k < kBlock; ++k) m = std::max(m, v[k]);
  return m;
}

void FreeCpuIndex::Set(size_t i, double free_cpu_milli) {
  values_[i] = free_cpu_milli;
  size_t k = leaves_ + i / kBlock;
  double m = BlockMax(i / kBlock);
  if (tree_[k] == m) return;
  tree_[k] = m;
  for (k >>= 1; k >= 1; k >>= 1) {
    double v = std::max(tree_[2 * k], tree_[2 * k + 1]);
    if (tree_[k] == v) break;
    tree_[k] = v;
  }
}

void FreeCpuIndex::Assign(std::span<const double> free_cpu_milli) {
  if (free_cpu_milli.size() != n_) Reset(free_cpu_milli.size());
  std::copy(free_cpu_milli.begin(), free_cpu_milli.end(), values_.begin());
  for (size_t b = 0; b < values_.size() / kBlock; ++b) tree_[leaves_ + b] = BlockMax(b);
  for (size_t k = leaves_ - 1; k >= 1; --k) tree_[k] = std::max(tree_[2 * k], tree_[2 * k + 1]);
}

size_t FreeCpuIndex::FindFirst(size_t from, size_t to, double need) const {
  to = std::min(to, n_);
  if (from >= to) return kNone;
  // The next few nodes one after the other first (a scan's next candidate is often near), up to
  // a block's end.
  constexpr size_t kProbe = 32;
  size_t probe_end = std::min(to, (from + kProbe + kBlock - 1) / kBlock * kBlock);
  for (size_t i = from; i < probe_end; ++i) {
    if (values_[i] >= need) return i;
  }
  if (probe_end == to) return kNone;
  size_t k = leaves_ + probe_end / kBlock;
  if (!(tree_[k] >= need)) {
    // Up to the first subtree to the right that holds a value >= need, then down to its first
    // such block.
    for (;;) {
      while (k & 1) k >>= 1;  // a right child (or the root): its parent's range ends here too
      if (k == 0) return kNone;
      ++k;
      if (tree_[k] >= need) break;
    }
    while (k < leaves_) {
      k *= 2;
      if (!(tree_[k] >= need)) ++k;
    }
  }
  size_t first = (k - leaves_) * kBlock;
  size_t i = first;
  while (!(values_[i] >= need)) ++i;  // the block's maximum is >= need
  return i < to ? i : kNone;
}

double BatchCpuHeadroom(Policy& policy, std::span<const NodeInfo> nodes, size_t i,
                        int64_t min_runtime_seconds) {
  double headroom;
  BatchCpuHeadrooms(policy, nodes, i, std::span<const int64_t>(&min_runtime_seconds, 1),
                    std::span<double>(&headroom, 1));
  return headroom;
}

void BatchCpuHeadrooms(Policy& policy, std::span<const NodeInfo> nodes, size_t i,
                       std::span<const int64_t> min_runtime_seconds, std::span<double> out) {
  const NodeInfo& node = nodes[i];
  if (node.requested.pods + 1 > node.allocatable.pods) {
    std::fill(out.begin(), out.end(), -1.0);
    return;
  }
  if (!policy.ReclaimsForBatch()) {
    std::fill(out.begin(), out.end(),
              static_cast<double>(node.allocatable.cpu_milli - node.requested.cpu_milli));
    return;
  }
  policy.BatchCpuBounds(nodes, i, min_runtime_seconds, out);
  const double batch_requested =
      static_cast<double>(node.requested.cpu_milli - node.online_requested.cpu_milli);
  for (double& bound : out) bound -= batch_requested;
}

}  // namespace fulcrum::scheduler
