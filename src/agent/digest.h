#pragma once

#include <cstddef>
#include <string>

namespace fulcrum::agent {

// SHA-256 over data given in pieces, written as an OCI digest ("sha256:<64 hex digits>").
// Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const char* p, std::size_t n);
  // The digest of everything given so far; call once.
  std::string Digest();

 private:
  void* ctx_;  // EVP_MD_CTX, kept out of this header
};

// "sha256:<hex>" of `data`.
std::string Sha256Digest(const std::string& data);

}  // namespace fulcrum::agent
