// Expected runtimes of batch work, for placement (a batch pod goes where its expected runtime fits
// before the node's next predicted busy period): learnt per application from its completed pods,
// overridden by the pod's fulcrum.dev/expected-runtime annotation.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/status.h"

namespace fulcrum::scheduler {

inline constexpr char kExpectedRuntimeAnnotation[] = "fulcrum.dev/expected-runtime";

// Go's time.ParseDuration ("30m", "1h30m", "1.5h", "90s", "250ms"), for a positive duration, in
// whole seconds rounded up. Invalid (naming the text) for anything else: no unit, an unknown
// unit, zero, a sign, overflow.
base::Result<int64_t> ParseGoDurationSeconds(std::string_view text);
// Go's Duration.String() of whole seconds: "1h0m0s", "30m0s", "45s".
std::string FormatGoDuration(int64_t seconds);

// The key runtimes are kept under: the application ("ns/Job/name", profile.h's key) with a
// trailing "-<digits>" of a Job's name taken off, so that the runs of one piece of work share a
// history (a CronJob names its Jobs <cronjob>-<scheduled minute>; numbered runs such as
// crunch-1, crunch-2 alike). Other applications are their own key.
std::string RuntimeKey(std::string_view app);

// Runtimes of completed pods per application key, the last `window` of each; the estimate is
// their `quantile` (nearest rank: with fewer than 1 / (1 - quantile) runs, the longest). Not
// thread-safe.
class JobRuntimes {
 public:
  struct Options {
    size_t window = 20;
    double quantile = 0.9;
  };
  JobRuntimes() = default;
  explicit JobRuntimes(Options options) : options_(options) {}

  // One completed pod of `app` that ran `seconds` (ignored unless positive).
  void Record(std::string_view app, int64_t seconds);
  // The expected runtime of a pod of `app`, in seconds; 0 when none of its runs is known.
  int64_t Expected(std::string_view app) const;
  // How many runs the estimate of `app` is taken from.
  size_t Runs(std::string_view app) const;

 private:
  Options options_;
  std::unordered_map<std::string, std::deque<int64_t>> runs_;  // oldest first
};

}  // namespace fulcrum::scheduler
