// libFuzzer target for DecodeKubernetesProtobuf (protobuf request bodies from kubectl and
// client-go). Seeds: the captures in testdata/protobuf/*.pb.hex, converted to binary.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/protobuf.h"
#include "base/json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto decoded = fulcrum::api::DecodeKubernetesProtobuf(body);
  if (!decoded.ok()) return 0;
  const fulcrum::base::Json& object = *decoded;
  if (!object.is_object()) __builtin_trap();
  for (const char* key : {"apiVersion", "kind"}) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_string()) __builtin_trap();
  }
  // Strings are valid UTF-8, so a strict dump does not throw, and the document is within the depth
  // limit, so it parses back to the same value.
  std::string text;
  try {
    text = object.dump();
  } catch (...) {
    __builtin_trap();
  }
  fulcrum::base::Json again;
  if (!fulcrum::base::ParseJson(text, &again).ok() || again != object) __builtin_trap();
  return 0;
}
