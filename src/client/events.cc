#include "client/events.h"

#include "base/log.h"
#include "base/random.h"

namespace fulcrum::client {

namespace {

Json EventObject(base::Clock* clock, const Json& object, const std::string& type,
                 const std::string& reason, const std::string& message,
                 const std::string& component, const std::string& host) {
  std::string ns = base::StringAt(object, {"metadata", "namespace"});
  if (ns.empty()) ns = "default";
  std::string name = base::StringAt(object, {"metadata", "name"});
  std::string now = base::FormatRfc3339(clock->Now());
  Json involved = {{"kind", object.value("kind", "")},
                   {"apiVersion", object.value("apiVersion", "")},
                   {"name", name},
                   {"uid", base::StringAt(object, {"metadata", "uid"})},
                   {"resourceVersion", base::StringAt(object, {"metadata", "resourceVersion"})}};
  if (!base::StringAt(object, {"metadata", "namespace"}).empty()) involved["namespace"] = ns;
  Json source = {{"component", component}};
  if (!host.empty()) source["host"] = host;
  Json event = {{"apiVersion", "v1"},
                {"kind", "Event"},
                {"metadata", {{"name", name + "." + base::RandomHex(8)}, {"namespace", ns}}},
                {"involvedObject", std::move(involved)},
                {"type", type},
                {"reason", reason},
                {"message", message},
                {"source", std::move(source)},
                {"reportingComponent", component},
                {"reportingInstance", host},
                {"firstTimestamp", now},
                {"lastTimestamp", now},
                {"count", 1}};
  return event;
}

void SendEvent(ApiClient* api, const Json& event) {
  const std::string ns = base::StringAt(event, {"metadata", "namespace"});
  auto created = api->Create(ResourcePath("v1", "events", ns), event);
  if (!created.ok()) {
    LOG_DEBUG << "event " << base::StringAt(event, {"reason"}) << " for " << ns << "/"
              << base::StringAt(event, {"involvedObject", "name"}) << ": "
              << created.status().ToString();
  }
}

}  // namespace

void RecordEvent(ApiClient* api, base::Clock* clock, const Json& object, const std::string& type,
                 const std::string& reason, const std::string& message,
                 const std::string& component, const std::string& host) {
  SendEvent(api, EventObject(clock, object, type, reason, message, component, host));
}

EventRecorder::EventRecorder(ApiClient* api, base::Clock* clock, std::string component,
                             std::string host, std::size_t max_queued)
    : api_(api),
      clock_(clock),
      component_(std::move(component)),
      host_(std::move(host)),
      max_queued_(max_queued),
      thread_([this] { Run(); }) {}

EventRecorder::~EventRecorder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EventRecorder::Record(const Json& object, const std::string& type, const std::string& reason,
                           const std::string& message) {
  Json event = EventObject(clock_, object, type, reason, message, component_, host_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= max_queued_) {
      LOG_WARNING << "dropping event " << reason << ": " << queue_.size() << " events queued";
      return;
    }
    queue_.push_back(std::move(event));
  }
  cv_.notify_all();
}

void EventRecorder::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !sending_; });
}

void EventRecorder::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything sent
    Json event = std::move(queue_.front());
    queue_.pop_front();
    sending_ = true;
    lock.unlock();
    SendEvent(api_, event);
    lock.lock();
    sending_ = false;
    cv_.notify_all();
  }
}

}  // namespace fulcrum::client
