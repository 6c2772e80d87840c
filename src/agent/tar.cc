// POSIX.1-2001 pax / ustar archives with the GNU long name extensions; gzip via zlib (RFC 1952).
#include "agent/tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fulcrum::agent {

using base::BadRequest;
using base::Internal;
using base::Result;
using base::Status;

namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kMaxEntrySize = uint64_t{1} << 40;  // 1 TiB: larger is a corrupt header
constexpr uint64_t kMaxLongName = 64 * 1024;
constexpr uint64_t kMaxPaxHeader = 1024 * 1024;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// ---- sources ----

class FdSource : public ByteSource {
 public:
  FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  ~FdSource() override { ::close(fd_); }
  Result<size_t> Read(char* buf, size_t n) override {
    for (;;) {
      ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return Internal(Errno("reading " + name_));
    }
  }

 private:
  int fd_;
  std::string name_;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(const std::string* data) : data_(data) {}
  Result<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min(n, data_->size() - pos_);
    std::memcpy(buf, data_->data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  const std::string* data_;
  size_t pos_ = 0;
};

// Replays bytes already read from `inner`, then reads on.
class PrefixSource : public ByteSource {
 public:
  PrefixSource(std::string prefix, std::unique_ptr<ByteSource> inner)
      : prefix_(std::move(prefix)), inner_(std::move(inner)) {}
  Result<size_t> Read(char* buf, size_t n) override {
    if (pos_ < prefix_.size()) {
      size_t k = std::min(n, prefix_.size() - pos_);
      std::memcpy(buf, prefix_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    return inner_->Read(buf, n);
  }

 private:
  std::string prefix_;
  size_t pos_ = 0;
  std::unique_ptr<ByteSource> inner_;
};

class GzipSource : public ByteSource {
 public:
  explicit GzipSource(std::unique_ptr<ByteSource> inner) : inner_(std::move(inner)) {
    std::memset(&z_, 0, sizeof(z_));
    ok_ = inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK;
  }
  ~GzipSource() override {
    if (ok_) inflateEnd(&z_);
  }
  Result<size_t> Read(char* buf, size_t n) override {
    if (!ok_) return Internal("gzip: inflateInit2 failed");
    if (n == 0 || finished_) return size_t{0};
    z_.next_out = reinterpret_cast<Bytef*>(buf);
    z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1 << 30));
    while (z_.avail_out == static_cast<uInt>(std::min<size_t>(n, 1 << 30))) {
      if (z_.avail_in == 0 && !eof_) {
        ASSIGN_OR_RETURN(size_t got, inner_->Read(in_, sizeof(in_)));
        if (got == 0) eof_ = true;
        z_.next_in = reinterpret_cast<Bytef*>(in_);
        z_.avail_in = static_cast<uInt>(got);
      }
      if (z_.avail_in == 0 && eof_) {
        if (member_started_) return BadRequest("truncated gzip stream");
        finished_ = true;
        break;
      }
      member_started_ = true;
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow (RFC 1952 §2.2).
        member_started_ = false;
        inflateReset(&z_);
        continue;
      }
      if (rc == Z_BUF_ERROR) continue;  // needs more input
      if (rc != Z_OK) {
        return BadRequest(std::string("corrupt gzip stream: ") + (z_.msg ? z_.msg : "inflate error"));
      }
    }
    return static_cast<size_t>(std::min<size_t>(n, 1 << 30) - z_.avail_out);
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  z_stream z_;
  bool ok_ = false;
  bool eof_ = false;
  bool finished_ = false;
  bool member_started_ = false;
  char in_[64 * 1024];
};

// ---- header fields ----

std::string FieldString(const char* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len] != '\0') ++len;
  return std::string(p, len);
}

// An octal field (NUL/space terminated, leading spaces allowed) or a GNU base-256 one.
bool ParseNumber(const char* p, size_t n, uint64_t* out) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  if (u[0] & 0x80) {
    if (u[0] & 0x40) return false;  // negative
    uint64_t v = u[0] & 0x3f;
    for (size_t i = 1; i < n; ++i) {
      if (v > (UINT64_MAX >> 8)) return false;
      v = (v << 8) | u[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  uint64_t v = 0;
  bool any = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v > (UINT64_MAX >> 3)) return false;
    v = (v << 3) | static_cast<uint64_t>(p[i] - '0');
    any = true;
  }
  for (; i < n; ++i) {
    if (p[i] != ' ' && p[i] != '\0') return false;
  }
  *out = any ? v : 0;
  return true;
}

