#pragma once

#include <string>

#include "api/registry.h"
#include "apiserver/http.h"
#include "apiserver/objects.h"

namespace fulcrum::apiserver {

// What a request path names: `/api/v1/namespaces/ns/pods/name/status` and the like.
struct RequestInfo {
  bool resource_request = false;
  std::string verb;  // get, list, watch, create, update, patch, delete, deletecollection
  std::string group, version, resource, namespace_, name, subresource;
  const api::ResourceType* type = nullptr;
};

// Parses the path of a resource request. Returns false for non-resource paths (/api, /version…).
bool ParseResourcePath(const HttpRequest& request, const api::Registry& registry,
                       RequestInfo* info);

// Serves one resource request: CRUD, watch, tables, subresources. Fills the response; never
// throws.
HttpResponse ServeResource(Objects& objects, const HttpRequest& request, const RequestInfo& info);

// A Kubernetes Status object for a failure (or success), with reason and code from the Status.
HttpResponse StatusResponse(const base::Status& status, const RequestInfo* info = nullptr,
                            const api::FieldErrors* causes = nullptr);

}  // namespace fulcrum::apiserver
