#include "controllers/job_controller.h"

#include <algorithm>

#include "client/events.h"
#include "controllers/workload.h"

namespace fulcrum::controllers {
namespace {

using base::StringAt;
using client::ObjectPtr;

constexpr int kBurst = 500;
constexpr auto kBaseBackoff = std::chrono::seconds(10);
constexpr auto kMaxBackoff = std::chrono::seconds(360);
// The scheduler's annotation (scheduler/job_runtime.h): how long a batch pod is expected to run.
constexpr char kExpectedRuntime[] = "fulcrum.dev/expected-runtime";

bool ConditionTrue(const Json& job, const char* type) {
  const Json* conditions = base::FindPath(job, {"status", "conditions"});
  if (conditions == nullptr || !conditions->is_array()) return false;
  for (const Json& c : *conditions) {
    if (c.is_object() && c.value("type", "") == type && c.value("status", "") == "True") return true;
  }
  return false;
}

// When the pod's last container stopped, or its creation time.
base::WallTime FinishedAt(const Json& pod) {
  base::WallTime latest{};
  const Json* statuses = base::FindPath(pod, {"status", "containerStatuses"});
  if (statuses != nullptr && statuses->is_array()) {
    for (const Json& s : *statuses) {
      base::WallTime t;
      if (base::ParseRfc3339(StringAt(s, {"state", "terminated", "finishedAt"}), &t)) {
        latest = std::max(latest, t);
      }
    }
  }
  if (latest == base::WallTime{}) base::ParseRfc3339(StringAt(pod, {"metadata", "creationTimestamp"}), &latest);
  return latest;
}

}  // namespace

bool IsDisrupted(const Json& pod) {
  if (StringAt(pod, {"status", "reason"}) == "Evicted") return true;
  const Json* conditions = base::FindPath(pod, {"status", "conditions"});
  if (conditions == nullptr || !conditions->is_array()) return false;
  for (const Json& c : *conditions) {
    if (c.is_object() && c.value("type", "") == "DisruptionTarget" && c.value("status", "") == "True") {
      return true;
    }
  }
  return false;
}

JobController::JobController(client::ApiClient* api, base::Clock* clock, SharedInformers informers)
    : Controller("job-controller", api, clock), informers_(informers), expectations_(clock) {
  EnqueueOnEvents(informers_.jobs);
  EnqueueOwnerOfPods(informers_.pods, "Job", &expectations_);
}

base::Status JobController::Sync(const std::string& key) {
  ObjectPtr job = informers_.jobs->Get(key);
  if (job == nullptr || !StringAt(*job, {"metadata", "deletionTimestamp"}).empty()) {
    return base::Status::Ok();
  }
  const std::string ns = StringAt(*job, {"metadata", "namespace"});
  const std::string job_name = StringAt(*job, {"metadata", "name"});
  const Json& spec = (*job)["spec"];
  const bool finished = ConditionTrue(*job, "Complete") || ConditionTrue(*job, "Failed");
  const bool suspended = spec.value("suspend", false);
  const int64_t parallelism = IntAt(*job, {"spec", "parallelism"}, 1);
  const Json* completions_field = base::FindPath(spec, {"completions"});
  const bool has_completions = completions_field != nullptr && completions_field->is_number_integer();
  const int64_t completions = has_completions ? completions_field->get<int64_t>() : 0;
  const int64_t backoff_limit = IntAt(*job, {"spec", "backoffLimit"}, 6);
  auto now = clock_->Now();

  std::vector<ObjectPtr> active;
  int64_t succeeded = 0, failed = 0, ready = 0;
  base::WallTime last_failure{};
  for (ObjectPtr& pod : CachedObjects(*informers_.pods,
                                      informers_.pods_by_owner->Dependents(StringAt(*job, {"metadata", "uid"})))) {
    // A create whose watch event came before ExpectCreated was recorded is satisfied here.
    expectations_.Observed(key, StringAt(*pod, {"metadata", "name"}), false);
    std::string phase = StringAt(*pod, {"status", "phase"});
    if (phase == "Succeeded") {
      ++succeeded;
    } else if (phase == "Failed") {
      if (!IsDisrupted(*pod)) {
        ++failed;
        last_failure = std::max(last_failure, FinishedAt(*pod));
      }
    } else if (IsPodActive(*pod) &&
               !expectations_.PendingDelete(key, StringAt(*pod, {"metadata", "name"}))) {
      if (IsPodReady(*pod)) ++ready;
      active.push_back(std::move(pod));
    }
  }
  // Counts never go back: a finished pod that was deleted still counted.
  succeeded = std::max(succeeded, IntAt(*job, {"status", "succeeded"}));
  failed = std::max(failed, IntAt(*job, {"status", "failed"}));

  Json status = (*job).contains("status") && (*job)["status"].is_object() ? (*job)["status"] : Json::object();
  Json before = status;
  base::Status first_error = base::Status::Ok();
  auto delete_pods = [&](std::vector<ObjectPtr>& pods, size_t n) {
    SortForDeletion(pods);
    for (size_t i = 0; i < n && i < pods.size(); ++i) {
      std::string pod_name = StringAt(*pods[i], {"metadata", "name"});
      auto r = api_->Delete(client::ResourcePath("v1", "pods", ns, pod_name));
      if (!r.ok() && !r.status().IsNotFound()) {
        first_error = r.status();
        return;
      }
      expectations_.ExpectDeleted(key, pod_name);
      client::RecordEvent(api_, clock_, *job, "Normal", "SuccessfulDelete", "Deleted pod: " + pod_name, name());
    }
  };
  auto finish = [&](const char* type, const std::string& reason, const std::string& message) {
    if (std::string(type) == "Failed") SetCondition(status, "FailureTarget", "True", reason, message, now);
    if (std::string(type) == "Complete") SetCondition(status, "SuccessCriteriaMet", "True", reason, message, now);
    SetCondition(status, type, "True", reason, message, now);
    if (std::string(type) == "Complete") status["completionTime"] = base::FormatRfc3339(now);
    delete_pods(active, active.size());
    active.clear();
    client::RecordEvent(api_, clock_, *job, std::string(type) == "Failed" ? "Warning" : "Normal",
                        reason, message, name());
  };

  if (!finished) {
    if (suspended) {
      delete_pods(active, active.size());
      active.clear();
      SetCondition(status, "Suspended", "True", "JobSuspended", "Job suspended", now);
    } else {
      if (ConditionTrue(*job, "Suspended")) {
        SetCondition(status, "Suspended", "False", "JobResumed", "Job resumed", now);
      }
      if (!status.contains("startTime")) status["startTime"] = base::FormatRfc3339(now);
      base::WallTime start;
      base::ParseRfc3339(status["startTime"].get<std::string>(), &start);
      const Json* deadline = base::FindPath(spec, {"activeDeadlineSeconds"});
      bool past_deadline = deadline != nullptr && deadline->is_number_integer() &&
                           now - start >= std::chrono::seconds(deadline->get<int64_t>());
      if (has_completions && succeeded >= completions) {
        finish("Complete", "CompletionsReached", "Reached expected number of succeeded pods");
      } else if (!has_completions && succeeded > 0 && active.empty()) {
        finish("Complete", "CompletionsReached", "Reached expected number of succeeded pods");
      } else if (failed > backoff_limit) {
        finish("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit");
      } else if (past_deadline) {
        finish("Failed", "DeadlineExceeded", "Job was active longer than specified deadline");
      } else {
        int64_t want = has_completions ? std::min(parallelism, completions - succeeded)
                                       : (succeeded > 0 ? 0 : parallelism);
        int64_t have = static_cast<int64_t>(active.size()) + expectations_.PendingCreates(key);
        if (have < want) {
          // Replacements of failed pods wait 10 s, 20 s, 40 s, ... up to 6 minutes.
          auto wait = std::chrono::nanoseconds(0);
          if (failed > 0) {
            auto backoff = std::min<std::chrono::nanoseconds>(
                kBaseBackoff * (int64_t{1} << std::min<int64_t>(failed - 1, 10)), kMaxBackoff);
            wait = last_failure + backoff - now;
          }
          if (wait > std::chrono::nanoseconds(0)) {
            EnqueueAfter(key, std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                                  std::chrono::milliseconds(1));
          } else {
            Json pod = PodFromTemplate(spec["template"], *job, "batch/v1", "Job");
            // The Job's expected runtime, for the scheduler, which reads it from the pod (a
            // runtime in the pod template wins).
            std::string runtime = StringAt(*job, {"metadata", "annotations", kExpectedRuntime});
            if (!runtime.empty() &&
                StringAt(pod, {"metadata", "annotations", kExpectedRuntime}).empty()) {
              pod["metadata"]["annotations"][kExpectedRuntime] = runtime;
            }
            std::string path = client::ResourcePath("v1", "pods", ns);
            for (int64_t i = 0; i < std::min<int64_t>(want - have, kBurst); ++i) {
              auto r = api_->Create(path, pod);
              if (!r.ok()) {
                first_error = r.status();
                client::RecordEvent(api_, clock_, *job, "Warning", "FailedCreate",
                                    "Error creating: " + r.status().message(), name());
                break;
              }
              expectations_.ExpectCreated(key, StringAt(*r, {"metadata", "name"}));
              client::RecordEvent(api_, clock_, *job, "Normal", "SuccessfulCreate",
                                  "Created pod: " + StringAt(*r, {"metadata", "name"}), name());
            }
          }
        } else if (have > want && expectations_.PendingCreates(key) == 0) {
          delete_pods(active, static_cast<size_t>(have - want));
        }
        if (deadline != nullptr && deadline->is_number_integer()) {
          auto left = start + std::chrono::seconds(deadline->get<int64_t>()) - now;
          EnqueueAfter(key, std::chrono::duration_cast<std::chrono::milliseconds>(left) +
                                std::chrono::milliseconds(1));
        }
      }
    }
  } else if (!active.empty()) {
    delete_pods(active, active.size());
    active.clear();
  }

  status["active"] = static_cast<int64_t>(active.size());
  status["succeeded"] = succeeded;
  status["failed"] = failed;
  status["ready"] = ready;
  if (status != before) {
    auto r = api_->Patch(client::ResourcePath("batch/v1", "jobs", ns, job_name, "status"),
                         client::PatchType::kMerge, Json{{"status", status}});
    if (!r.ok() && first_error.ok()) first_error = r.status();
  }
  return first_error;
}

}  // namespace fulcrum::controllers
