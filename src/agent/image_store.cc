// OCI Image Format Specification v1.1 (image layout, manifest, config, layer changesets) and the
// `docker save` archive (manifest.json, config, layer tars).
#include "agent/image_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "agent/digest.h"
#include "agent/tar.h"
#include "base/file.h"

namespace fulcrum::agent {

using base::BadRequest;
using base::Internal;
using base::Invalid;
using base::Json;
using base::Result;
using base::Status;

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxJsonBlob = 4 * 1024 * 1024;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }


std::string DigestOf(const std::string& data) {
  Sha256 h;
  h.Update(data.data(), data.size());
  return h.Digest();
}

bool ValidDigest(const std::string& d) {
  if (d.size() != 7 + 64 || d.compare(0, 7, "sha256:") != 0) return false;
  return std::all_of(d.begin() + 7, d.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string Hex(const std::string& digest) { return digest.substr(7); }

// Hashes the bytes that pass through it.
class HashingSource : public ByteSource {
 public:
  explicit HashingSource(ByteSource* inner) : inner_(inner) {}
  Result<size_t> Read(char* buf, size_t n) override {
    auto r = inner_->Read(buf, n);
    if (r.ok()) hash_.Update(buf, *r);
    return r;
  }
  Sha256& hash() { return hash_; }

 private:
  ByteSource* inner_;
  Sha256 hash_;
};

// Removes a directory tree when it goes out of scope, unless released.
class TreeGuard {
 public:
  explicit TreeGuard(std::string path) : path_(std::move(path)) {}
  ~TreeGuard() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  void Release() { path_.clear(); }

 private:
  std::string path_;
};

Result<std::string> MakeTempDir(const std::string& parent, const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Internal(Errno("creating a directory in " + parent));
  return tmpl;
}

std::vector<std::string> StringList(const Json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string StringField(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

ImageConfig ParseConfig(const Json& j) {
  ImageConfig c;
  c.architecture = StringField(j, "architecture");
  c.os = StringField(j, "os");
  auto it = j.find("config");
  if (it != j.end() && it->is_object()) {
    c.entrypoint = StringList(*it, "Entrypoint");
    c.cmd = StringList(*it, "Cmd");
    c.env = StringList(*it, "Env");
    c.working_dir = StringField(*it, "WorkingDir");
    c.user = StringField(*it, "User");
  }
  return c;
}

bool ValidPathComponent(const std::string& s) {
  // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
  if (s.empty()) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (alnum(c)) continue;
    if (c == '.' || c == '_' || c == '-') {
      size_t j = i;
      while (j < s.size() && !alnum(s[j])) ++j;
      std::string sep = s.substr(i, j - i);
      bool dashes = sep.find_first_not_of('-') == std::string::npos;
      if (sep != "." && sep != "_" && sep != "__" && !dashes) return false;
      i = j - 1;
      continue;
    }
    return false;
  }
  return true;
}

bool ValidDomain(const std::string& d) {
  if (d.empty()) return false;
  for (char c : d) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' &&
        c != '[' && c != ']') {
      return false;
    }
  }
  return true;
}

bool ValidTag(const std::string& t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(t[0])) return false;
  return std::all_of(t.begin(), t.end(), [&](char c) { return word(c) || c == '.' || c == '-'; });
}

const char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
const char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
const char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
const char kDockerList[] = "application/vnd.docker.distribution.manifest.list.v2+json";

bool SupportedLayerType(const std::string& t) {
  return t.empty() || t == "application/vnd.oci.image.layer.v1.tar" ||
         t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
         t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
         t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

}  // namespace

// The import archive's regular files, copied into a staging directory with their digests.
struct StagedFile {
  std::string staged;  // path in the staging directory
  std::string digest;
  uint64_t size = 0;
};

// An image archive's files staged for import: from a tarball (Load) or fetched one by one (Add).
class StagedArchive {
 public:
  explicit StagedArchive(std::string dir) : dir_(std::move(dir)) {}

  Status Load(const std::string& path) {
    ASSIGN_OR_RETURN(auto file, OpenFileSource(path));
    auto source = MaybeDecompress(std::move(file));
    TarReader reader(source.get());
    TarEntry e;
    char buf[64 * 1024];
    for (;;) {
      auto more = reader.Next(&e);
      if (!more.ok()) return Status(more.status().code(), path + ": " + more.status().message());
      if (!*more) break;
      if (e.type == TarType::kSymlink || e.type == TarType::kHardlink) {
        links_[e.path] = e.type == TarType::kHardlink ? e.link_target
                                                      : ResolveRelative(e.path, e.link_target);
        continue;
      }
      if (e.type != TarType::kFile) continue;
      StagedFile f;
      f.staged = dir_ + "/f" + std::to_string(files_.size());
      int fd = ::open(f.staged.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return Internal(Errno("creating " + f.staged));
      Sha256 h;
      Status st;
      for (;;) {
        auto n = reader.ReadContent(buf, sizeof(buf));
        if (!n.ok()) {
          st = Status(n.status().code(), path + ": " + n.status().message());
          break;
        }
        if (*n == 0) break;
        h.Update(buf, *n);
        for (size_t off = 0; off < *n;) {
          ssize_t w = ::write(fd, buf + off, *n - off);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            st = Internal(Errno("writing " + f.staged));
            break;
          }
          off += static_cast<size_t>(w);
        }
        if (!st.ok()) break;
        f.size += *n;
      }
      ::close(fd);
      RETURN_IF_ERROR(st);
      f.digest = h.Digest();
      files_[e.path] = f;
    }
    return Status::Ok();
  }

