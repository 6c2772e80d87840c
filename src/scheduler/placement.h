#pragma once

// The predictive policies behind scheduler::Policy (MakePolicy builds them by name):
//
// archimedes: an online pod goes to a node where the contention probability over the horizon
// (contention.h, from the application profiles of the pods there and the candidate's) stays under
// the risk bound; among those, the least probability first, and a tie goes to the most packed
// node, so that whole nodes stay free. Online requests are still honoured against
// allocatable. A batch pod goes where the reclaimable CPU (capacity - margin - predicted online
// peak at the risk bound, and no more than what the measured online usage leaves now) covers its
// request in every slot of its expected runtime; the most packed such node first.
//
// oracle (simulator only): batch pods see the node's actual future online usage
// (NodeInfo::online_forecast) with no margin; online pods are placed as `requests` places them.

#include <memory>

#include "scheduler/framework.h"

namespace fulcrum::scheduler {

std::unique_ptr<Policy> MakeArchimedesPolicy(const PolicyOptions& options);
std::unique_ptr<Policy> MakeOraclePolicy(const PolicyOptions& options);

// Runtime assumed for a batch pod whose expected runtime is unknown.
inline constexpr int64_t kDefaultBatchRuntimeSeconds = 3600;

}  // namespace fulcrum::scheduler
