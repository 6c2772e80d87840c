// POSIX.1-2001 pax / ustar archives (IEEE Std 1003.1 "pax" format), with the GNU 'L'/'K' long
// name extensions, read from untrusted input; and a minimal writer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace fulcrum::agent {

// A stream of bytes. Read returns the number of bytes read (0 only at the end of the stream).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual base::Result<size_t> Read(char* buf, size_t n) = 0;
};

// Reads a file descriptor it owns (closed on destruction). `name` appears in error messages.
std::unique_ptr<ByteSource> NewFdSource(int fd, std::string name);
// Opens `path` for reading. NotFound if it does not exist.
base::Result<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path);
// Reads bytes held in memory; `data` must outlive the source.
std::unique_ptr<ByteSource> NewStringSource(const std::string* data);
// Returns `inner` unchanged, or wrapped in a gzip decompressor when its first bytes are the gzip
// magic (1f 8b). A corrupt or truncated gzip stream is a BadRequest from Read.
std::unique_ptr<ByteSource> MaybeDecompress(std::unique_ptr<ByteSource> inner);

enum class TarType { kFile, kDirectory, kSymlink, kHardlink, kCharDevice, kBlockDevice, kFifo };

struct TarEntry {
  // Relative, normalised: no leading "/" or "./", no "." or ".." components, no trailing "/".
  // "" is the archive's root directory ("./").
  std::string path;
  TarType type = TarType::kFile;
  uint32_t mode = 0;  // permission bits only (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;         // content bytes; 0 for everything but files
  std::string link_target;   // symlink: verbatim; hardlink: normalised like `path`
  uint32_t dev_major = 0, dev_minor = 0;
};

// Normalises an archive member name as TarEntry::path describes. Invalid for absolute names,
// ".." components and NUL bytes; the message names the path.
base::Result<std::string> NormaliseTarPath(const std::string& name);

// Reads entries one at a time from an uncompressed tar stream (wrap the source with
// MaybeDecompress first for .tar.gz). Every header's checksum is verified and every length field
// bounds-checked; a malformed archive is a BadRequest naming the entry and the fault, a stream
// that ends inside an entry is a BadRequest saying "truncated". Not thread-safe.
class TarReader {
 public:
  explicit TarReader(ByteSource* source) : source_(source) {}  // not owned

  // Advances to the next entry, skipping whatever is left of the current one's content.
  // Returns false at the end of the archive.
  base::Result<bool> Next(TarEntry* entry);
  // Reads up to `n` bytes of the current entry's content; 0 once it is all read.
  base::Result<size_t> ReadContent(char* buf, size_t n);
  // Reads the rest of the current entry's content, refusing more than `limit` bytes.
  base::Result<std::string> ReadAll(size_t limit);
  // Bytes of the underlying stream consumed so far.
  uint64_t offset() const { return offset_; }

 private:
  base::Status ReadExact(char* buf, size_t n, const char* what);
  base::Status Skip(uint64_t n);
  base::Result<std::string> ReadSpecial(uint64_t size, uint64_t limit, const std::string& what);

  ByteSource* source_;
  uint64_t offset_ = 0;
  uint64_t remaining_ = 0;  // content bytes of the current entry not yet read
  uint64_t padding_ = 0;    // padding after the current entry's content
  std::string current_;     // path of the current entry, for messages
  std::map<std::string, std::string> global_pax_;
  bool done_ = false;
};

struct ExtractOptions {
  // Convert OCI whiteouts (".wh.NAME", ".wh..wh..opq") into overlayfs whiteouts (a 0/0 character
  // device; the trusted.overlay.opaque=y xattr). Needs CAP_MKNOD and CAP_SYS_ADMIN.
  bool overlay_whiteouts = false;
  // Apply the archive's uid/gid (only possible as root; otherwise files belong to the caller).
  bool preserve_owner = true;
};

// Extracts every entry read from `reader` below the existing directory `root`. Never writes
// outside `root`: no parent component of any path may be a symlink (the archive is refused, not
// followed), hard links must name an entry already extracted, and the final component is replaced,
// never written through. Returns BadRequest for a bad archive, Internal for a failed syscall.
base::Status ExtractTar(TarReader* reader, const std::string& root, const ExtractOptions& options);

// Writes ustar archives (with a pax 'x' header for names or link targets too long for ustar) into
// a string. For building images and tests; does not validate names.
class TarWriter {
 public:
  explicit TarWriter(std::string* out) : out_(out) {}  // not owned

  void AddFile(const std::string& path, const std::string& content, uint32_t mode = 0644,
               int64_t mtime = 0);
  void AddDirectory(const std::string& path, uint32_t mode = 0755, int64_t mtime = 0);
  void AddSymlink(const std::string& path, const std::string& target, int64_t mtime = 0);
  void AddHardlink(const std::string& path, const std::string& target);
  void AddCharDevice(const std::string& path, uint32_t major, uint32_t minor, uint32_t mode = 0);
  void AddFifo(const std::string& path, uint32_t mode = 0644);
  // Owner for the entries added after this call.
  void SetOwner(uint32_t uid, uint32_t gid) {
    uid_ = uid;
    gid_ = gid;
  }
  // Two zero blocks: the end-of-archive marker.
  void Finish();

 private:
  void AddEntry(const std::string& path, char type, uint32_t mode, const std::string& link,
                const std::string& content, int64_t mtime, uint32_t major = 0, uint32_t minor = 0);
  void AddHeader(const std::string& name, char type, uint32_t mode, const std::string& link,
                 uint64_t size, int64_t mtime, uint32_t major, uint32_t minor);
  void AddContent(const std::string& content);

  std::string* out_;
  uint32_t uid_ = 0, gid_ = 0;
};

}  // namespace fulcrum::agent
