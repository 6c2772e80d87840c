#pragma once

// Small helpers shared by the kind definitions in types_*.cc. Not part of the api library's public
// interface: only types_*.cc include this.

#include <string>
#include <string_view>
#include <utility>

#include "api/registry.h"
#include "api/validation.h"

namespace fulcrum::api::types {

// "path[3]" and "path[key]", as Kubernetes names list items and map entries in field paths.
std::string Idx(const std::string& path, size_t i);
std::string Key(const std::string& path, const std::string& key);

// j[key] when it is an array (an object), else a shared empty one.
const Json& ArrayAt(const Json& j, const char* key);
const Json& ObjectAt(const Json& j, const char* key);
// Absent, null, or the empty string.
bool IsUnset(const Json* v);
// Sets obj[key] = value when obj is an object and the key is absent or null.
void SetDefault(Json& obj, const char* key, Json value);
// Like SetDefault, but also replaces an empty string.
void SetDefaultString(Json& obj, const char* key, const char* value);
// obj[key] as a mutable object, created when absent or null; nullptr when of another type.
Json* MutableObject(Json& obj, const char* key);
// obj[key] when it is an array, else nullptr.
Json* MutableArray(Json& obj, const char* key);

// metadata.name and metadata.namespace for field selectors; false for any other field.
bool MetadataField(const Json& obj, std::string_view field, std::string* value);
// The AGE column and its cell.
TableColumn AgeColumn();
Json AgeCell(const Json& obj, WallTime now);

// The CONTAINERS and IMAGES cells of a workload whose spec has a pod template: "nginx,sidecar"
// and "nginx:1.25,busybox" (layoutContainerCells).
std::pair<std::string, std::string> ContainerCells(const Json& spec);

// Removes nulls, empty arrays and empty objects, recursively: Kubernetes' semantic equality
// treats nil and empty maps and slices alike, and JSON cannot tell them apart.
Json Normalized(const Json& j);

// Metadata rules on create, plus the update-only ones when `old_obj` is set.
void ValidateMeta(const Json& obj, const Json* old_obj, bool namespaced, NameValidation which,
                  FieldErrors& errors);

}  // namespace fulcrum::api::types
