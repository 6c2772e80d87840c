// libFuzzer target for the three patch types. Input: one selector byte, then a JSON document and
// a JSON patch separated by a NUL byte (without one, the text is both document and patch).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "api/patch.h"
#include "base/json.h"

namespace {

using fulcrum::base::Json;

constexpr std::pair<std::string_view, std::string_view> kKinds[] = {
    {"", "Pod"},
    {"apps", "Deployment"},
    {"", "Node"},
    {"", "Service"},
    {"batch", "CronJob"},
    {"", "ConfigMap"},
    {"example.com", "Widget"},
};

// Every result is plain JSON within the depth limit, so it survives a JSON round trip.
void CheckRoundTrip(const Json& value) {
  Json again;
  if (!fulcrum::base::ParseJson(fulcrum::base::DumpJson(value), &again).ok() || again != value) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::uint8_t selector = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t nul = rest.find('\0');
  std::string_view doc_text = nul == std::string_view::npos ? rest : rest.substr(0, nul);
  std::string_view patch_text = nul == std::string_view::npos ? rest : rest.substr(nul + 1);
  Json doc, patch;
  if (!fulcrum::base::ParseJson(doc_text, &doc).ok()) return 0;
  if (!fulcrum::base::ParseJson(patch_text, &patch).ok()) return 0;

  switch (selector % 3) {
    case 0: {
      auto r = fulcrum::api::ApplyJsonPatch(doc, patch);
      if (r.ok()) CheckRoundTrip(*r);
      break;
    }
    case 1: {
      auto r = fulcrum::api::ApplyMergePatch(doc, patch);
      if (r.ok()) {
        CheckRoundTrip(*r);
        // RFC 7386 merge patches are idempotent.
        auto twice = fulcrum::api::ApplyMergePatch(*r, patch);
        if (!twice.ok() || *twice != *r) __builtin_trap();
      }
      break;
    }
    default: {
      const auto& [group, kind] = kKinds[(selector / 3) % std::size(kKinds)];
      auto r = fulcrum::api::ApplyStrategicMergePatch(doc, patch, group, kind);
      if (r.ok()) CheckRoundTrip(*r);
      break;
    }
  }
  return 0;
}
