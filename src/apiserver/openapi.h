#pragma once

#include <string>

#include "api/registry.h"

namespace fulcrum::apiserver {

// OpenAPI v3 documents (OpenAPI 3.0) describing the served paths: enough for clients to discover,
// per kind, the operations and the query parameters they accept (kubectl checks there that the
// server validates fields itself before it skips client-side validation). Schemas of the objects
// are minimal: every kind is an object that allows any field.

// GET /openapi/v3: {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}}}.
std::string OpenApiV3Root(const api::Registry& registry);
// GET /openapi/v3/<api/v1 | apis/GROUP/VERSION>; "" when there is no such group version.
std::string OpenApiV3GroupVersion(const api::Registry& registry, const std::string& group_version);

}  // namespace fulcrum::apiserver
