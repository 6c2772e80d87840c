// SPDY/3.1 framing (SPDY Protocol Draft 3.1: frames §2.2, header blocks §2.6.10 compressed with
// zlib and the draft's dictionary), the subset Kubernetes' streaming (moby/spdystream) uses:
// kubectl before 1.30 runs exec, attach and port-forward over it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace fulcrum::agent::spdy {

enum ControlType : uint16_t {
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};
inline constexpr uint8_t kFlagFin = 0x01;

struct Frame {
  bool control = false;
  uint16_t type = 0;        // a control frame's ControlType
  uint8_t flags = 0;
  uint32_t stream_id = 0;   // data frames, and control frames that name a stream (31 bits)
  std::string payload;      // after the 8-byte frame header
};

// Splits a byte stream into frames. Bounds-checked: a frame longer than `max_frame` bytes, or a
// control frame of another version than 3, is an error. Thread-compatible.
class FrameReader {
 public:
  explicit FrameReader(std::size_t max_frame = 1 << 20) : max_frame_(max_frame) {}
  void Feed(std::string_view bytes) { buffer_.append(bytes); }
  // True with *frame set; false when more bytes are needed; BadRequest for a protocol error.
  base::Result<bool> Next(Frame* frame);

 private:
  const std::size_t max_frame_;
  std::string buffer_;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// One direction's header compression: a zlib stream primed with the dictionary, flushed after
// each block (the state carries over between blocks). Thread-compatible.
class HeaderCompressor {
 public:
  HeaderCompressor();
  ~HeaderCompressor();
  std::string Compress(const Headers& headers);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class HeaderDecompressor {
 public:
  HeaderDecompressor();
  ~HeaderDecompressor();
  // The name/value pairs of one block. BadRequest for bad zlib data or a block whose counts or
  // lengths run past its end.
  base::Result<Headers> Decompress(std::string_view block);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string DataFrame(uint32_t stream_id, std::string_view data, bool fin);
std::string ControlFrame(ControlType type, uint8_t flags, std::string_view payload);
// SYN_STREAM (client side; for tests) and SYN_REPLY with a compressed header block.
std::string SynStream(uint32_t stream_id, std::string_view compressed_headers, bool fin);
std::string SynReply(uint32_t stream_id, std::string_view compressed_headers, bool fin);
std::string Ping(uint32_t id);

// The stream a control frame's payload names (its first 31 bits), 0 if too short.
uint32_t StreamOf(const Frame& frame);

}  // namespace fulcrum::agent::spdy
