// libFuzzer target for the CRI log record parser (log files are written by containers' output).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/logs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto record =
      fulcrum::agent::ParseCriRecord(std::string_view(reinterpret_cast<const char*>(data), size));
  if (record.ok() && record->content.size() > size) __builtin_trap();
  return 0;
}