bool IsZeroBlock(const char* b) {
  for (size_t i = 0; i < kBlock; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

bool ChecksumOk(const char* b, uint64_t stored) {
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    char c = (i >= 148 && i < 156) ? ' ' : b[i];
    unsigned_sum += static_cast<unsigned char>(c);
    signed_sum += static_cast<signed char>(c);
  }
  return stored == unsigned_sum || static_cast<int64_t>(stored) == signed_sum;
}

// Parses pax extended header records "LEN key=value\n" (LEN counts the whole record).
Status ParsePax(const std::string& data, std::map<std::string, std::string>* out) {
  size_t pos = 0;
  while (pos < data.size()) {
    if (data[pos] == '\0') break;  // some writers pad with NULs
    size_t space = data.find(' ', pos);
    if (space == std::string::npos || space == pos || space - pos > 20) {
      return BadRequest("malformed pax record at offset " + std::to_string(pos));
    }
    uint64_t len = 0;
    for (size_t i = pos; i < space; ++i) {
      if (data[i] < '0' || data[i] > '9') return BadRequest("malformed pax record length");
      len = len * 10 + static_cast<uint64_t>(data[i] - '0');
    }
    if (len <= space - pos + 1 || len > data.size() - pos || data[pos + len - 1] != '\n') {
      return BadRequest("pax record length " + std::to_string(len) + " out of bounds");
    }
    std::string record = data.substr(space + 1, pos + len - 1 - (space + 1));
    size_t eq = record.find('=');
    if (eq == std::string::npos || eq == 0) return BadRequest("pax record without key=value");
    (*out)[record.substr(0, eq)] = record.substr(eq + 1);
    pos += len;
  }
  return Status::Ok();
}

bool ParseDecimal(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::unique_ptr<ByteSource> NewFdSource(int fd, std::string name) {
  return std::make_unique<FdSource>(fd, std::move(name));
}

Result<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return base::NotFound(path + ": no such file");
    return Internal(Errno("opening " + path));
  }
  return NewFdSource(fd, path);
}

std::unique_ptr<ByteSource> NewStringSource(const std::string* data) {
  return std::make_unique<StringSource>(data);
}

std::unique_ptr<ByteSource> MaybeDecompress(std::unique_ptr<ByteSource> inner) {
  std::string head(2, '\0');
  size_t got = 0;
  while (got < 2) {
    auto r = inner->Read(head.data() + got, 2 - got);
    if (!r.ok() || *r == 0) break;
    got += *r;
  }
  head.resize(got);
  bool gzip = got == 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
              static_cast<unsigned char>(head[1]) == 0x8b;
  auto replay = std::make_unique<PrefixSource>(std::move(head), std::move(inner));
  if (gzip) return std::make_unique<GzipSource>(std::move(replay));
  return replay;
}

Result<std::string> NormaliseTarPath(const std::string& name) {
  if (name.find('\0') != std::string::npos) return BadRequest("path contains a NUL byte");
  if (!name.empty() && name[0] == '/') return base::Invalid("absolute path \"" + name + "\"");
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string::npos) slash = name.size();
    std::string part = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return base::Invalid("path \"" + name + "\" has a \"..\" component");
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

// ---- reader ----

Status TarReader::ReadExact(char* buf, size_t n, const char* what) {
  size_t got = 0;
  while (got < n) {
    auto r = source_->Read(buf + got, n - got);
    if (!r.ok()) return r.status();
    if (*r == 0) {
      return BadRequest(std::string("truncated archive: stream ends in ") + what +
                        (current_.empty() ? "" : " of \"" + current_ + "\"") + " at offset " +
                        std::to_string(offset_ + got));
    }
    got += *r;
  }
  offset_ += n;
  return Status::Ok();
}

