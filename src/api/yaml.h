#pragma once

// YAML request bodies and manifests to JSON, the way Kubernetes converts them
// (sigs.k8s.io/yaml over go-yaml v2, so YAML 1.1 scalars).
//
// Plain scalars resolve as go-yaml v2 resolves them: true/false/yes/no/on/off/y/n (in lower,
// Title and UPPER case) are booleans; ""/~/null/Null/NULL are null; 0x1f, 0o17, 017, 0b101,
// 1_000 and -5 are integers; 1.5, .5, 1e3 are numbers (a number with an integral value becomes
// a JSON integer, as Go's JSON round trip makes it); anything else, including timestamps, is a
// string. Quoted and block scalars, and scalars tagged !!str, are always strings. Map keys become
// strings ("yes: 1" gives {"true": 1}); merge keys ("<<: *base") are honoured, explicit keys
// winning over merged ones. Duplicate keys: the last one wins.
//
// Hostile input is bounded: nesting deeper than base::kMaxJsonDepth is refused, and so is alias
// expansion ("billion laughs") beyond a budget proportional to the input size. Input must be
// UTF-8 without control characters other than tab, CR and LF.
//
// Errors are BadRequest with go-yaml-like messages carrying the position, e.g.
//   yaml: line 3, column 5: end of sequence flow not found
// Thread-safe: no shared state.

#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace fulcrum::api {

using base::Json;
using base::Result;

// Converts the first document of `text` (later documents are ignored, as sigs.k8s.io/yaml
// does). Empty input, or a document that is only a comment, gives JSON null.
Result<Json> YamlToJson(std::string_view text);

// Converts every document of a "---"-separated stream, skipping empty and null documents (as
// kubectl does when it reads a manifest file).
Result<std::vector<Json>> YamlDocumentsToJson(std::string_view text);

}  // namespace fulcrum::api