  // Adds a file staged by other means (a pulled blob) under `path`.
  void Add(const std::string& path, StagedFile f) { files_[path] = std::move(f); }

  // The file at `path` in the archive, following links; nullptr if there is none.
  const StagedFile* Find(std::string path) const {
    for (int hops = 0; hops < 16; ++hops) {
      auto norm = NormaliseTarPath(path);
      if (!norm.ok()) return nullptr;
      if (auto it = files_.find(*norm); it != files_.end()) return &it->second;
      auto link = links_.find(*norm);
      if (link == links_.end()) return nullptr;
      path = link->second;
    }
    return nullptr;
  }

  bool Has(const std::string& path) const { return Find(path) != nullptr; }

  // Reads a small JSON document from the archive.
  Result<Json> ReadJson(const std::string& path, const std::string& what) const {
    const StagedFile* f = Find(path);
    if (f == nullptr) return BadRequest(what + ": " + path + " is not in the archive");
    if (f->size > kMaxJsonBlob) return BadRequest(what + " " + path + " is too large");
    ASSIGN_OR_RETURN(std::string text, base::ReadFile(f->staged));
    Json j;
    Status st = base::ParseJson(text, &j);
    if (!st.ok()) return BadRequest(what + " " + path + ": " + st.message());
    if (!j.is_object() && !j.is_array()) return BadRequest(what + " " + path + " is not JSON");
    return j;
  }

 private:
  static std::string ResolveRelative(const std::string& from, const std::string& target) {
    if (!target.empty() && target[0] == '/') return target.substr(1);
    size_t slash = from.rfind('/');
    std::string base = slash == std::string::npos ? "" : from.substr(0, slash + 1);
    // Collapse "dir/../x" lexically; NormaliseTarPath refuses anything left escaping the root.
    std::vector<std::string> parts;
    std::string joined = base + target;
    size_t pos = 0;
    while (pos <= joined.size()) {
      size_t s = joined.find('/', pos);
      if (s == std::string::npos) s = joined.size();
      std::string p = joined.substr(pos, s - pos);
      pos = s + 1;
      if (p.empty() || p == ".") continue;
      if (p == "..") {
        if (parts.empty()) return "../escape";
        parts.pop_back();
        continue;
      }
      parts.push_back(p);
    }
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
    return out;
  }

  std::string dir_;
  std::map<std::string, StagedFile> files_;
  std::map<std::string, std::string> links_;
};

namespace {

// One image found in the archive, before anything is committed.
struct Candidate {
  std::vector<std::string> refs;
  std::string manifest_digest;
  std::string manifest_bytes;          // the manifest blob (synthesised for docker-save)
  const StagedFile* manifest_file = nullptr;  // null when synthesised
  std::string config_digest;
  const StagedFile* config_file = nullptr;
  std::vector<std::pair<std::string, const StagedFile*>> layer_blobs;  // digest, file
  std::vector<std::string> diff_ids;
  ImageConfig config;
};

}  // namespace

std::string HostArchitecture() {
  struct utsname u;
  if (::uname(&u) != 0) return "unknown";
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64" || m == "arm64") return "arm64";
  if (m.rfind("armv", 0) == 0) return "arm";
  if (m == "i386" || m == "i686") return "386";
  if (m == "ppc64le") return "ppc64le";
  if (m == "s390x") return "s390x";
  if (m == "riscv64") return "riscv64";
  return m;
}

