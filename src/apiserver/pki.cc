// X.509 certificates (RFC 5280) for the API server, made with OpenSSL's EVP and X509 APIs.
#include "apiserver/pki.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <memory>

#include "base/base64.h"
#include "base/file.h"
#include "base/random.h"

namespace fulcrum::apiserver {
namespace {

using base::Result;
using base::Status;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

PkeyPtr NewKey() { return PkeyPtr(EVP_EC_gen("P-256")); }

std::string KeyPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string CertPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

PkeyPtr ParseKey(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return PkeyPtr(key);
}

X509Ptr ParseCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Ptr(cert);
}

void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext != nullptr) {
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
}

// Signs a certificate for `key` with `ca_key` (self-signed when `ca` is null).
X509Ptr MakeCert(EVP_PKEY* key, const std::string& common_name, X509* ca, EVP_PKEY* ca_key,
                 bool is_ca, const std::string& subject_alt_names, long days) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("fulcrum"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509* issuer = ca != nullptr ? ca : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  if (is_ca) {
    AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
    AddExtension(cert.get(), issuer, NID_subject_key_identifier, "hash");
  } else {
    AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    AddExtension(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    AddExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid");
    if (!subject_alt_names.empty()) {
      AddExtension(cert.get(), issuer, NID_subject_alt_name, subject_alt_names);
    }
  }
  X509_sign(cert.get(), ca_key != nullptr ? ca_key : key, EVP_sha256());
  return cert;
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// "DNS:localhost,IP:127.0.0.1,IP:::1,DNS:<hostname>" and `hosts`.
std::string SubjectAltNames(const std::vector<std::string>& hosts) {
  std::string sans = "DNS:localhost,IP:127.0.0.1,IP:::1";
  char hostname[256] = {};
  if (gethostname(hostname, sizeof hostname - 1) == 0 && hostname[0] != '\0') {
    sans += std::string(",DNS:") + hostname;
  }
  for (const auto& h : hosts) {
    if (h.empty() || h == "0.0.0.0" || h == "::") continue;
    sans += (IsIpAddress(h) ? ",IP:" : ",DNS:") + h;
  }
  return sans;
}

}  // namespace

Status EnsureSelfSignedCert(const std::string& cert_file, const std::string& key_file,
                            const std::string& common_name,
                            const std::vector<std::string>& hosts) {
  if (base::ReadFile(cert_file).ok() && base::ReadFile(key_file).ok()) return Status::Ok();
  PkeyPtr key = NewKey();
  if (!key) return base::Internal("generating a key for " + cert_file + " failed");
  X509Ptr cert = MakeCert(key.get(), common_name, nullptr, nullptr, false,
                          SubjectAltNames(hosts), 3650);
  RETURN_IF_ERROR(base::WriteFileAtomic(key_file, KeyPem(key.get()), 0600));
  return base::WriteFileAtomic(cert_file, CertPem(cert.get()), 0644);
}

Result<Pki> EnsurePki(const std::string& data_dir, const std::vector<std::string>& hosts) {
  std::string dir = data_dir + "/pki";
  RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
  Pki pki{dir + "/ca.crt", dir + "/ca.key", dir + "/apiserver.crt", dir + "/apiserver.key", "",
          ""};

  auto ca_pem = base::ReadFile(pki.ca_cert_file);
  auto ca_key_pem = base::ReadFile(pki.ca_key_file);
  PkeyPtr ca_key;
  X509Ptr ca;
  if (ca_pem.ok() && ca_key_pem.ok()) {
    ca_key = ParseKey(*ca_key_pem);
    ca = ParseCert(*ca_pem);
    if (!ca_key || !ca) return base::Internal("corrupt CA in " + dir + ": remove it to regenerate");
    pki.ca_pem = *ca_pem;
  } else {
    ca_key = NewKey();
    if (!ca_key) return base::Internal("generating the CA key failed");
    ca = MakeCert(ca_key.get(), "fulcrum-ca", nullptr, nullptr, true, "", 3650);
    pki.ca_pem = CertPem(ca.get());
    RETURN_IF_ERROR(base::WriteFileAtomic(pki.ca_key_file, KeyPem(ca_key.get()), 0600));
    RETURN_IF_ERROR(base::WriteFileAtomic(pki.ca_cert_file, pki.ca_pem, 0644));
    ::unlink(pki.server_cert_file.c_str());  // a new CA invalidates the old serving certificate
  }

  std::string sans = SubjectAltNames(hosts);
  // The serving certificate is reissued when the set of names changes.
  std::string sans_file = dir + "/apiserver.sans";
  auto old_sans = base::ReadFile(sans_file);
  bool have_cert = base::ReadFile(pki.server_cert_file).ok() &&
                   base::ReadFile(pki.server_key_file).ok() && old_sans.ok() && *old_sans == sans;
  if (!have_cert) {
    PkeyPtr key = NewKey();
    if (!key) return base::Internal("generating the serving key failed");
    X509Ptr cert = MakeCert(key.get(), kApiServerCommonName, ca.get(), ca_key.get(), false, sans,
                            3650);
    RETURN_IF_ERROR(base::WriteFileAtomic(pki.server_key_file, KeyPem(key.get()), 0600));
    RETURN_IF_ERROR(base::WriteFileAtomic(pki.server_cert_file, CertPem(cert.get()), 0644));
    RETURN_IF_ERROR(base::WriteFileAtomic(sans_file, sans, 0644));
  }

  std::string token_file = dir + "/admin.token";
  auto token = base::ReadFile(token_file);
  if (token.ok() && !token->empty()) {
    pki.admin_token = *token;
    while (!pki.admin_token.empty() && std::isspace(static_cast<unsigned char>(pki.admin_token.back()))) {
      pki.admin_token.pop_back();
    }
  } else {
    pki.admin_token = base::RandomHex(32);
    RETURN_IF_ERROR(base::WriteFileAtomic(token_file, pki.admin_token + "\n", 0600));
  }
  return pki;
}

std::string RenderKubeconfig(const std::string& server_url, const std::string& ca_pem,
                             const std::string& token) {
  std::string b64 = base::Base64Encode(ca_pem);  // certificate-authority-data
  return "apiVersion: v1\n"
         "kind: Config\n"
         "clusters:\n"
         "- name: fulcrum\n"
         "  cluster:\n"
         "    server: " + server_url + "\n"
         "    certificate-authority-data: " + b64 + "\n"
         "users:\n"
         "- name: admin\n"
         "  user:\n"
         "    token: " + token + "\n"
         "contexts:\n"
         "- name: fulcrum\n"
         "  context:\n"
         "    cluster: fulcrum\n"
         "    user: admin\n"
         "    namespace: default\n"
         "current-context: fulcrum\n";
}

}  // namespace fulcrum::apiserver
