// Pulls from OCI distribution registries (the Docker Registry HTTP API V2): manifests and blobs
// over HTTPS, or plain HTTP for registries named insecure; anonymous, basic and bearer-token
// auth. Behaviour: docs/images.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/image_store.h"
#include "base/json.h"
#include "base/status.h"

namespace fulcrum::agent {

struct RegistryOptions {
  // Registries (host or host:port) spoken to over plain HTTP. localhost and 127.0.0.1 always are,
  // as Docker and containerd treat them.
  std::vector<std::string> insecure;
  // The CA certificates HTTPS registries are verified against.
  std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";
  int timeout_seconds = 60;  // per read without data
};

// Credentials for one registry; empty for anonymous pulls.
struct RegistryAuth {
  std::string username, password;
};

// The credentials for `registry` in a Docker config (the `.dockerconfigjson` of a
// kubernetes.io/dockerconfigjson Secret, or the `.dockercfg` map): "auths" keys may be a host,
// host:port or a URL; "auth" (base64 user:password) or username and password. Empty if none.
RegistryAuth AuthFromDockerConfig(const base::Json& config, const std::string& registry);

// The registry host of a normalised image reference ("docker.io" is served by
// registry-1.docker.io) and the repository path within it.
struct RepositoryName {
  std::string registry;    // as in the reference: docker.io, localhost:5000
  std::string endpoint;    // host[:port] to connect to
  std::string repository;  // library/busybox
};
base::Result<RepositoryName> SplitReference(const std::string& normalised_ref);

// An ImageSource that fetches the repository of `normalised_ref` from its registry.
base::Result<std::unique_ptr<ImageSource>> OpenRegistry(const std::string& normalised_ref,
                                                        const RegistryOptions& options,
                                                        RegistryAuth auth = {});

}  // namespace fulcrum::agent