Status TarReader::Skip(uint64_t n) {
  char buf[16 * 1024];
  while (n > 0) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof(buf)));
    RETURN_IF_ERROR(ReadExact(buf, k, "the content"));
    n -= k;
  }
  return Status::Ok();
}

Result<std::string> TarReader::ReadSpecial(uint64_t size, uint64_t limit, const std::string& what) {
  if (size > limit) {
    return BadRequest(what + " of " + std::to_string(size) + " bytes exceeds the limit of " +
                      std::to_string(limit));
  }
  std::string data(static_cast<size_t>(size), '\0');
  RETURN_IF_ERROR(ReadExact(data.data(), data.size(), what.c_str()));
  RETURN_IF_ERROR(Skip((kBlock - size % kBlock) % kBlock));
  return data;
}

Result<bool> TarReader::Next(TarEntry* entry) {
  if (done_) return false;
  RETURN_IF_ERROR(Skip(remaining_ + padding_));
  remaining_ = padding_ = 0;

  std::string long_name, long_link;
  bool have_long_name = false, have_long_link = false;
  std::map<std::string, std::string> pax = global_pax_;
  bool have_pax = false;
  for (int special = 0;; ++special) {
    if (special > 16) return BadRequest("too many extension headers before one entry");
    char h[kBlock];
    // End of stream at a block boundary ends the archive (as Go's archive/tar accepts).
    size_t got = 0;
    while (got < kBlock) {
      ASSIGN_OR_RETURN(size_t n, source_->Read(h + got, kBlock - got));
      if (n == 0) break;
      got += n;
    }
    if (got == 0 && special == 0) {
      done_ = true;
      return false;
    }
    if (got < kBlock) {
      return BadRequest("truncated archive: stream ends inside a header at offset " +
                        std::to_string(offset_ + got));
    }
    offset_ += kBlock;
    uint64_t header_offset = offset_ - kBlock;
    if (IsZeroBlock(h)) {
      if (special > 0) return BadRequest("end-of-archive marker after an extension header");
      done_ = true;  // the second zero block and any record padding are not read
      return false;
    }
    uint64_t stored_sum = 0;
    if (!ParseNumber(h + 148, 8, &stored_sum) || !ChecksumOk(h, stored_sum)) {
      return BadRequest("bad header checksum at offset " + std::to_string(header_offset) +
                        " (entry \"" + FieldString(h, 100) + "\")");
    }
    char type = h[156];
    uint64_t size = 0;
    if (!ParseNumber(h + 124, 12, &size) || size > kMaxEntrySize) {
      return BadRequest("bad size field at offset " + std::to_string(header_offset));
    }
    if (type == 'L') {
      ASSIGN_OR_RETURN(long_name, ReadSpecial(size, kMaxLongName, "GNU long name"));
      long_name = FieldString(long_name.data(), long_name.size());
      have_long_name = true;
      continue;
    }
    if (type == 'K') {
      ASSIGN_OR_RETURN(long_link, ReadSpecial(size, kMaxLongName, "GNU long link name"));
      long_link = FieldString(long_link.data(), long_link.size());
      have_long_link = true;
      continue;
    }
    if (type == 'x' || type == 'g') {
      ASSIGN_OR_RETURN(std::string data, ReadSpecial(size, kMaxPaxHeader, "pax header"));
      if (type == 'g') {
        RETURN_IF_ERROR(ParsePax(data, &global_pax_));
        for (const auto& [k, v] : global_pax_) pax[k] = v;
      } else {
        RETURN_IF_ERROR(ParsePax(data, &pax));
        have_pax = true;
      }
      continue;
    }

    std::string name = FieldString(h, 100);
    std::string link = FieldString(h + 157, 100);
    bool posix = std::memcmp(h + 257, "ustar\0", 6) == 0;
    if (posix && h[345] != '\0') name = FieldString(h + 345, 155) + "/" + name;
    if (have_long_name) name = long_name;
    if (have_long_link) link = long_link;
    (void)have_pax;
    if (auto it = pax.find("path"); it != pax.end()) name = it->second;
    if (auto it = pax.find("linkpath"); it != pax.end()) link = it->second;
    if (auto it = pax.find("size"); it != pax.end()) {
      if (!ParseDecimal(it->second, &size) || size > kMaxEntrySize) {
        return BadRequest("bad pax size \"" + it->second + "\" for \"" + name + "\"");
      }
    }
    uint64_t mode = 0, uid = 0, gid = 0, mtime = 0, major = 0, minor = 0;
    if (!ParseNumber(h + 100, 8, &mode) || !ParseNumber(h + 108, 8, &uid) ||
        !ParseNumber(h + 116, 8, &gid) || !ParseNumber(h + 136, 12, &mtime)) {
      return BadRequest("bad numeric field in the header of \"" + name + "\"");
    }
    if (auto it = pax.find("uid"); it != pax.end()) ParseDecimal(it->second, &uid);
    if (auto it = pax.find("gid"); it != pax.end()) ParseDecimal(it->second, &gid);
    if (type == '3' || type == '4') {
      if (!ParseNumber(h + 329, 8, &major) || !ParseNumber(h + 337, 8, &minor) ||
          major > 0xfff || minor > 0xfffff) {
        return BadRequest("bad device number for \"" + name + "\"");
      }
    }
    if (uid > UINT32_MAX || gid > UINT32_MAX) {
      return BadRequest("uid/gid out of range for \"" + name + "\"");
    }

    TarEntry e;
    switch (type) {
      case '0': case '\0': case '7': e.type = TarType::kFile; break;
      case '1': e.type = TarType::kHardlink; break;
      case '2': e.type = TarType::kSymlink; break;
      case '3': e.type = TarType::kCharDevice; break;
      case '4': e.type = TarType::kBlockDevice; break;
      case '5': e.type = TarType::kDirectory; break;
      case '6': e.type = TarType::kFifo; break;
      default:
        return BadRequest(std::string("unsupported entry type '") +
                          (type >= 32 && type < 127 ? std::string(1, type) : "\\x" + std::to_string(static_cast<unsigned char>(type))) +
                          "' for \"" + name + "\"");
    }
    // Old archives mark directories by a trailing slash on a regular-file entry.
    if (e.type == TarType::kFile && !name.empty() && name.back() == '/') {
      e.type = TarType::kDirectory;
    }
    auto path = NormaliseTarPath(name);
    if (!path.ok()) return BadRequest("unsafe entry: " + path.status().message());
    e.path = std::move(*path);
    if (e.type == TarType::kHardlink) {
      auto target = NormaliseTarPath(link);
      if (!target.ok()) {
        return BadRequest("unsafe hard link \"" + e.path + "\": " + target.status().message());
      }
      if (target->empty()) return BadRequest("hard link \"" + e.path + "\" to the root");
      e.link_target = std::move(*target);
    } else if (e.type == TarType::kSymlink) {
      if (link.empty()) return BadRequest("symlink \"" + e.path + "\" has no target");
      if (link.find('\0') != std::string::npos) return BadRequest("symlink target with NUL");
      e.link_target = link;
    }
    if (e.path.empty() && e.type != TarType::kDirectory) {
      return BadRequest("entry \"" + name + "\" names the archive root but is not a directory");
    }
    e.mode = static_cast<uint32_t>(mode & 07777);
    e.uid = static_cast<uint32_t>(uid);
    e.gid = static_cast<uint32_t>(gid);
    e.mtime = static_cast<int64_t>(std::min<uint64_t>(mtime, INT64_MAX));
    e.dev_major = static_cast<uint32_t>(major);
    e.dev_minor = static_cast<uint32_t>(minor);
    // Only regular files carry content; a size on anything else is still skipped correctly.
    e.size = e.type == TarType::kFile ? size : 0;
    remaining_ = size;
    padding_ = (kBlock - size % kBlock) % kBlock;
    current_ = e.path;
    *entry = std::move(e);
    return true;
  }
}

