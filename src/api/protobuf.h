#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace fulcrum::api {

// The media type kubectl and client-go use for built-in kinds.
inline constexpr std::string_view kProtobufMediaType = "application/vnd.kubernetes.protobuf";

// Decodes a request body in the Kubernetes protobuf wire format ("k8s\0" followed by a
// runtime.Unknown envelope whose raw field holds the object's own message) into the JSON object the
// Kubernetes JSON serializer writes for the same Go object: camelCase names, base64 for []byte,
// RFC 3339 times, Quantity and IntOrString as strings or numbers, and omitempty respected (a
// non-pointer scalar tagged omitempty is left out when zero; a pointer field that is present is
// kept even when zero). Two departures from Go: JSON nulls (a zero metav1.Time, a nil slice without
// omitempty) are left out, and metadata.managedFields is decoded like any other field.
// apiVersion and kind are taken from the envelope.
//
// The body is untrusted: every length and varint is bounds-checked and nesting is limited to
// base::kMaxJsonDepth. Failures:
//   - UnsupportedMediaType (415): the envelope names a kind the decoder has no schema for, or the
//     envelope declares a content encoding (such as gzip) or a content type other than protobuf.
//   - BadRequest (400): a truncated or malformed body, a wire type that does not match the schema,
//     a field number the schema does not know (named with its message, never silently dropped),
//     a value Go would refuse (an IntOrString of unknown type, a time outside years 1-9999,
//     a RawExtension that is not JSON), or nesting deeper than base::kMaxJsonDepth.
// Thread-safe; never throws.
base::Result<base::Json> DecodeKubernetesProtobuf(std::string_view body);

// Removes the fields of `object` that the kind's schema (the same one the decoder uses) does not
// have, as Kubernetes' decoder drops them, and returns their paths (e.g.
// "spec.template.spec.containers[0].imagee") for fieldValidation=Strict|Warn. Top-level apiVersion
// and kind are always known. nullopt, with `object` untouched, when there is no schema for the
// kind. Values of the wrong type are left for validation to report. Thread-safe; never throws.
std::optional<std::vector<std::string>> PruneUnknownFields(base::Json& object,
                                                           std::string_view api_version,
                                                           std::string_view kind);

}  // namespace fulcrum::api