Result<std::string> NormaliseImageRef(const std::string& input) {
  if (input.empty()) return Invalid("empty image reference");
  if (input.size() > 512) return Invalid("image reference longer than 512 characters");
  std::string ref = input, digest, tag;
  if (auto at = ref.find('@'); at != std::string::npos) {
    digest = ref.substr(at + 1);
    ref = ref.substr(0, at);
    if (!ValidDigest(digest)) {
      return Invalid("image reference \"" + input + "\": bad digest \"" + digest + "\"");
    }
  }
  auto colon = ref.rfind(':');
  auto slash = ref.rfind('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    tag = ref.substr(colon + 1);
    ref = ref.substr(0, colon);
    if (!ValidTag(tag)) return Invalid("image reference \"" + input + "\": bad tag \"" + tag + "\"");
  }
  std::string domain = "docker.io", path = ref;
  if (auto first = ref.find('/'); first != std::string::npos) {
    std::string head = ref.substr(0, first);
    if (head.find('.') != std::string::npos || head.find(':') != std::string::npos ||
        head == "localhost" || head != [&] {
          std::string lower = head;
          for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          return lower;
        }()) {
      domain = head;
      path = ref.substr(first + 1);
    }
  }
  if (domain == "index.docker.io") domain = "docker.io";
  if (!ValidDomain(domain)) {
    return Invalid("image reference \"" + input + "\": bad registry \"" + domain + "\"");
  }
  if (domain == "docker.io" && path.find('/') == std::string::npos) path = "library/" + path;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t s = path.find('/', pos);
    if (s == std::string::npos) s = path.size();
    std::string part = path.substr(pos, s - pos);
    if (!ValidPathComponent(part)) {
      return Invalid("image reference \"" + input + "\": bad repository name component \"" +
                     part + "\" (lowercase letters, digits and separators . _ __ -)");
    }
    pos = s + 1;
  }
  std::string out = domain + "/" + path;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  if (tag.empty() && digest.empty()) out += ":latest";
  return out;
}

// flock(2) on ROOT/images/lock for the life of the object, together with the mutex.
class ImageStore::Lock {
 public:
  Lock(ImageStore* store, bool exclusive) : guard_(store->mu_) {
    fd_ = ::open((store->root_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) {
      while (::flock(fd_, exclusive ? LOCK_EX : LOCK_SH) != 0 && errno == EINTR) {
      }
    }
  }
  ~Lock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  std::lock_guard<std::mutex> guard_;
  int fd_ = -1;
};

ImageStore::ImageStore(std::string root, ImageStoreOptions options)
    : root_(std::move(root)), options_(std::move(options)) {}

std::string ImageStore::BlobPath(const std::string& digest) const {
  return root_ + "/blobs/sha256/" + Hex(digest);
}
std::string ImageStore::LayerPath(const std::string& diff_id) const {
  return root_ + "/layers/" + Hex(diff_id);
}

Result<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& root,
                                                     ImageStoreOptions options) {
  std::string images = root + "/images";
  for (const char* sub : {"/blobs/sha256", "/layers", "/tmp"}) {
    RETURN_IF_ERROR(base::MakeDirs(images + sub, 0700));
  }
  std::unique_ptr<ImageStore> store(new ImageStore(images, std::move(options)));
  {
    Lock lock(store.get(), true);
    if (!lock.ok()) return Internal(Errno("locking " + images + "/lock"));
    RETURN_IF_ERROR(store->LoadIndex());
    // Imports hold tmp.lock shared while they stage; if nobody does, tmp/ holds only leftovers.
    int tmp_lock = ::open((images + "/tmp.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (tmp_lock >= 0 && ::flock(tmp_lock, LOCK_EX | LOCK_NB) == 0) {
      std::error_code ec;
      for (const auto& d : fs::directory_iterator(images + "/tmp", ec)) fs::remove_all(d.path(), ec);
    }
    if (tmp_lock >= 0) ::close(tmp_lock);
    store->CollectAll();
  }
  return store;
}

Status ImageStore::LoadIndex() {
  index_.clear();
  auto text = base::ReadFile(root_ + "/index.json");
  if (!text.ok()) {
    if (text.status().IsNotFound()) return Status::Ok();
    return text.status();
  }
  Json j;
  Status st = base::ParseJson(*text, &j);
  if (!st.ok()) return Internal(root_ + "/index.json is corrupt: " + st.message());
  const Json* images = base::FindPath(j, {"images"});
  if (images == nullptr || !images->is_object()) return Status::Ok();
  for (const auto& [ref, v] : images->items()) {
    Entry e;
    e.manifest = StringField(v, "manifest");
    e.config = StringField(v, "config");
    if (auto s = v.find("size"); s != v.end() && s->is_number_unsigned()) e.size = s->get<uint64_t>();
    if (auto l = v.find("layers"); l != v.end() && l->is_array()) {
      for (const auto& layer : *l) {
        e.layers.push_back({StringField(layer, "blob"), StringField(layer, "diff_id")});
      }
    }
    bool valid = ValidDigest(e.manifest) && ValidDigest(e.config);
    for (const auto& l : e.layers) valid = valid && ValidDigest(l.blob) && ValidDigest(l.diff_id);
    if (!valid) return Internal(root_ + "/index.json is corrupt: bad digest in " + ref);
    index_[ref] = std::move(e);
  }
  return Status::Ok();
}

Status ImageStore::SaveIndex() {
  Json images = Json::object();
  for (const auto& [ref, e] : index_) {
    Json layers = Json::array();
    for (const auto& l : e.layers) layers.push_back({{"blob", l.blob}, {"diff_id", l.diff_id}});
    images[ref] = {{"manifest", e.manifest}, {"config", e.config}, {"layers", layers},
                   {"size", e.size}};
  }
  Json doc = {{"version", 1}, {"images", images}};
  return base::WriteFileAtomic(root_ + "/index.json", doc.dump(1) + "\n", 0600);
}

void ImageStore::Collect(const std::vector<std::string>& blobs,
                         const std::vector<std::string>& diff_ids) {
  std::set<std::string> used_blobs, used_layers;
  for (const auto& [ref, e] : index_) {
    used_blobs.insert(e.manifest);
    used_blobs.insert(e.config);
    for (const auto& l : e.layers) {
      used_blobs.insert(l.blob);
      used_layers.insert(l.diff_id);
    }
  }
  std::error_code ec;
  for (const auto& b : blobs) {
    if (!used_blobs.count(b)) fs::remove(BlobPath(b), ec);
  }
  for (const auto& d : diff_ids) {
    if (!used_layers.count(d)) fs::remove_all(LayerPath(d), ec);
  }
}

void ImageStore::CollectAll() {
  std::vector<std::string> blobs, layers;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(root_ + "/blobs/sha256", ec)) {
    blobs.push_back("sha256:" + f.path().filename().string());
  }
  for (const auto& f : fs::directory_iterator(root_ + "/layers", ec)) {
    layers.push_back("sha256:" + f.path().filename().string());
  }
  Collect(blobs, layers);
}

