// libFuzzer target for the SPDY/3.1 frame reader and header block decompressor (bytes from a
// kubectl before 1.30, through the API server).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/spdy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  fulcrum::agent::spdy::FrameReader reader(1 << 16);
  fulcrum::agent::spdy::HeaderDecompressor decompressor;
  reader.Feed(bytes);
  fulcrum::agent::spdy::Frame frame;
  for (;;) {
    auto next = reader.Next(&frame);
    if (!next.ok() || !*next) break;
    if (frame.payload.size() > size) __builtin_trap();
    if (frame.control && frame.payload.size() >= 10) {
      (void)decompressor.Decompress(std::string_view(frame.payload).substr(10));
    }
  }
  // The whole input as one header block too.
  fulcrum::agent::spdy::HeaderDecompressor raw;
  (void)raw.Decompress(bytes);
  return 0;
}
