// OCI Image Format Specification v1.1 image layout, and the `docker save` archive.
#include "agent/image_archive.h"

#include <openssl/evp.h>

#include <set>

#include "agent/tar.h"

namespace fulcrum::agent {

using base::Json;


namespace {

std::string ConfigJson(const ImageSpec& image) {
  Json diff_ids = Json::array();
  for (const auto& l : image.layers) diff_ids.push_back(Sha256Digest(l));
  Json config = {{"architecture", image.architecture},
                 {"os", image.os},
                 {"config", image.config},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  return config.dump();
}

}  // namespace

std::string WriteOciLayout(const std::vector<ImageSpec>& images) {
  std::string out;
  TarWriter tar(&out);
  std::set<std::string> written;
  auto blob = [&](const std::string& data) {
    std::string digest = Sha256Digest(data);
    if (written.insert(digest).second) tar.AddFile("blobs/sha256/" + digest.substr(7), data);
    return digest;
  };
  tar.AddFile("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  tar.AddDirectory("blobs");
  tar.AddDirectory("blobs/sha256");
  Json manifests = Json::array();
  for (const auto& image : images) {
    std::string config = ConfigJson(image);
    Json layers = Json::array();
    for (const auto& l : image.layers) {
      layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                        {"digest", blob(l)},
                        {"size", l.size()}});
    }
    Json manifest = {{"schemaVersion", 2},
                     {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config",
                      {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                       {"digest", blob(config)},
                       {"size", config.size()}}},
                     {"layers", layers}};
    std::string manifest_bytes = manifest.dump();
    Json desc = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                 {"digest", blob(manifest_bytes)},
                 {"size", manifest_bytes.size()}};
    if (!image.name.empty()) {
      desc["annotations"] = {{"org.opencontainers.image.ref.name", image.name}};
    }
    manifests.push_back(desc);
  }
  Json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", manifests}};
  tar.AddFile("index.json", index.dump());
  tar.Finish();
  return out;
}

std::string WriteDockerSave(const std::vector<ImageSpec>& images) {
  std::string out;
  TarWriter tar(&out);
  std::set<std::string> written;
  Json manifest = Json::array();
  for (const auto& image : images) {
    std::string config = ConfigJson(image);
    std::string config_name = Sha256Digest(config).substr(7) + ".json";
    if (written.insert(config_name).second) tar.AddFile(config_name, config);
    Json layers = Json::array();
    for (const auto& l : image.layers) {
      std::string dir = Sha256Digest(l).substr(7);
      if (written.insert(dir).second) {
        tar.AddDirectory(dir);
        tar.AddFile(dir + "/layer.tar", l);
      }
      layers.push_back(dir + "/layer.tar");
    }
    Json tags = Json::array();
    if (!image.name.empty()) tags.push_back(image.name);
    manifest.push_back({{"Config", config_name}, {"RepoTags", tags}, {"Layers", layers}});
  }
  tar.AddFile("manifest.json", manifest.dump());
  tar.Finish();
  return out;
}

}  // namespace fulcrum::agent