Result<ImageRecord> ImageStore::Record(const std::string& ref, const Entry& e) const {
  ImageRecord r;
  r.ref = ref;
  r.manifest_digest = e.manifest;
  r.config_digest = e.config;
  r.size = e.size;
  for (const auto& l : e.layers) {
    r.diff_ids.push_back(l.diff_id);
    r.layer_dirs.push_back(LayerPath(l.diff_id));
  }
  ASSIGN_OR_RETURN(std::string text, base::ReadFile(BlobPath(e.config)));
  Json j;
  Status st = base::ParseJson(text, &j);
  if (!st.ok() || !j.is_object()) {
    return Internal("config blob " + e.config + " of " + ref + " is corrupt: " + st.message());
  }
  r.config = ParseConfig(j);
  return r;
}

Result<std::vector<ImageRecord>> ImageStore::List() {
  Lock lock(this, false);
  RETURN_IF_ERROR(LoadIndex());
  std::vector<ImageRecord> out;
  for (const auto& [ref, e] : index_) {
    ASSIGN_OR_RETURN(ImageRecord r, Record(ref, e));
    out.push_back(std::move(r));
  }
  return out;
}

Result<ImageRecord> ImageStore::Resolve(const std::string& ref) {
  Lock lock(this, false);
  RETURN_IF_ERROR(LoadIndex());
  if (ValidDigest(ref)) {
    for (const auto& [name, e] : index_) {
      if (e.manifest == ref) return Record(name, e);
    }
    return base::NotFound("no image with manifest " + ref);
  }
  ASSIGN_OR_RETURN(std::string norm, NormaliseImageRef(ref));
  auto it = index_.find(norm);
  if (it == index_.end()) return base::NotFound("image " + norm + " not found");
  return Record(it->first, it->second);
}

Status ImageStore::Remove(const std::string& ref) {
  std::string norm = ref;
  if (!ValidDigest(ref)) {
    ASSIGN_OR_RETURN(norm, NormaliseImageRef(ref));
  }
  Lock lock(this, true);
  RETURN_IF_ERROR(LoadIndex());
  std::vector<std::string> names;
  for (const auto& [name, e] : index_) {
    if (name == norm || e.manifest == norm) names.push_back(name);
  }
  if (names.empty()) return base::NotFound("image " + norm + " not found");
  auto saved = index_;
  std::vector<std::string> blobs, layers;
  for (const auto& name : names) {
    const Entry& e = index_[name];
    blobs.push_back(e.manifest);
    blobs.push_back(e.config);
    for (const auto& l : e.layers) {
      blobs.push_back(l.blob);
      layers.push_back(l.diff_id);
    }
    index_.erase(name);
  }
  Status st = SaveIndex();
  if (!st.ok()) {
    index_ = std::move(saved);
    return st;
  }
  Collect(blobs, layers);
  return Status::Ok();
}

