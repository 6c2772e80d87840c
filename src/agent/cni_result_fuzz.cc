// libFuzzer target for the CNI result parser (plugin stdout is outside input).
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/network.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto result = fulcrum::agent::ParseCniResult(text);
  if (result.ok()) {
    for (const auto& ip : result->ips) {
      if (ip.interface >= static_cast<int>(result->interfaces.size())) __builtin_trap();
      if (fulcrum::agent::AddressOfCidr(ip.address).empty()) __builtin_trap();
    }
  }
  (void)fulcrum::agent::CniErrorMessage(text, 1);
  return 0;
}
