// Base64, RFC 4648 §4 (standard alphabet, padded).
#include "base/base64.h"

namespace fulcrum::base {

bool Base64Decode(std::string_view in, std::string* out, std::size_t* bad_offset) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out->clear();
  int quad[4];
  int n = 0;
  size_t pad_at = std::string_view::npos;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\r' || c == '\n') continue;
    if (pad_at != std::string_view::npos) {
      if (c != '=' || n == 0) {
        *bad_offset = i;
        return false;
      }
      quad[n++] = 0;
      if (n == 4) n = 0;
      continue;
    }
    if (c == '=') {
      if (n < 2) {
        *bad_offset = i;
        return false;
      }
      pad_at = i;
      int pads_needed = 4 - n;
      quad[n++] = 0;
      if (n == 4) n = 0;
      if (pads_needed == 1) {
        out->push_back(static_cast<char>((quad[0] << 2) | (quad[1] >> 4)));
        out->push_back(static_cast<char>(((quad[1] & 15) << 4) | (quad[2] >> 2)));
      } else {
        out->push_back(static_cast<char>((quad[0] << 2) | (quad[1] >> 4)));
      }
      continue;
    }
    int v = value(c);
    if (v < 0) {
      *bad_offset = i;
      return false;
    }
    quad[n++] = v;
    if (n == 4) {
      out->push_back(static_cast<char>((quad[0] << 2) | (quad[1] >> 4)));
      out->push_back(static_cast<char>(((quad[1] & 15) << 4) | (quad[2] >> 2)));
      out->push_back(static_cast<char>(((quad[2] & 3) << 6) | quad[3]));
      n = 0;
    }
  }
  if (n != 0) {
    *bad_offset = in.size();
    return false;
  }
  return true;
}

std::string Base64Encode(std::string_view in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace fulcrum::base
