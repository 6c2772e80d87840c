// batch/v1 Job: runs pods until spec.completions succeed (or, without completions, until one
// succeeds and none is active), at most spec.parallelism at a time; counts failures against
// backoffLimit with exponential back-off between replacements; fails the Job past
// activeDeadlineSeconds; honours suspend (pkg/controller/job).
//
// A pod evicted (status.reason "Evicted", or a DisruptionTarget condition) is replaced without
// counting as a failure, as a podFailurePolicy rule `Ignore` on DisruptionTarget would do: batch
// work that fulcrum evicts to protect online services is rescheduled, not failed.
//
// The Job's fulcrum.dev/expected-runtime annotation is copied to its pods unless their template
// has one: the scheduler places a batch pod by its expected runtime (docs/scheduler.md).
#pragma once

#include "controllers/controller.h"

namespace fulcrum::controllers {

class JobController : public Controller {
 public:
  // Subscribes to the informers; call before they start.
  JobController(client::ApiClient* api, base::Clock* clock, SharedInformers informers);

 protected:
  base::Status Sync(const std::string& key) override;

 private:
  SharedInformers informers_;
  Expectations expectations_;
};

// True when the pod failed because it was evicted or disrupted, not because its work failed.
bool IsDisrupted(const base::Json& pod);

}  // namespace fulcrum::controllers
