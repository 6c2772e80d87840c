#include "client/events.h"

#include "base/log.h"
#include "base/random.h"

namespace fulcrum::client {

void RecordEvent(ApiClient* api, base::Clock* clock, const Json& object, const std::string& type,
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
  auto created = api->Create(ResourcePath("v1", "events", ns), event);
  if (!created.ok()) {
    LOG_DEBUG << "event " << reason << " for " << ns << "/" << name << ": "
              << created.status().ToString();
  }
}

}  // namespace fulcrum::client
