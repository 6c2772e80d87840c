// libFuzzer target for the pod server's WebSocket frame decoder (RFC 6455; bytes from the API
// server's relay of a client's exec session).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/pod_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fulcrum::agent::websocket::Decoder decoder(4096);
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // In two pieces, so that a frame split across reads is decoded too.
  decoder.Feed(bytes.substr(0, size / 2));
  for (std::string_view piece : {std::string_view(), bytes.substr(size / 2)}) {
    decoder.Feed(piece);
    fulcrum::agent::websocket::Opcode op;
    std::string payload;
    for (;;) {
      auto next = decoder.Next(&op, &payload);
      if (!next.ok() || !*next) break;
      if (payload.size() > 4096 || payload.size() > size) __builtin_trap();
    }
  }
  return 0;
}
