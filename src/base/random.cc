#include "base/random.h"

#include <sys/random.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace fulcrum::base {
namespace {

void Fill(unsigned char* buf, std::size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(buf, n, 0);
    if (got < 0) continue;  // EINTR; getrandom does not fail otherwise once the pool is ready
    buf += got;
    n -= static_cast<std::size_t>(got);
  }
}

}  // namespace

std::string NewUuid() {
  unsigned char b[16];
  Fill(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

std::string RandomHex(int n) {
  std::string bytes(static_cast<std::size_t>(n), '\0');
  Fill(reinterpret_cast<unsigned char*>(bytes.data()), bytes.size());
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string RandomSuffix(int n) {
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  constexpr int kSize = sizeof kAlphabet - 1;
  std::string out;
  while (static_cast<int>(out.size()) < n) {
    unsigned char c;
    Fill(&c, 1);
    if (c >= 256 / kSize * kSize) continue;  // reject to keep the draw uniform
    out.push_back(kAlphabet[c % kSize]);
  }
  return out;
}

}  // namespace fulcrum::base
