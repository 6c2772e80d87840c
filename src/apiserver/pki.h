#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace fulcrum::apiserver {

// Paths of the credentials a server keeps under its data directory.
struct Pki {
  std::string ca_cert_file;      // DIR/pki/ca.crt
  std::string ca_key_file;       // DIR/pki/ca.key
  std::string server_cert_file;  // DIR/pki/apiserver.crt
  std::string server_key_file;   // DIR/pki/apiserver.key
  std::string admin_token;       // DIR/pki/admin.token, the bearer token of the admin user
  std::string ca_pem;            // contents of ca_cert_file
};

// Loads the CA, serving certificate and admin token under `data_dir`/pki, creating any that are
// missing: an ECDSA P-256 CA valid 10 years, a serving certificate it signs for `hosts` (DNS names
// and IP addresses; localhost and 127.0.0.1 are always included), and a random token. Existing
// files are kept, so clients stay valid across restarts. Private keys are written mode 0600.
base::Result<Pki> EnsurePki(const std::string& data_dir, const std::vector<std::string>& hosts);

// The subject CN of the API server's certificate. It has the clientAuth usage too: the API server
// presents it to agents (pod logs, exec), which accept clients of the cluster CA with this name.
inline constexpr const char* kApiServerCommonName = "fulcrum-apiserver";

// Writes a self-signed certificate (ECDSA P-256, 10 years) for `common_name` and `hosts` (DNS
// names and IP addresses) and its key (mode 0600), unless both files exist. For servers that
// clients do not verify: an agent's, as kube-apiserver does not verify kubelets by default.
base::Status EnsureSelfSignedCert(const std::string& cert_file, const std::string& key_file,
                                  const std::string& common_name,
                                  const std::vector<std::string>& hosts);

// A kubeconfig for user "admin" with the CA embedded and the bearer token, context "fulcrum".
std::string RenderKubeconfig(const std::string& server_url, const std::string& ca_pem,
                             const std::string& token);

}  // namespace fulcrum::apiserver