namespace {

bool IsIndex(const std::string& media_type) {
  return media_type == kOciIndex || media_type == kDockerList;
}

// The digest of the manifest for linux/`arch` in a multi-platform image index; Invalid, listing
// the platforms the index has, if there is none.
Result<std::string> PickPlatform(const Json& index, const std::string& arch, const std::string& what) {
  const Json* list = base::FindPath(index, {"manifests"});
  std::vector<std::string> platforms;
  if (list && list->is_array()) {
    for (const auto& m : *list) {
      std::string a = base::StringAt(m, {"platform", "architecture"});
      std::string o = base::StringAt(m, {"platform", "os"});
      if (a == arch && o == "linux") return StringField(m, "digest");
      platforms.push_back(o + "/" + a);
    }
  }
  std::string all;
  for (const auto& p : platforms) all += (all.empty() ? "" : ", ") + p;
  return Invalid("image " + what + " has no manifest for linux/" + arch + " (it has: " + all + ")");
}

// Reads the candidates of an OCI image layout (index.json, blobs/sha256/...).
Status FindOciImages(const StagedArchive& archive, const std::string& arch,
                     std::vector<Candidate>* out) {
  ASSIGN_OR_RETURN(Json index, archive.ReadJson("index.json", "OCI layout index"));
  const Json* manifests = base::FindPath(index, {"manifests"});
  if (manifests == nullptr || !manifests->is_array()) {
    return BadRequest("index.json has no manifests list");
  }
  auto blob = [&](const std::string& digest, const std::string& referrer) -> Result<const StagedFile*> {
    if (!ValidDigest(digest)) {
      return BadRequest(referrer + " has an unsupported or malformed digest \"" + digest + "\"");
    }
    const StagedFile* f = archive.Find("blobs/sha256/" + Hex(digest));
    if (f == nullptr) {
      return BadRequest(referrer + " references blob " + digest + ", which is missing from the archive");
    }
    if (f->digest != digest) {
      return BadRequest("digest mismatch: blob " + digest + " has content " + f->digest);
    }
    return f;
  };
  for (const auto& desc : *manifests) {
    if (!desc.is_object()) return BadRequest("index.json: a manifest descriptor is not an object");
    std::string digest = StringField(desc, "digest");
    std::string type = StringField(desc, "mediaType");
    std::string name;
    if (const Json* ann = base::FindPath(desc, {"annotations"}); ann && ann->is_object()) {
      name = StringField(*ann, "io.containerd.image.name");
      if (name.empty()) name = StringField(*ann, "org.opencontainers.image.ref.name");
    }
    ASSIGN_OR_RETURN(const StagedFile* mf, blob(digest, "index.json"));
    ASSIGN_OR_RETURN(Json manifest, archive.ReadJson("blobs/sha256/" + Hex(digest), "manifest"));
    if (type.empty()) type = StringField(manifest, "mediaType");
    if (IsIndex(type)) {
      ASSIGN_OR_RETURN(digest, PickPlatform(manifest, arch, name.empty() ? digest : name));
      ASSIGN_OR_RETURN(mf, blob(digest, "image index " + StringField(desc, "digest")));
      ASSIGN_OR_RETURN(manifest, archive.ReadJson("blobs/sha256/" + Hex(digest), "manifest"));
      type = StringField(manifest, "mediaType");
    }
    if (!type.empty() && type != kOciManifest && type != kDockerManifest) {
      return BadRequest("manifest " + digest + " has unsupported media type \"" + type + "\"");
    }
    Candidate c;
    if (!name.empty()) c.refs.push_back(name);
    c.manifest_digest = digest;
    c.manifest_file = mf;
    c.config_digest = base::StringAt(manifest, {"config", "digest"});
    ASSIGN_OR_RETURN(c.config_file, blob(c.config_digest, "manifest " + digest));
    const Json* layers = base::FindPath(manifest, {"layers"});
    if (layers == nullptr || !layers->is_array()) {
      return BadRequest("manifest " + digest + " has no layers list");
    }
    for (const auto& l : *layers) {
      std::string ld = StringField(l, "digest");
      std::string lt = StringField(l, "mediaType");
      if (!SupportedLayerType(lt)) {
        return BadRequest("layer " + ld + " of manifest " + digest + " has unsupported media type \"" +
                          lt + "\"");
      }
      ASSIGN_OR_RETURN(const StagedFile* lf, blob(ld, "manifest " + digest));
      c.layer_blobs.emplace_back(ld, lf);
    }
    out->push_back(std::move(c));
  }
  return Status::Ok();
}

// Reads the candidates of a `docker save` archive (manifest.json).
Status FindDockerImages(const StagedArchive& archive, std::vector<Candidate>* out) {
  ASSIGN_OR_RETURN(Json manifest, archive.ReadJson("manifest.json", "docker-save manifest"));
  if (!manifest.is_array()) return BadRequest("manifest.json is not a list");
  for (const auto& m : manifest) {
    if (!m.is_object()) return BadRequest("manifest.json: an entry is not an object");
    Candidate c;
    c.refs = StringList(m, "RepoTags");
    std::string config = StringField(m, "Config");
    c.config_file = archive.Find(config);
    if (c.config_file == nullptr) {
      return BadRequest("manifest.json references config \"" + config + "\", which is missing from the archive");
    }
    c.config_digest = c.config_file->digest;
    Json layers_json = Json::array();
    auto layers = m.find("Layers");
    if (layers == m.end() || !layers->is_array()) return BadRequest("manifest.json entry has no Layers");
    for (const auto& l : *layers) {
      std::string path = l.is_string() ? l.get<std::string>() : "";
      const StagedFile* f = archive.Find(path);
      if (f == nullptr) {
        return BadRequest("manifest.json references layer \"" + path + "\", which is missing from the archive");
      }
      c.layer_blobs.emplace_back(f->digest, f);
      layers_json.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                             {"digest", f->digest},
                             {"size", f->size}});
    }
    Json oci = {{"schemaVersion", 2},
                {"mediaType", kOciManifest},
                {"config",
                 {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                  {"digest", c.config_digest},
                  {"size", c.config_file->size}}},
                {"layers", layers_json}};
    c.manifest_bytes = oci.dump();
    c.manifest_digest = DigestOf(c.manifest_bytes);
    out->push_back(std::move(c));
  }
  return Status::Ok();
}

