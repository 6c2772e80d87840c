// Writes OCI image layout tarballs and `docker save` archives (for the demo image and tests).
#pragma once

#include <string>
#include <vector>

#include "agent/digest.h"  // Sha256Digest, used with the archives
#include "base/json.h"

namespace fulcrum::agent {

struct ImageSpec {
  std::string name;  // e.g. "fulcrum.dev/busybox:demo"; "" writes no name
  std::string architecture = "amd64";
  std::string os = "linux";
  base::Json config = base::Json::object();  // the config's "config" section: Cmd, Env, ...
  std::vector<std::string> layers;           // uncompressed layer tarballs, bottom first
};


// An OCI image layout (oci-layout, index.json, blobs/sha256/...) as one tar archive; each image's
// name is its index.json descriptor's org.opencontainers.image.ref.name annotation.
std::string WriteOciLayout(const std::vector<ImageSpec>& images);

// A `docker save` archive: manifest.json (Config, RepoTags, Layers), <hex>.json, <hex>/layer.tar.
std::string WriteDockerSave(const std::vector<ImageSpec>& images);

}  // namespace fulcrum::agent
