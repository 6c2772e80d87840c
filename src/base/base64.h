#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fulcrum::base {

// Base64 with the standard alphabet and padding (RFC 4648 §4), as Go's encoding/json writes
// []byte fields and as kubeconfigs and continue tokens use it.
std::string Base64Encode(std::string_view in);

// Decodes what Base64Encode writes; line breaks are skipped, as Go's decoder does. Returns false,
// with the offset of the offending byte in *bad_offset, on malformed input (*out is then
// unspecified).
bool Base64Decode(std::string_view in, std::string* out, std::size_t* bad_offset);

}  // namespace fulcrum::base