// Unpacks a layer blob into `dir`, checking that the uncompressed tar has digest `diff_id`.
Status UnpackLayer(const StagedFile& blob, const std::string& blob_digest,
                   const std::string& diff_id, const std::string& dir) {
  ASSIGN_OR_RETURN(auto file, OpenFileSource(blob.staged));
  auto plain = MaybeDecompress(std::move(file));
  HashingSource hashing(plain.get());
  TarReader reader(&hashing);
  ExtractOptions options;
  options.overlay_whiteouts = true;
  Status st = ExtractTar(&reader, dir, options);
  if (!st.ok()) return Status(st.code(), "layer " + blob_digest + ": " + st.message());
  char buf[16 * 1024];
  for (;;) {  // the rest of the stream (end-of-archive blocks, padding) counts in the diff id
    auto n = hashing.Read(buf, sizeof(buf));
    if (!n.ok()) return Status(n.status().code(), "layer " + blob_digest + ": " + n.status().message());
    if (*n == 0) break;
  }
  std::string actual = hashing.hash().Digest();
  if (actual != diff_id) {
    return BadRequest("digest mismatch: layer " + blob_digest + " unpacks to " + actual +
                      " but the config's diff_id is " + diff_id);
  }
  return Status::Ok();
}

}  // namespace

namespace {

// Held shared while an import or pull stages files in tmp/, so that Open in another process
// leaves tmp/ alone.
class StagingLock {
 public:
  explicit StagingLock(const std::string& root)
      : fd_(::open((root + "/tmp.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0 && ::flock(fd_, LOCK_SH) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~StagingLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

// Stages a fetched blob: checks its digest and size against the descriptor that named it.
Result<StagedFile> StageFetched(const std::string& path, const std::string& digest,
                                const std::string& what) {
  ASSIGN_OR_RETURN(auto file, OpenFileSource(path));
  Sha256 h;
  StagedFile f;
  f.staged = path;
  char buf[64 * 1024];
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, file->Read(buf, sizeof(buf)));
    if (n == 0) break;
    h.Update(buf, n);
    f.size += n;
  }
  f.digest = h.Digest();
  if (f.digest != digest) {
    return BadRequest("digest mismatch: " + what + " " + digest + " has content " + f.digest);
  }
  return f;
}

}  // namespace

Result<std::vector<std::string>> ImageStore::Import(const std::string& path,
                                                    const std::string& name) {
  std::string given;
  if (!name.empty()) {
    ASSIGN_OR_RETURN(given, NormaliseImageRef(name));
  }
  StagingLock staging_lock(root_);
  if (!staging_lock.ok()) return Internal(Errno("locking " + root_ + "/tmp.lock"));
  ASSIGN_OR_RETURN(std::string staging, MakeTempDir(root_ + "/tmp", "import-"));
  TreeGuard staging_guard(staging);
  StagedArchive archive(staging);
  RETURN_IF_ERROR(archive.Load(path));
  return ImportStaged(archive, path, given);
}

Result<std::string> ImageStore::Pull(const std::string& ref, ImageSource* source) {
  ASSIGN_OR_RETURN(std::string norm, NormaliseImageRef(ref));
  StagingLock staging_lock(root_);
  if (!staging_lock.ok()) return Internal(Errno("locking " + root_ + "/tmp.lock"));
  ASSIGN_OR_RETURN(std::string staging, MakeTempDir(root_ + "/tmp", "pull-"));
  TreeGuard staging_guard(staging);
  StagedArchive archive(staging);
  int serial = 0;
  auto stage = [&](const std::string& digest, const std::string& what) -> Status {
    if (!ValidDigest(digest)) {
      return BadRequest(what + " has an unsupported or malformed digest \"" + digest + "\"");
    }
    std::string blob_path = "blobs/sha256/" + Hex(digest);
    if (archive.Has(blob_path)) return Status::Ok();
    std::error_code ec;
    if (fs::exists(BlobPath(digest), ec)) {  // already here: not fetched again
      archive.Add(blob_path, {BlobPath(digest), digest, fs::file_size(BlobPath(digest), ec)});
      return Status::Ok();
    }
    std::string path = staging + "/b" + std::to_string(serial++);
    RETURN_IF_ERROR(source->Blob(digest, path));
    ASSIGN_OR_RETURN(StagedFile f, StageFetched(path, digest, what));
    archive.Add(blob_path, std::move(f));
    return Status::Ok();
  };
  // The manifest (or index) the reference names, as fetched bytes checked against a digest.
  auto manifest = [&](const std::string& reference, const std::string& want_digest,
                      std::string* digest) -> Result<Json> {
    std::string media_type;
    ASSIGN_OR_RETURN(std::string bytes, source->Manifest(reference, &media_type));
    if (bytes.size() > kMaxJsonBlob) return BadRequest("manifest " + reference + " is too large");
    *digest = DigestOf(bytes);
    if (!want_digest.empty() && *digest != want_digest) {
      return BadRequest("digest mismatch: manifest " + want_digest + " has content " + *digest);
    }
    Json j;
    Status st = base::ParseJson(bytes, &j);
    if (!st.ok() || !j.is_object()) {
      return BadRequest("manifest " + reference + " of " + norm + " is not a JSON object: " + st.message());
    }
    std::string path = staging + "/b" + std::to_string(serial++);
    RETURN_IF_ERROR(base::WriteFileAtomic(path, bytes, 0644));
    archive.Add("blobs/sha256/" + Hex(*digest), {path, *digest, bytes.size()});
    return j;
  };
  std::string reference = norm.substr(norm.rfind(':') + 1), want;
  if (auto at = norm.find('@'); at != std::string::npos) reference = want = norm.substr(at + 1);
  std::string top_digest, digest;
  ASSIGN_OR_RETURN(Json top, manifest(reference, want, &top_digest));
  Json m = top;
  digest = top_digest;
  std::string top_type = StringField(top, "mediaType");
  if (IsIndex(top_type) || (top_type.empty() && top.contains("manifests"))) {
    ASSIGN_OR_RETURN(std::string chosen, PickPlatform(top, options_.architecture, norm));
    ASSIGN_OR_RETURN(m, manifest(chosen, chosen, &digest));
  }
  RETURN_IF_ERROR(stage(base::StringAt(m, {"config", "digest"}), "config of " + norm));
  if (const Json* layers = base::FindPath(m, {"layers"}); layers && layers->is_array()) {
    for (const auto& l : *layers) {
      if (!SupportedLayerType(StringField(l, "mediaType"))) continue;  // refused by ImportStaged
      RETURN_IF_ERROR(stage(StringField(l, "digest"), "layer of " + norm));
    }
  }
  Json index = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", top_type.empty() ? std::string(kOciManifest) : top_type},
                   {"digest", top_digest},
                   {"annotations", {{"org.opencontainers.image.ref.name", norm}}}}}}};
  std::string index_path = staging + "/index.json", layout_path = staging + "/oci-layout";
  std::string index_bytes = index.dump(), layout_bytes = R"({"imageLayoutVersion":"1.0.0"})";
  RETURN_IF_ERROR(base::WriteFileAtomic(index_path, index_bytes, 0644));
  RETURN_IF_ERROR(base::WriteFileAtomic(layout_path, layout_bytes, 0644));
  archive.Add("index.json", {index_path, DigestOf(index_bytes), index_bytes.size()});
  archive.Add("oci-layout", {layout_path, DigestOf(layout_bytes), layout_bytes.size()});
  ASSIGN_OR_RETURN(auto refs, ImportStaged(archive, norm, norm));
  return refs.front();
}

