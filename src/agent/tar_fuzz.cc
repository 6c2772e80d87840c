// libFuzzer target for TarReader (plain and gzip input): parses every entry without extracting.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/tar.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto source = fulcrum::agent::MaybeDecompress(fulcrum::agent::NewStringSource(&bytes));
  fulcrum::agent::TarReader reader(source.get());
  fulcrum::agent::TarEntry entry;
  char buf[4096];
  for (int i = 0; i < 100000; ++i) {
    auto more = reader.Next(&entry);
    if (!more.ok() || !*more) break;
    const std::string p = "/" + entry.path + "/";
    if (p.find("/../") != std::string::npos || (p.find("//") != std::string::npos && p != "//")) {
      __builtin_trap();  // NormaliseTarPath must have refused it
    }
    if (i % 2 == 0) {
      for (;;) {
        auto n = reader.ReadContent(buf, sizeof(buf));
        if (!n.ok() || *n == 0) break;
      }
    }
  }
  return 0;
}
