#pragma once

// Kubernetes validation of object metadata and common values, with the wording of
// k8s.io/apimachinery/pkg/util/validation and k8s.io/kubernetes/pkg/apis/core/validation, so that
// `kubectl` users see the messages they know. Pure functions; thread-safe.

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/registry.h"

namespace fulcrum::api {

// ---------------------------------------------------------------------------------------------
// Value checks. Each returns the problems found (empty when valid) as sentence fragments, which
// become the detail of an InvalidValue error, e.g. "must be no more than 63 characters".

// Names of most kinds: lowercase RFC 1123 subdomain, at most 253 characters.
std::vector<std::string> IsDns1123Subdomain(std::string_view value);
// Namespace names, container and volume names: lowercase RFC 1123 label, at most 63 characters.
std::vector<std::string> IsDns1123Label(std::string_view value);
// Service names: DNS-1035 label (starts with a letter), at most 63 characters.
std::vector<std::string> IsDns1035Label(std::string_view value);
// Label keys, annotation keys, finalizers: an optional DNS subdomain prefix and '/', then a name
// part of at most 63 alphanumerics, '-', '_' or '.' with alphanumeric ends.
std::vector<std::string> IsQualifiedName(std::string_view value);
// Label values: empty, or at most 63 alphanumerics, '-', '_' or '.' with alphanumeric ends.
std::vector<std::string> IsValidLabelValue(std::string_view value);
// 1..65535.
std::vector<std::string> IsValidPortNum(int64_t port);
// IANA service names as used for named ports: at most 15 of [-a-z0-9], at least one letter.
std::vector<std::string> IsValidPortName(std::string_view name);
// Environment variable names.
std::vector<std::string> IsEnvVarName(std::string_view name);
// ConfigMap and Secret data keys: [-._a-zA-Z0-9]+, at most 253, not "." or "..".
std::vector<std::string> IsConfigMapKey(std::string_view key);
// "N%" strings, as in a Deployment's maxSurge.
std::vector<std::string> IsValidPercent(std::string_view value);
// Textual IPv4 or IPv6 addresses (no zones, no leading zeros in IPv4 octets).
bool IsIpv4Address(std::string_view value);
bool IsIpv6Address(std::string_view value);
// "10.0.0.0/16", "fd00::/64".
bool IsCidr(std::string_view value);

// Apimachinery's message builders, for callers composing their own details.
std::string MaxLenError(int length);  // "must be no more than 63 characters"
std::string InclusiveRangeError(int64_t lo,
                                int64_t hi);  // "must be between 1 and 65535, inclusive"
std::string RegexError(std::string_view msg, std::string_view regex,
                       const std::vector<std::string>& examples);

inline constexpr char kNegativeError[] = "must be greater than or equal to 0";
inline constexpr char kImmutableError[] = "field is immutable";
inline constexpr int64_t kTotalAnnotationSizeLimit = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// FieldError builders beyond registry.h's.

// "Too long: may not be more than 262144 bytes" (FieldValueTooLong).
FieldError TooLong(std::string field, int64_t max_bytes);
// "Not found: \"x\"" (FieldValueNotFound), e.g. a volumeMount naming no volume.
FieldError NotFound(std::string field, const Json& value);
// "Too many: 101: must have at most 100 items" (FieldValueTooMany).
FieldError TooMany(std::string field, int64_t actual, int64_t max_items);
// Appends InvalidValue(field, new_value, "field is immutable") when the values differ.
void ValidateImmutable(const Json& new_value, const Json& old_value, const std::string& field,
                       FieldErrors& errors);

// How a value is shown inside an error, as Go's %v/%q/%#v would show the corresponding Go value:
// strings quoted ("\"web\""), numbers and booleans bare, string maps as map[string]string{...},
// string lists as []string{...}, null as "null", anything else as compact JSON.
std::string FormatFieldValue(const Json& value);

// ---------------------------------------------------------------------------------------------
// Object metadata.

enum class NameValidation {
  kDnsSubdomain,  // most kinds
  kDnsLabel,      // Namespace
  kDns1035Label,  // Service
};

// Validates obj.metadata of a create (and the static rules of an update): name (or generateName's
// prefix, with a trailing '-' allowed) per `which`; namespace required and a DNS label when
// `namespaced`, Forbidden otherwise; labels; annotations (keys and 256 KiB total); finalizers;
// ownerReferences; generation >= 0. Paths start at "metadata.".
void ValidateObjectMeta(const Json& obj, bool namespaced, NameValidation which,
                        FieldErrors& errors);

// The update-only rules of metadata: name, namespace, uid, creationTimestamp, deletionTimestamp
// and deletionGracePeriodSeconds may not change (uid/timestamps absent from `obj` count as
// unchanged, since the server carries them over), and no finalizer may be added once
// deletionTimestamp is set.
void ValidateObjectMetaUpdate(const Json& obj, const Json& old_obj, FieldErrors& errors);

// Label maps (metadata.labels, nodeSelector, matchLabels, service selectors). Errors name `path`
// itself, not the key, as Kubernetes does.
void ValidateLabels(const Json& labels, const std::string& path, FieldErrors& errors);
// Annotation keys (case-insensitive qualified names) and their total size.
void ValidateAnnotations(const Json& annotations, const std::string& path, FieldErrors& errors);

// ---------------------------------------------------------------------------------------------
// Label selectors (metav1.LabelSelector: matchLabels + matchExpressions with In, NotIn, Exists,
// DoesNotExist).

void ValidateLabelSelector(const Json& selector, const std::string& path, FieldErrors& errors);
// Whether `labels` (a string map, possibly null) satisfies `selector`. An empty selector matches
// everything; a malformed one (unknown operator, In without values) matches nothing.
bool LabelSelectorMatches(const Json& selector, const Json& labels);
// "app=web,tier in (a,b),!canary", requirements sorted by key, as labels.Selector.String().
// "" for an empty selector, "<error>" for a malformed one.
std::string FormatLabelSelector(const Json& selector);
// "a=b,c=d" sorted by key, or "<none>" when empty (labels.FormatLabels).
std::string FormatLabels(const Json& labels);

// ---------------------------------------------------------------------------------------------
// Quantities (resource.Quantity): "100m", "1Gi", "0.5", "1e3", "2", "+1.5E", "500u".

struct Quantity {
  // The value in billionths of the base unit (cores, bytes, ...). Like resource.Quantity, finer
  // fractions are rounded up to the next nano.
  __int128 nanos = 0;
  // Rounded up, as resource.Quantity's Value() and MilliValue(); saturate at the int64 range.
  int64_t Value() const;
  int64_t MilliValue() const;
  auto operator<=>(const Quantity&) const = default;
};

// False (leaving *out unchanged) when `text` is not a quantity.
bool ParseQuantity(std::string_view text, Quantity* out);
// Accepts a JSON string or number, as the Kubernetes decoder does.
bool ParseQuantity(const Json& value, Quantity* out);

// The decoder's message for a malformed quantity.
inline constexpr char kQuantityFormatError[] =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

// Appends an error when `value` is not a quantity or is negative.
void ValidateNonnegativeQuantity(const Json& value, const std::string& path, FieldErrors& errors);

// ---------------------------------------------------------------------------------------------
// Small validators shared by the kinds.

// Appends InvalidValue(path, value, kNegativeError) when `value` is an integer < 0, and
// InvalidValue(path, value, "must be an integer") when it is present but not an integer.
void ValidateNonnegativeInt(const Json* value, const std::string& path, FieldErrors& errors);
// For ports: Required when 0 or absent (if `required`), InclusiveRangeError(1, 65535) otherwise.
void ValidatePortNumber(const Json* value, const std::string& path, bool required,
                        FieldErrors& errors);
// "TCP", "UDP", "SCTP"; Required when absent or empty.
void ValidateProtocol(const Json* value, const std::string& path, FieldErrors& errors);

// Type-tolerant reads of objects from outside: a missing key or a value of the wrong type reads
// as absent, never throws.
const Json* Child(const Json& j, const char* key);
std::string StringField(const Json& j, const char* key);
std::optional<int64_t> IntValue(const Json* value);
std::optional<int64_t> IntField(const Json& j, const char* key);
bool BoolField(const Json& j, const char* key);
// Number of entries of an object or array; 0 for anything else.
size_t CountOf(const Json* value);

// ---------------------------------------------------------------------------------------------
// Pod specs, shared by Pods and workload templates. Defined in types_core.cc.

// SetDefaults_PodSpec and SetDefaults_Container: dnsPolicy, restartPolicy,
// terminationGracePeriodSeconds, schedulerName, securityContext, container
// terminationMessagePath/Policy and imagePullPolicy, port protocols, volume and probe defaults.
// Pod-only defaults (service account, enableServiceLinks, status) are the Pod kind's.
void SetPodSpecDefaults(Json& spec);
// ValidatePodSpec: containers, init containers, volumes, mounts, env, ports, resources,
// restartPolicy, dnsPolicy, nodeSelector, tolerations, ... `path` is e.g. "spec" or
// "spec.template.spec".
void ValidatePodSpec(const Json& spec, const std::string& path, FieldErrors& errors);
// ValidatePodTemplateSpec: `path`.labels, `path`.annotations and `path`.spec.
void ValidatePodTemplateSpec(const Json& tmpl, const std::string& path, FieldErrors& errors);

}  // namespace fulcrum::api