Result<std::vector<std::string>> ImageStore::ImportStaged(const StagedArchive& archive,
                                                          const std::string& path,
                                                          const std::string& given) {
  std::vector<Candidate> candidates;
  if (archive.Has("manifest.json")) {
    RETURN_IF_ERROR(FindDockerImages(archive, &candidates));
  } else if (archive.Has("index.json") && archive.Has("oci-layout")) {
    RETURN_IF_ERROR(FindOciImages(archive, options_.architecture, &candidates));
  } else {
    return BadRequest(path + " is neither an OCI image layout (oci-layout, index.json) nor a docker-save archive (manifest.json)");
  }
  if (candidates.empty()) return BadRequest(path + " holds no images");
  if (!given.empty()) {
    if (candidates.size() != 1) {
      return BadRequest(path + " holds " + std::to_string(candidates.size()) +
                        " images; a name can be given only for one");
    }
    candidates[0].refs = {given};
  }

  // Validate names, configs and architectures before anything is written.
  for (auto& c : candidates) {
    if (c.refs.empty()) return BadRequest("image " + c.manifest_digest + " has no name; give one");
    for (auto& r : c.refs) {
      auto norm = NormaliseImageRef(r);
      if (!norm.ok()) return BadRequest(path + ": " + norm.status().message());
      r = *norm;
    }
    const std::string& what = c.refs[0];
    if (c.config_file->size > kMaxJsonBlob) return BadRequest("config of " + what + " is too large");
    ASSIGN_OR_RETURN(std::string text, base::ReadFile(c.config_file->staged));
    Json config;
    Status st = base::ParseJson(text, &config);
    if (!st.ok() || !config.is_object()) {
      return BadRequest("config " + c.config_digest + " of " + what + " is not a JSON object: " + st.message());
    }
    c.config = ParseConfig(config);
    if (c.config.os != "linux" || c.config.architecture != options_.architecture) {
      return Invalid("image " + what + " is for " + c.config.os + "/" + c.config.architecture +
                     ", this node is linux/" + options_.architecture);
    }
    if (const Json* ids = base::FindPath(config, {"rootfs", "diff_ids"}); ids && ids->is_array()) {
      for (const auto& d : *ids) c.diff_ids.push_back(d.is_string() ? d.get<std::string>() : "");
    }
    if (c.diff_ids.size() != c.layer_blobs.size()) {
      return BadRequest("image " + what + ": the config lists " + std::to_string(c.diff_ids.size()) +
                        " diff_ids for " + std::to_string(c.layer_blobs.size()) + " layers");
    }
    for (const auto& d : c.diff_ids) {
      if (!ValidDigest(d)) return BadRequest("image " + what + ": bad diff_id \"" + d + "\"");
    }
  }

  // Unpack every layer not yet in the store into tmp/.
  std::map<std::string, std::string> unpacked;  // diff_id -> temporary directory
  std::vector<std::unique_ptr<TreeGuard>> guards;
  for (const auto& c : candidates) {
    for (size_t i = 0; i < c.layer_blobs.size(); ++i) {
      const std::string& diff_id = c.diff_ids[i];
      if (unpacked.count(diff_id)) continue;
      std::error_code ec;
      if (fs::exists(LayerPath(diff_id), ec)) continue;
      ASSIGN_OR_RETURN(std::string dir, MakeTempDir(root_ + "/tmp", "layer-"));
      guards.push_back(std::make_unique<TreeGuard>(dir));
      ::chmod(dir.c_str(), 0755);
      RETURN_IF_ERROR(UnpackLayer(*c.layer_blobs[i].second, c.layer_blobs[i].first, diff_id, dir));
      unpacked[diff_id] = dir;
    }
  }

  // Commit: blobs and layers into place, then the index.
  Lock lock(this, true);
  if (!lock.ok()) return Internal(Errno("locking " + root_ + "/lock"));
  RETURN_IF_ERROR(LoadIndex());
  std::vector<std::string> new_blobs, new_layers;
  auto rollback = [&] {
    std::error_code ec;
    for (const auto& b : new_blobs) fs::remove(BlobPath(b), ec);
    for (const auto& l : new_layers) fs::remove_all(LayerPath(l), ec);
  };
  auto place_blob = [&](const std::string& digest, const std::string& staged,
                        const std::string* bytes) -> Status {
    std::error_code ec;
    if (fs::exists(BlobPath(digest), ec)) return Status::Ok();
    Status st = bytes ? base::WriteFileAtomic(BlobPath(digest), *bytes, 0644)
                      : (::rename(staged.c_str(), BlobPath(digest).c_str()) == 0
                             ? Status::Ok()
                             : Internal(Errno("moving blob " + digest + " into place")));
    if (st.ok()) new_blobs.push_back(digest);
    return st;
  };
  std::vector<std::string> replaced_blobs, replaced_layers, imported;
  auto saved = index_;
  for (const auto& c : candidates) {
    Status st = c.manifest_file ? place_blob(c.manifest_digest, c.manifest_file->staged, nullptr)
                                : place_blob(c.manifest_digest, "", &c.manifest_bytes);
    if (st.ok()) st = place_blob(c.config_digest, c.config_file->staged, nullptr);
    for (size_t i = 0; st.ok() && i < c.layer_blobs.size(); ++i) {
      st = place_blob(c.layer_blobs[i].first, c.layer_blobs[i].second->staged, nullptr);
      auto it = unpacked.find(c.diff_ids[i]);
      if (st.ok() && it != unpacked.end()) {
        std::error_code ec;
        if (!fs::exists(LayerPath(c.diff_ids[i]), ec)) {
          if (::rename(it->second.c_str(), LayerPath(c.diff_ids[i]).c_str()) == 0) {
            new_layers.push_back(c.diff_ids[i]);
          } else {
            st = Internal(Errno("moving layer " + c.diff_ids[i] + " into place"));
          }
        }
      }
    }
    if (!st.ok()) {
      rollback();
      index_ = saved;
      return st;
    }
    Entry e;
    e.manifest = c.manifest_digest;
    e.config = c.config_digest;
    for (size_t i = 0; i < c.layer_blobs.size(); ++i) {
      e.layers.push_back({c.layer_blobs[i].first, c.diff_ids[i]});
      e.size += c.layer_blobs[i].second->size;
    }
    for (const auto& ref : c.refs) {
      if (auto old = index_.find(ref); old != index_.end()) {
        replaced_blobs.push_back(old->second.manifest);
        replaced_blobs.push_back(old->second.config);
        for (const auto& l : old->second.layers) {
          replaced_blobs.push_back(l.blob);
          replaced_layers.push_back(l.diff_id);
        }
      }
      index_[ref] = e;
      imported.push_back(ref);
    }
  }
  Status st = SaveIndex();
  if (!st.ok()) {
    index_ = saved;
    rollback();
    return st;
  }
  Collect(replaced_blobs, replaced_layers);
  return imported;
}

}  // namespace fulcrum::agent
