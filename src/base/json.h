#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/status.h"

namespace fulcrum::base {

using Json = nlohmann::json;

// Deepest nesting accepted from outside input. Deeper documents are refused before parsing so that
// hostile input cannot exhaust the stack in recursive consumers.
inline constexpr int kMaxJsonDepth = 256;

// Parses untrusted JSON. On failure returns BadRequest with the byte offset and what was expected;
// *out is left unchanged. When `duplicate_keys` is given, the names of keys that occur twice in one
// object are appended to it (the last occurrence wins in *out, as in Go).
Status ParseJson(std::string_view text, Json* out,
                 std::vector<std::string>* duplicate_keys = nullptr);

// Serializes compactly; invalid UTF-8 in strings is replaced rather than thrown.
std::string DumpJson(const Json& j);

// Returns j[a][b]... as a string, or "" when any step is missing or not of the right type.
std::string StringAt(const Json& j, std::initializer_list<const char*> path);
// The object at j[a][b]..., or nullptr.
const Json* FindPath(const Json& j, std::initializer_list<const char*> path);

// A JSON-quoted string literal, e.g. for building small documents by hand.
std::string Quote(std::string_view s);

}  // namespace fulcrum::base