Result<size_t> TarReader::ReadContent(char* buf, size_t n) {
  size_t k = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
  if (k == 0) return size_t{0};
  RETURN_IF_ERROR(ReadExact(buf, k, "the content"));
  remaining_ -= k;
  return k;
}

Result<std::string> TarReader::ReadAll(size_t limit) {
  if (remaining_ > limit) {
    return BadRequest("\"" + current_ + "\" is " + std::to_string(remaining_) +
                      " bytes, more than the limit of " + std::to_string(limit));
  }
  std::string data(static_cast<size_t>(remaining_), '\0');
  RETURN_IF_ERROR(ReadExact(data.data(), data.size(), "the content"));
  remaining_ = 0;
  return data;
}

// ---- extraction ----

namespace {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// Splits a normalised path into its parent components and final name.
void SplitPath(const std::string& path, std::vector<std::string>* parents, std::string* name) {
  size_t pos = 0;
  for (;;) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) {
      *name = path.substr(pos);
      return;
    }
    parents->push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
}

class Extractor {
 public:
  Extractor(int root_fd, std::string root, const ExtractOptions& options)
      : root_fd_(root_fd), root_(std::move(root)), options_(options),
        as_root_(::geteuid() == 0) {}

  // Opens the parent directory of `path` without following any symlink, creating missing
  // directories when `create` is set. *name receives the final component.
  Result<Fd> OpenParent(const std::string& path, bool create, std::string* name) {
    std::vector<std::string> parents;
    SplitPath(path, &parents, name);
    Fd dir(::fcntl(root_fd_, F_DUPFD_CLOEXEC, 0));
    if (dir.get() < 0) return Internal(Errno("dup"));
    std::string walked;
    for (const auto& part : parents) {
      walked += (walked.empty() ? "" : "/") + part;
      int fd = ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
          return Internal(Errno("creating " + root_ + "/" + walked));
        }
        fd = ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
          return BadRequest("entry \"" + path + "\" leads through \"" + walked +
                            "\", which is a symlink or not a directory");
        }
        return Internal(Errno("opening " + root_ + "/" + walked));
      }
      dir = Fd(fd);
    }
    return dir;
  }

  // Removes whatever is at dir/name unless it is a directory and `keep_dir` is set.
  Status Clear(int dir, const std::string& name, bool keep_dir, bool* kept_dir) {
    *kept_dir = false;
    struct stat st;
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return Internal(Errno("stat " + name));
    }
    if (S_ISDIR(st.st_mode)) {
      if (keep_dir) {
        *kept_dir = true;
        return Status::Ok();
      }
      std::error_code ec;
      std::filesystem::remove_all("/proc/self/fd/" + std::to_string(dir) + "/" + name, ec);
      if (ec) return Internal("removing directory " + name + ": " + ec.message());
      return Status::Ok();
    }
    if (::unlinkat(dir, name.c_str(), 0) != 0) return Internal(Errno("removing " + name));
    return Status::Ok();
  }

  Status Owner(int dir, const std::string& name, const TarEntry& e) {
    if (!options_.preserve_owner || !as_root_) return Status::Ok();
    if (::fchownat(dir, name.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return Internal(Errno("chown " + e.path));
    }
    return Status::Ok();
  }

  Status Times(int dir, const std::string& name, int64_t mtime) {
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(mtime);
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    ::utimensat(dir, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);  // best effort
    return Status::Ok();
  }

  Status Whiteout(const TarEntry& e, int dir, const std::string& name) {
    if (name == ".wh..wh..opq") {
      // The parent itself is the opaque directory: dir is already open on it.
      if (::fsetxattr(dir, "trusted.overlay.opaque", "y", 1, 0) != 0) {
        return Internal(Errno("setting trusted.overlay.opaque on the parent of " + e.path));
      }
      return Status::Ok();
    }
    std::string hidden = name.substr(4);
    if (hidden.empty() || hidden == "." || hidden == "..") {
      return BadRequest("bad whiteout \"" + e.path + "\"");
    }
    bool kept;
    RETURN_IF_ERROR(Clear(dir, hidden, false, &kept));
    if (::mknodat(dir, hidden.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
      return Internal(Errno("creating whiteout for " + e.path));
    }
    return Status::Ok();
  }

  Status Extract(TarReader* reader, const TarEntry& e) {
    if (e.path.empty()) {  // the root itself: only its mode
      dir_modes_.push_back(e);
      return Status::Ok();
    }
    std::string name;
    ASSIGN_OR_RETURN(Fd dir, OpenParent(e.path, true, &name));
    if (options_.overlay_whiteouts && name.rfind(".wh.", 0) == 0) return Whiteout(e, dir.get(), name);
    bool kept_dir = false;
    RETURN_IF_ERROR(Clear(dir.get(), name, e.type == TarType::kDirectory, &kept_dir));
    const char* n = name.c_str();
    switch (e.type) {
      case TarType::kDirectory:
        if (!kept_dir && ::mkdirat(dir.get(), n, 0700) != 0) {
          return Internal(Errno("creating directory " + e.path));
        }
        RETURN_IF_ERROR(Owner(dir.get(), name, e));
        dir_modes_.push_back(e);  // mode and mtime last, so that a 0555 directory can be filled
        return Status::Ok();
      case TarType::kFile: {
        Fd f(::openat(dir.get(), n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (f.get() < 0) return Internal(Errno("creating " + e.path));
        char buf[64 * 1024];
        for (;;) {
          ASSIGN_OR_RETURN(size_t k, reader->ReadContent(buf, sizeof(buf)));
          if (k == 0) break;
          for (size_t off = 0; off < k;) {
            ssize_t w = ::write(f.get(), buf + off, k - off);
            if (w < 0) {
              if (errno == EINTR) continue;
              return Internal(Errno("writing " + e.path));
            }
            off += static_cast<size_t>(w);
          }
        }
        RETURN_IF_ERROR(Owner(dir.get(), name, e));
        if (::fchmod(f.get(), e.mode) != 0) return Internal(Errno("chmod " + e.path));
        return Times(dir.get(), name, e.mtime);
      }
      case TarType::kSymlink:
        if (::symlinkat(e.link_target.c_str(), dir.get(), n) != 0) {
          return Internal(Errno("creating symlink " + e.path));
        }
        RETURN_IF_ERROR(Owner(dir.get(), name, e));
        return Times(dir.get(), name, e.mtime);
      case TarType::kHardlink: {
        std::string target_name;
        ASSIGN_OR_RETURN(Fd target_dir, OpenParent(e.link_target, false, &target_name));
        struct stat st;
        if (::fstatat(target_dir.get(), target_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
          return BadRequest("hard link \"" + e.path + "\" names \"" + e.link_target +
                            "\", which is not in the archive before it");
        }
        if (S_ISDIR(st.st_mode)) {
          return BadRequest("hard link \"" + e.path + "\" to directory \"" + e.link_target + "\"");
        }
        if (::linkat(target_dir.get(), target_name.c_str(), dir.get(), n, 0) != 0) {
          return Internal(Errno("creating hard link " + e.path));
        }
        return Status::Ok();
      }
      case TarType::kCharDevice:
      case TarType::kBlockDevice:
      case TarType::kFifo: {
        mode_t kind = e.type == TarType::kCharDevice   ? S_IFCHR
                      : e.type == TarType::kBlockDevice ? S_IFBLK
                                                        : S_IFIFO;
        if (::mknodat(dir.get(), n, kind | (e.mode & 07777), makedev(e.dev_major, e.dev_minor)) != 0) {
          return Internal(Errno("creating device node " + e.path));
        }
        RETURN_IF_ERROR(Owner(dir.get(), name, e));
        if (::fchmodat(dir.get(), n, e.mode, 0) != 0 && errno != ENOTSUP) {
          // fchmodat follows symlinks, but dir/n was just created as a node, not a symlink.
          return Internal(Errno("chmod " + e.path));
        }
        return Times(dir.get(), name, e.mtime);
      }
    }
    return Status::Ok();
  }

  Status FinishDirectories() {
    // Deepest first, so that setting a parent's mtime is not undone by its children.
    std::stable_sort(dir_modes_.begin(), dir_modes_.end(),
                     [](const TarEntry& a, const TarEntry& b) { return a.path.size() > b.path.size(); });
    for (const auto& e : dir_modes_) {
      if (e.path.empty()) {
        ::fchmod(root_fd_, e.mode);
        continue;
      }
      std::string name;
      auto dir = OpenParent(e.path, false, &name);
      if (!dir.ok()) continue;  // replaced by a later entry
      Fd d(::openat(dir->get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (d.get() < 0) continue;
      if (::fchmod(d.get(), e.mode) != 0) return Internal(Errno("chmod " + e.path));
      RETURN_IF_ERROR(Times(dir->get(), name, e.mtime));
    }
    return Status::Ok();
  }

 private:
  int root_fd_;
  std::string root_;
  ExtractOptions options_;
  bool as_root_;
  std::vector<TarEntry> dir_modes_;
};

}  // namespace

Status ExtractTar(TarReader* reader, const std::string& root, const ExtractOptions& options) {
  Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root_fd.get() < 0) return Internal(Errno("opening " + root));
  Extractor ex(root_fd.get(), root, options);
  TarEntry e;
  for (;;) {
    ASSIGN_OR_RETURN(bool more, reader->Next(&e));
    if (!more) break;
    RETURN_IF_ERROR(ex.Extract(reader, e));
  }
  return ex.FinishDirectories();
}

// ---- writer ----

namespace {

void PutOctal(char* field, size_t n, uint64_t v) {
  // n-1 octal digits and a NUL.
  std::string digits(n - 1, '0');
  for (size_t i = n - 1; i-- > 0;) {
    digits[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  std::memcpy(field, digits.data(), n - 1);
  field[n - 1] = '\0';
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  std::string body = " " + key + "=" + value + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) ++len;
  return std::to_string(len) + body;
}

}  // namespace

void TarWriter::AddHeader(const std::string& name, char type, uint32_t mode,
                          const std::string& link, uint64_t size, int64_t mtime, uint32_t major,
                          uint32_t minor) {
  char h[kBlock];
  std::memset(h, 0, sizeof(h));
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  PutOctal(h + 100, 8, mode);
  PutOctal(h + 108, 8, uid_);
  PutOctal(h + 116, 8, gid_);
  PutOctal(h + 124, 12, size);
  PutOctal(h + 136, 12, static_cast<uint64_t>(mtime));
  h[156] = type;
  std::memcpy(h + 157, link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(h + 257, "ustar\0" "00", 8);
  PutOctal(h + 329, 8, major);
  PutOctal(h + 337, 8, minor);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  PutOctal(h + 148, 7, sum);
  h[155] = ' ';
  out_->append(h, sizeof(h));
}

void TarWriter::AddContent(const std::string& content) {
  out_->append(content);
  out_->append((kBlock - content.size() % kBlock) % kBlock, '\0');
}

void TarWriter::AddEntry(const std::string& path, char type, uint32_t mode, const std::string& link,
                         const std::string& content, int64_t mtime, uint32_t major,
                         uint32_t minor) {
  if (path.size() > 100 || link.size() > 100) {
    std::string pax;
    if (path.size() > 100) pax += PaxRecord("path", path);
    if (link.size() > 100) pax += PaxRecord("linkpath", link);
    AddHeader("PaxHeaders/" + path.substr(0, 80), 'x', 0644, "", pax.size(), mtime, 0, 0);
    AddContent(pax);
  }
  AddHeader(path, type, mode, link, content.size(), mtime, major, minor);
  AddContent(content);
}

void TarWriter::AddFile(const std::string& path, const std::string& content, uint32_t mode,
                        int64_t mtime) {
  AddEntry(path, '0', mode, "", content, mtime);
}
void TarWriter::AddDirectory(const std::string& path, uint32_t mode, int64_t mtime) {
  AddEntry(path.empty() || path.back() == '/' ? path : path + "/", '5', mode, "", "", mtime);
}
void TarWriter::AddSymlink(const std::string& path, const std::string& target, int64_t mtime) {
  AddEntry(path, '2', 0777, target, "", mtime);
}
void TarWriter::AddHardlink(const std::string& path, const std::string& target) {
  AddEntry(path, '1', 0644, target, "", 0);
}
void TarWriter::AddCharDevice(const std::string& path, uint32_t major, uint32_t minor,
                              uint32_t mode) {
  AddEntry(path, '3', mode, "", "", 0, major, minor);
}
void TarWriter::AddFifo(const std::string& path, uint32_t mode) {
  AddEntry(path, '6', mode, "", "", 0);
}
void TarWriter::Finish() { out_->append(2 * kBlock, '\0'); }

}  // namespace fulcrum::agent
