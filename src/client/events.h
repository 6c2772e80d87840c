// Writing core/v1 Events: what happened to an object and why, as `kubectl describe` shows it.
#pragma once

#include <string>

#include "base/clock.h"
#include "client/api_client.h"

namespace fulcrum::client {

// Records an Event about `object` (any kind with metadata) from `component` ("replicaset-controller",
// "default-scheduler", "kubelet"). `type` is "Normal" or "Warning". Best effort: a failure is
// logged, never returned, since an event must not stop the work it describes.
void RecordEvent(ApiClient* api, base::Clock* clock, const Json& object, const std::string& type,
                 const std::string& reason, const std::string& message,
                 const std::string& component, const std::string& host = "");

}  // namespace fulcrum::client
