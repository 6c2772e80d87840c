// The API server's pods/log, exec, attach and portforward subresources: as kube-apiserver does,
// they find the pod's node and proxy the request to the agent's pod server
// (agent/pod_server.h) over HTTPS, presenting the API server's certificate as a client
// certificate.
#pragma once

#include <memory>
#include <string>

#include "apiserver/http.h"
#include "apiserver/rest.h"
#include "base/status.h"

namespace fulcrum::client {
class TlsContext;
}  // namespace fulcrum::client

namespace fulcrum::apiserver {

class Objects;

// True for the subresources PodProxy serves: pods/log, pods/exec, pods/attach, pods/portforward.
bool IsPodProxyRequest(const RequestInfo& info);

// Thread-safe.
class PodProxy {
 public:
  // `objects` is borrowed. The certificate and key (PEM files) are presented to agents. Errors:
  // Internal when they cannot be loaded.
  static base::Result<std::unique_ptr<PodProxy>> Create(Objects* objects,
                                                        const std::string& client_cert_file,
                                                        const std::string& client_key_file);

  // Serves a request IsPodProxyRequest accepted. Errors are Status objects as kube-apiserver
  // writes them: "container c is not valid for pod p" (400), "pod p does not have a host
  // assigned" (400, exec and attach; a log of an unscheduled pod is empty), the agent's own
  // message (400 for logs it has not, 404 for what it does not know). pods/attach and
  // pods/portforward are proxied as exec is.
  HttpResponse Serve(const HttpRequest& request, const RequestInfo& info);

 private:
  PodProxy(Objects* objects, std::shared_ptr<client::TlsContext> tls)
      : objects_(objects), tls_(std::move(tls)) {}
  HttpResponse Log(const HttpRequest& request, const RequestInfo& info);
  // exec, attach and portforward: upgrades relayed.
  HttpResponse Exec(const HttpRequest& request, const RequestInfo& info);

  Objects* objects_;
  std::shared_ptr<client::TlsContext> tls_;
};

}  // namespace fulcrum::apiserver
