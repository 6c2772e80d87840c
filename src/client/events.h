// Writing core/v1 Events: what happened to an object and why, as `kubectl describe` shows it.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "base/clock.h"
#include "client/api_client.h"

namespace fulcrum::client {

// Records an Event about `object` (any kind with metadata) from `component` ("replicaset-controller",
// "default-scheduler", "kubelet"). `type` is "Normal" or "Warning". Best effort: a failure is
// logged, never returned, since an event must not stop the work it describes.
void RecordEvent(ApiClient* api, base::Clock* clock, const Json& object, const std::string& type,
                 const std::string& reason, const std::string& message,
                 const std::string& component, const std::string& host = "");

// Records Events from a thread of its own, in order, as client-go's event broadcaster does, so
// that the work an event describes does not wait on the API: the event is made (and its time
// taken) at Record, sent later. At most `max_queued` events wait; more are dropped and logged.
// Thread-safe. The destructor sends what is queued, then stops.
class EventRecorder {
 public:
  EventRecorder(ApiClient* api, base::Clock* clock, std::string component, std::string host = "",
                std::size_t max_queued = 1000);
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  void Record(const Json& object, const std::string& type, const std::string& reason,
              const std::string& message);
  // Blocks until every event recorded so far has been sent (or failed). For tests.
  void Flush();

 private:
  void Run();

  ApiClient* const api_;
  base::Clock* const clock_;
  const std::string component_, host_;
  const std::size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Json> queue_;  // guarded by mu_
  bool sending_ = false;    // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::thread thread_;
};

}  // namespace fulcrum::client
