// libFuzzer target for the trace readers: any bytes give a value or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sim/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace fulcrum::sim;
  switch (data[0] % 4) {
    case 0: {
      auto s = ParseCraneTrace(text, "fuzz.csv");
      if (s.ok()) (void)Resample(*s, 60);
      break;
    }
    case 1: {
      auto s = ParseAzureTrace(text, "fuzz.csv");
      if (s.ok()) {
        for (const auto& one : *s) (void)Resample(one, 300);
      }
      break;
    }
    case 2: {
      auto s = ParseAlibabaMachineUsage(text, "fuzz.csv");
      if (s.ok()) {
        for (const auto& one : *s) (void)Resample(one, MedianInterval(one));
      }
      break;
    }
    default:
      (void)ParseAlibabaBatchTasks(text, "fuzz.csv");
  }
  return 0;
}
