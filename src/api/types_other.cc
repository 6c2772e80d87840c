// coordination.k8s.io/v1 Lease and discovery.k8s.io/v1 EndpointSlice: defaults, validation
// (pkg/apis/coordination/validation, pkg/apis/discovery/validation) and table printing.

#include <set>
#include <string>
#include <vector>

#include "api/registry.h"
#include "api/types_common.h"
#include "api/validation.h"

namespace fulcrum::api {
namespace {

using namespace types;  // NOLINT: the helpers every kind file shares

using base::FindPath;
using base::StringAt;








// ---------------------------------------------------------------------------------------------
// Lease.

void ValidateLease(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json& spec = ObjectAt(obj, "spec");
  if (const Json* d = Child(spec, "leaseDurationSeconds"); d != nullptr && !d->is_null()) {
    auto v = IntValue(d);
    if (!v || *v <= 0) {
      errors.push_back(InvalidValue("spec.leaseDurationSeconds", *d, "must be greater than 0"));
    }
  }
  ValidateNonnegativeInt(Child(spec, "leaseTransitions"), "spec.leaseTransitions", errors);
  for (const char* f : {"acquireTime", "renewTime"}) {
    const Json* t = Child(spec, f);
    if (t == nullptr || t->is_null()) continue;
    WallTime parsed;
    if (!t->is_string() || !base::ParseRfc3339(t->get<std::string>(), &parsed)) {
      errors.push_back(InvalidValue(std::string("spec.") + f, *t, "must be an RFC 3339 timestamp"));
    }
  }
  if (!StringField(spec, "preferredHolder").empty() && StringField(spec, "strategy").empty()) {
    errors.push_back(
        Forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"));
  }
}

ResourceType LeaseType() {
  ResourceType t;
  t.group = "coordination.k8s.io";
  t.version = "v1";
  t.kind = "Lease";
  t.plural = "leases";
  t.singular = "lease";
  t.namespaced = true;
  t.set_defaults = [](Json&) {};
  t.validate = ValidateLease;
  t.columns = {{"Holder", "string", "",
                "holderIdentity contains the identity of the holder of a current lease.", 0},
               AgeColumn()};
  t.cells = [](const Json& obj, WallTime now) -> std::vector<Json> {
    return {StringAt(obj, {"spec", "holderIdentity"}), AgeCell(obj, now)};
  };
  t.selectable_field = MetadataField;
  return t;
}

// ---------------------------------------------------------------------------------------------
// EndpointSlice.

constexpr size_t kMaxAddresses = 100;
constexpr size_t kMaxEndpoints = 1000;
constexpr size_t kMaxPorts = 20000;

void SetEndpointSliceDefaults(Json& obj) {
  if (!obj.is_object()) return;
  auto ports = obj.find("ports");
  if (ports == obj.end() || !ports->is_array()) return;
  for (auto& p : *ports) {
    if (!p.is_object()) continue;
    auto name = p.find("name");
    if (name == p.end() || name->is_null()) p["name"] = "";
    auto protocol = p.find("protocol");
    if (protocol == p.end() || protocol->is_null()) p["protocol"] = "TCP";
  }
}

// validation.IsFullyQualifiedDomainName.
void ValidateFqdn(const std::string& value, const std::string& path, FieldErrors& errors) {
  if (value.empty()) {
    errors.push_back(Required(path));
    return;
  }
  std::string name = value.back() == '.' ? value.substr(0, value.size() - 1) : value;
  auto errs = IsDns1123Subdomain(name);
  if (!errs.empty()) {
    std::string joined;
    for (const auto& e : errs) joined += (joined.empty() ? "" : ",") + e;
    errors.push_back(InvalidValue(path, Json(name), joined));
    return;
  }
  if (name.find('.') == std::string::npos) {
    errors.push_back(InvalidValue(
        path, Json(name), "should be a domain with at least two segments separated by dots"));
    return;
  }
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string label =
        name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    auto label_errs = IsDns1123Label(label);
    if (!label_errs.empty()) {
      std::string joined;
      for (const auto& e : label_errs) joined += (joined.empty() ? "" : ",") + e;
      errors.push_back(InvalidValue(path, Json(label), joined));
      return;
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
}

void ValidateEndpointSlice(const Json& obj, const Json* old_obj, FieldErrors& errors) {
  ValidateMeta(obj, old_obj, true, NameValidation::kDnsSubdomain, errors);
  const Json* address_type = Child(obj, "addressType");
  std::string type =
      address_type != nullptr && address_type->is_string() ? address_type->get<std::string>() : "";
  if (address_type == nullptr || address_type->is_null() ||
      (address_type->is_string() && type.empty())) {
    errors.push_back(Required("addressType"));
  } else if (type != "FQDN" && type != "IPv4" && type != "IPv6") {
    errors.push_back(NotSupported("addressType", *address_type, {"FQDN", "IPv4", "IPv6"}));
  }

  const Json& endpoints = ArrayAt(obj, "endpoints");
  if (endpoints.size() > kMaxEndpoints) {
    errors.push_back(TooMany("endpoints", static_cast<int64_t>(endpoints.size()), kMaxEndpoints));
  }
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const Json& ep = endpoints[i];
    std::string ip = Idx("endpoints", i);
    std::string addresses_path = ip + ".addresses";
    const Json& addresses = ArrayAt(ep, "addresses");
    if (addresses.empty()) {
      errors.push_back(Required(addresses_path, "must contain at least 1 address"));
    } else if (addresses.size() > kMaxAddresses) {
      errors.push_back(
          TooMany(addresses_path, static_cast<int64_t>(addresses.size()), kMaxAddresses));
    }
    for (size_t j = 0; j < addresses.size(); ++j) {
      const Json& a = addresses[j];
      std::string ap = Idx(addresses_path, j);
      std::string addr = a.is_string() ? a.get<std::string>() : "";
      if (type == "IPv4" && !IsIpv4Address(addr)) {
        errors.push_back(InvalidValue(ap, a, "must be a valid IPv4 address"));
      } else if (type == "IPv6" && !IsIpv6Address(addr)) {
        errors.push_back(InvalidValue(ap, a, "must be a valid IPv6 address"));
      } else if (type == "FQDN") {
        ValidateFqdn(addr, ap, errors);
      }
    }
    if (const Json* node = Child(ep, "nodeName"); node != nullptr && node->is_string()) {
      for (auto& m : IsDns1123Subdomain(node->get<std::string>())) {
        errors.push_back(InvalidValue(ip + ".nodeName", *node, m));
      }
    }
    if (const Json* host = Child(ep, "hostname"); host != nullptr && host->is_string()) {
      for (auto& m : IsDns1123Label(host->get<std::string>())) {
        errors.push_back(InvalidValue(ip + ".hostname", *host, m));
      }
    }
    if (const Json* topology = Child(ep, "deprecatedTopology")) {
      ValidateLabels(*topology, ip + ".deprecatedTopology", errors);
    }
  }

  const Json& ports = ArrayAt(obj, "ports");
  if (ports.size() > kMaxPorts) {
    errors.push_back(TooMany("ports", static_cast<int64_t>(ports.size()), kMaxPorts));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < ports.size(); ++i) {
    const Json& p = ports[i];
    std::string ip = Idx("ports", i);
    std::string name = StringField(p, "name");
    if (!name.empty()) {
      for (auto& m : IsDns1123Label(name))
        errors.push_back(InvalidValue(ip + ".name", Json(name), m));
    }
    if (!names.insert(name).second) errors.push_back(Duplicate(ip + ".name", Json(name)));
    ValidateProtocol(Child(p, "protocol"), ip + ".protocol", errors);
    const Json* port = Child(p, "port");
    if (port != nullptr && !port->is_null()) ValidatePortNumber(port, ip + ".port", false, errors);
    if (const Json* app = Child(p, "appProtocol"); app != nullptr && app->is_string()) {
      for (auto& m : IsQualifiedName(app->get<std::string>())) {
        errors.push_back(InvalidValue(ip + ".appProtocol", *app, m));
      }
    }
  }

  if (old_obj != nullptr) {
    const Json* old_type = Child(*old_obj, "addressType");
    ValidateImmutable(address_type != nullptr ? *address_type : Json(),
                      old_type != nullptr ? *old_type : Json(), "addressType", errors);
  }
}

// listWithMoreString: at most three items, then " + N more...", "<unset>" when empty.
std::string ListWithMore(const std::vector<std::string>& items) {
  const size_t kMax = 3;
  std::string out;
  for (size_t i = 0; i < items.size() && i < kMax; ++i) out += (i > 0 ? "," : "") + items[i];
  if (items.size() > kMax) return out + " + " + std::to_string(items.size() - kMax) + " more...";
  return out.empty() ? "<unset>" : out;
}

std::vector<Json> EndpointSliceCells(const Json& obj, WallTime now) {
  std::vector<std::string> ports;
  for (const auto& p : ArrayAt(obj, "ports")) {
    auto port = IntField(p, "port");
    std::string name = StringField(p, "name");
    if (port) {
      ports.push_back(std::to_string(*port));
    } else if (Child(p, "name") != nullptr && Child(p, "name")->is_string()) {
      ports.push_back(name);
    } else {
      ports.push_back("*");
    }
  }
  std::vector<std::string> addresses;
  for (const auto& ep : ArrayAt(obj, "endpoints")) {
    for (const auto& a : ArrayAt(ep, "addresses")) {
      addresses.push_back(a.is_string() ? a.get<std::string>() : "");
    }
  }
  return {StringField(obj, "addressType"), ListWithMore(ports), ListWithMore(addresses),
          AgeCell(obj, now)};
}

ResourceType EndpointSliceType() {
  ResourceType t;
  t.group = "discovery.k8s.io";
  t.version = "v1";
  t.kind = "EndpointSlice";
  t.plural = "endpointslices";
  t.singular = "endpointslice";
  t.namespaced = true;
  t.set_defaults = SetEndpointSliceDefaults;
  t.validate = ValidateEndpointSlice;
  t.columns = {
      {"AddressType", "string", "",
       "addressType specifies the type of address carried by this EndpointSlice.", 0},
      {"Ports", "string", "",
       "ports specifies the list of network ports exposed by each endpoint in this slice.", 0},
      {"Endpoints", "string", "", "endpoints is a list of unique endpoints in this slice.", 0},
      AgeColumn(),
  };
  t.cells = EndpointSliceCells;
  t.selectable_field = MetadataField;
  return t;
}

}  // namespace

void AddCoordinationTypes(Registry* registry) { registry->Add(LeaseType()); }

void AddDiscoveryTypes(Registry* registry) { registry->Add(EndpointSliceType()); }

}  // namespace fulcrum::api
