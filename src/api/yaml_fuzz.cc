// libFuzzer target for YamlToJson and YamlDocumentsToJson (YAML request bodies and manifests).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/yaml.h"
#include "base/json.h"

namespace {

// A converted document is plain JSON within the depth limit: it must survive a JSON round trip.
void CheckRoundTrip(const fulcrum::base::Json& value) {
  fulcrum::base::Json again;
  if (!fulcrum::base::ParseJson(fulcrum::base::DumpJson(value), &again).ok() || again != value) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto one = fulcrum::api::YamlToJson(text);
  if (one.ok()) CheckRoundTrip(*one);
  auto all = fulcrum::api::YamlDocumentsToJson(text);
  if (all.ok()) {
    for (const auto& doc : *all) CheckRoundTrip(doc);
  }
  return 0;
}
