// libFuzzer target for base::ParseJson, the parser of every JSON request body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using fulcrum::base::Json;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Json value;
  if (!fulcrum::base::ParseJson(text, &value).ok()) return 0;
  // What the server writes back must read back as the same value.
  std::string dumped = fulcrum::base::DumpJson(value);
  Json again;
  if (!fulcrum::base::ParseJson(dumped, &again).ok() || again != value) __builtin_trap();
  return 0;
}
