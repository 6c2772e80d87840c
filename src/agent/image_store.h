// The node's content-addressed image store: OCI image layout tarballs and `docker save` archives
// imported into blobs and unpacked layers that overlayfs stacks. Layout and commands:
// docs/images.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

class StagedArchive;  // image_store.cc: an archive's files staged for import

// What a container needs from an image's config (OCI image spec, config.config).
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "NAME=value"
  std::string working_dir;
  std::string user;
  std::string architecture;  // GOARCH spelling: amd64, arm64, ...
  std::string os;
};

struct ImageRecord {
  std::string ref;              // normalised: docker.io/library/busybox:latest
  std::string manifest_digest;  // sha256:<hex>
  std::string config_digest;
  std::vector<std::string> diff_ids;    // bottom layer first
  std::vector<std::string> layer_dirs;  // absolute, bottom first (overlayfs wants top first)
  uint64_t size = 0;                    // bytes of the layer blobs
  ImageConfig config;
};

// Normalises an image reference as Docker does: "busybox" → "docker.io/library/busybox:latest",
// "user/app:1" → "docker.io/user/app:1", "index.docker.io/x" → "docker.io/library/x:latest";
// a first component with a "." or ":" or "localhost" is a registry. A digest ("name@sha256:...")
// is kept and no tag added. Invalid, naming the fault, for anything else.
base::Result<std::string> NormaliseImageRef(const std::string& ref);

// This machine's architecture in GOARCH spelling (amd64 on x86_64).
std::string HostArchitecture();

struct ImageStoreOptions {
  // Images for another architecture are refused; tests set this to fake another machine.
  std::string architecture = HostArchitecture();
};

// Where ImageStore::Pull gets an image's manifests and blobs: a registry (registry.h), or memory
// in tests. What it returns is checked by the store (digests, sizes, media types).
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // The manifest or image index that `reference` (a tag or "sha256:<hex>") names in the
  // source's repository; *media_type from the response. NotFound if there is none,
  // Unavailable/Unauthenticated/PermissionDenied for the registry's answers, naming it.
  virtual base::Result<std::string> Manifest(const std::string& reference,
                                             std::string* media_type) = 0;
  // Writes the blob `digest` to the new file `path`.
  virtual base::Status Blob(const std::string& digest, const std::string& path) = 0;
};

// ROOT/images/{index.json, blobs/sha256/<hex>, layers/<diff-id hex>/, tmp/}. Thread-safe; the
// index is also guarded by flock(2) on ROOT/images/lock, so that the agent and `fulcrum image`
// commands may share a root.
class ImageStore {
 public:
  // Opens (creating if needed) the store under `root`. Removes what an interrupted import left
  // in tmp/ and any blob or layer that no image references.
  static base::Result<std::unique_ptr<ImageStore>> Open(const std::string& root,
                                                        ImageStoreOptions options = {});

  // Imports every image in the archive at `path` (OCI layout or docker-save tarball, optionally
  // gzip-compressed) and returns their normalised references. `name`, when given, names the
  // image (the archive must then hold exactly one). An image already present under the same
  // reference is replaced. On any failure nothing is changed: BadRequest for a corrupt archive
  // (bad tar, digest mismatch, missing blob, unsupported media type), Invalid for an image for
  // another architecture or OS, NotFound if `path` does not exist, Internal for I/O errors.
  base::Result<std::vector<std::string>> Import(const std::string& path,
                                                const std::string& name = "");

  // Pulls the image `ref` from `source` (which serves ref's repository): its manifest (the one
  // for this machine's platform from an image index), config and the layer blobs the store does
  // not have yet, each checked against its digest; then commits it as Import does. Returns the
  // normalised reference. Nothing changes on failure: the source's error, BadRequest for a
  // digest mismatch or an unsupported manifest, Invalid for an image for another platform.
  base::Result<std::string> Pull(const std::string& ref, ImageSource* source);

  // Every image, sorted by reference.
  base::Result<std::vector<ImageRecord>> List();

  // The image named by `ref` (normalised first) or by its manifest digest "sha256:<hex>".
  // NotFound if there is none.
  base::Result<ImageRecord> Resolve(const std::string& ref);

  // Removes the reference; blobs and layers that no remaining image uses are deleted.
  // NotFound if there is no such image.
  base::Status Remove(const std::string& ref);

  const std::string& root() const { return root_; }

 private:
  struct Layer {
    std::string blob;     // sha256:<hex> of the (maybe compressed) layer blob
    std::string diff_id;  // sha256:<hex> of the uncompressed tar
  };
  struct Entry {
    std::string manifest, config;
    std::vector<Layer> layers;
    uint64_t size = 0;
  };
  class Lock;

  ImageStore(std::string root, ImageStoreOptions options);
  // The part of Import after staging: finds the images in `archive` (named `source` in errors),
  // validates them and commits them, named `given` when that is not empty.
  base::Result<std::vector<std::string>> ImportStaged(const StagedArchive& archive,
                                                      const std::string& source,
                                                      const std::string& given);
  base::Status LoadIndex();   // caller holds mu_ and the file lock
  base::Status SaveIndex();   // caller holds mu_ and the file lock (exclusive)
  // Deletes those of `blobs` and `diff_ids` that no entry references.
  void Collect(const std::vector<std::string>& blobs, const std::vector<std::string>& diff_ids);
  void CollectAll();
  base::Result<ImageRecord> Record(const std::string& ref, const Entry& e) const;

  std::string BlobPath(const std::string& digest) const;
  std::string LayerPath(const std::string& diff_id) const;

  const std::string root_;    // ROOT/images
  const ImageStoreOptions options_;
  std::mutex mu_;
  std::map<std::string, Entry> index_;  // guarded by mu_
};

}  // namespace fulcrum::agent
