// Kubernetes validation of names, labels, metadata, selectors and quantities, following
// k8s.io/apimachinery/pkg/util/validation, .../api/validation and .../api/resource.

#include "api/validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <utility>

namespace fulcrum::api {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?
bool MatchesDns1123Label(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}

// Labels joined by single dots.
bool MatchesDns1123Subdomain(std::string_view s) {
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (!MatchesDns1123Label(part)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool MatchesQualifiedNamePart(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::vector<std::string> PrefixEach(std::vector<std::string> msgs, const std::string& prefix) {
  for (auto& m : msgs) m = prefix + m;
  return msgs;
}

std::string EmptyError() { return "must be non-empty"; }

constexpr char kQualifiedNameErrMsg[] =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character";
constexpr char kQualifiedNameFmt[] = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

std::vector<std::string> HasChDirPrefix(std::string_view value) {
  if (value == ".") return {"must not be '.'"};
  if (value == "..") return {"must not be '..'"};
  if (value.substr(0, 2) == "..") return {"must not start with '..'"};
  return {};
}

void AppendGoQuoted(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\a':
        out += "\\a";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\v':
        out += "\\v";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

bool AllStrings(const Json& j) {
  for (const auto& v : j) {
    if (!v.is_string()) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Messages.

std::string MaxLenError(int length) {
  return "must be no more than " + std::to_string(length) + " characters";
}

std::string InclusiveRangeError(int64_t lo, int64_t hi) {
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", inclusive";
}

std::string RegexError(std::string_view msg, std::string_view regex,
                       const std::vector<std::string>& examples) {
  std::string out(msg);
  if (examples.empty()) {
    out += " (regex used for validation is '";
    out += regex;
    out += "')";
    return out;
  }
  out += " (e.g. ";
  for (size_t i = 0; i < examples.size(); ++i) {
    if (i > 0) out += " or ";
    out += "'" + examples[i] + "', ";
  }
  out += "regex used for validation is '";
  out += regex;
  out += "')";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Value checks.

std::vector<std::string> IsDns1123Subdomain(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 253) errs.push_back(MaxLenError(253));
  if (!MatchesDns1123Subdomain(value)) {
    errs.push_back(RegexError(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
        "or '.', and must start and end with an alphanumeric character",
        "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", {"example.com"}));
  }
  return errs;
}

std::vector<std::string> IsDns1123Label(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(MaxLenError(63));
  if (!MatchesDns1123Label(value)) {
    if (MatchesDns1123Subdomain(value)) {
      errs.push_back("must not contain dots");
    } else {
      errs.push_back(RegexError(
          "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
          "and must start and end with an alphanumeric character",
          "[a-z0-9]([-a-z0-9]*[a-z0-9])?", {"my-name", "123-abc"}));
    }
  }
  return errs;
}

std::vector<std::string> IsDns1035Label(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(MaxLenError(63));
  bool ok =
      !value.empty() && value.front() >= 'a' && value.front() <= 'z' &&
      IsLowerAlnum(value.back()) &&
      std::all_of(value.begin(), value.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
  if (!ok) {
    errs.push_back(RegexError(
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character",
        "[a-z]([-a-z0-9]*[a-z0-9])?", {"my-name", "abc-123"}));
  }
  return errs;
}

std::vector<std::string> IsQualifiedName(std::string_view value) {
  std::vector<std::string> errs;
  std::string_view name;
  size_t slashes = std::count(value.begin(), value.end(), '/');
  if (slashes == 0) {
    name = value;
  } else if (slashes == 1) {
    size_t slash = value.find('/');
    std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty()) {
      errs.push_back("prefix part " + EmptyError());
    } else {
      auto msgs = IsDns1123Subdomain(prefix);
      for (auto& m : PrefixEach(std::move(msgs), "prefix part ")) errs.push_back(std::move(m));
    }
  } else {
    errs.push_back(
        "a qualified name " +
        RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt, {"MyName", "my.name", "123-abc"}) +
        " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
    return errs;
  }
  if (name.empty()) {
    errs.push_back("name part " + EmptyError());
  } else if (name.size() > 63) {
    errs.push_back("name part " + MaxLenError(63));
  }
  if (!MatchesQualifiedNamePart(name)) {
    errs.push_back("name part " + RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt,
                                             {"MyName", "my.name", "123-abc"}));
  }
  return errs;
}

std::vector<std::string> IsValidLabelValue(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(MaxLenError(63));
  if (!value.empty() && !MatchesQualifiedNamePart(value)) {
    errs.push_back(RegexError(
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
        "or '.', and must start and end with an alphanumeric character",
        "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", {"MyValue", "my_value", "12345"}));
  }
  return errs;
}

std::vector<std::string> IsValidPortNum(int64_t port) {
  if (port >= 1 && port <= 65535) return {};
  return {InclusiveRangeError(1, 65535)};
}

std::vector<std::string> IsValidPortName(std::string_view port) {
  std::vector<std::string> errs;
  if (port.size() > 15) errs.push_back(MaxLenError(15));
  bool charset = !port.empty() && std::all_of(port.begin(), port.end(),
                                              [](char c) { return IsLowerAlnum(c) || c == '-'; });
  if (!charset) {
    errs.push_back("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  }
  if (std::none_of(port.begin(), port.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
    errs.push_back("must contain at least one letter (a-z)");
  }
  if (port.find("--") != std::string_view::npos) {
    errs.push_back("must not contain consecutive hyphens");
  }
  if (!port.empty() && (port.front() == '-' || port.back() == '-')) {
    errs.push_back("must not begin or end with a hyphen");
  }
  return errs;
}

// The relaxed rule, default since Kubernetes 1.32 (RelaxedEnvironmentVariableValidation).
std::vector<std::string> IsEnvVarName(std::string_view name) {
  bool ok = !name.empty() && std::all_of(name.begin(), name.end(),
                                         [](char c) { return c >= ' ' && c <= '~' && c != '='; });
  if (ok) return {};
  return {
      "a valid environment variable name must consist only of printable ASCII characters "
      "other than '='"};
}

std::vector<std::string> IsConfigMapKey(std::string_view key) {
  std::vector<std::string> errs;
  if (key.size() > 253) errs.push_back(MaxLenError(253));
  bool ok = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return IsAlnum(c) || c == '-' || c == '.' || c == '_';
  });
  if (!ok) {
    errs.push_back(
        RegexError("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                   "[-._a-zA-Z0-9]+", {"key.name", "KEY_NAME", "key-name"}));
  }
  for (auto& m : HasChDirPrefix(key)) errs.push_back(std::move(m));
  return errs;
}

std::vector<std::string> IsValidPercent(std::string_view value) {
  bool ok = value.size() >= 2 && value.back() == '%' &&
            std::all_of(value.begin(), value.end() - 1, IsDigit);
  if (ok) return {};
  return {RegexError("a valid percent string must be a numeric string followed by an ending '%'",
                     "[0-9]+%", {"1%", "93%"})};
}

bool IsIpv4Address(std::string_view value) {
  if (value.empty() || value.size() > 15) return false;
  std::string s(value);
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1;
}

bool IsIpv6Address(std::string_view value) {
  if (value.empty() || value.size() > 45 || value.find(':') == std::string_view::npos) {
    return false;
  }
  std::string s(value);
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool IsCidr(std::string_view value) {
  size_t slash = value.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view addr = value.substr(0, slash);
  std::string_view bits = value.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 || !std::all_of(bits.begin(), bits.end(), IsDigit)) {
    return false;
  }
  if (bits.size() > 1 && bits.front() == '0') return false;
  int n = std::stoi(std::string(bits));
  if (IsIpv4Address(addr)) return n <= 32;
  if (IsIpv6Address(addr)) return n <= 128;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Field errors.

FieldError TooLong(std::string field, int64_t max_bytes) {
  return FieldError{std::move(field), "FieldValueTooLong",
                    "Too long: may not be more than " + std::to_string(max_bytes) +
                        (max_bytes == 1 ? " byte" : " bytes")};
}

FieldError NotFound(std::string field, const Json& value) {
  return FieldError{std::move(field), "FieldValueNotFound",
                    "Not found: " + FormatFieldValue(value)};
}

FieldError TooMany(std::string field, int64_t actual, int64_t max_items) {
  return FieldError{std::move(field), "FieldValueTooMany",
                    "Too many: " + std::to_string(actual) + ": must have at most " +
                        std::to_string(max_items) + " items"};
}

void ValidateImmutable(const Json& new_value, const Json& old_value, const std::string& field,
                       FieldErrors& errors) {
  if (new_value != old_value) errors.push_back(InvalidValue(field, new_value, kImmutableError));
}

std::string FormatFieldValue(const Json& value) {
  std::string out;
  switch (value.type()) {
    case Json::value_t::string:
      AppendGoQuoted(out, value.get_ref<const std::string&>());
      return out;
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      if (AllStrings(value)) {
        out = "map[string]string{";
        bool first = true;
        for (auto it = value.begin(); it != value.end(); ++it) {
          if (!first) out += ", ";
          first = false;
          AppendGoQuoted(out, it.key());
          out += ':';
          AppendGoQuoted(out, it.value().get_ref<const std::string&>());
        }
        out += '}';
        return out;
      }
      return base::DumpJson(value);
    case Json::value_t::array:
      if (AllStrings(value)) {
        out = "[]string{";
        bool first = true;
        for (const auto& v : value) {
          if (!first) out += ", ";
          first = false;
          AppendGoQuoted(out, v.get_ref<const std::string&>());
        }
        out += '}';
        return out;
      }
      return base::DumpJson(value);
    default:
      return base::DumpJson(value);
  }
}

// ---------------------------------------------------------------------------------------------
// Type-tolerant reads.

const Json* Child(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  if (it == j.end()) return nullptr;
  return &*it;
}

std::string StringField(const Json& j, const char* key) {
  const Json* v = Child(j, key);
  if (v == nullptr || !v->is_string()) return "";
  return v->get<std::string>();
}

std::optional<int64_t> IntValue(const Json* value) {
  if (value == nullptr) return std::nullopt;
  if (value->is_number_unsigned()) {
    uint64_t u = value->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::numeric_limits<int64_t>::max();
    }
    return static_cast<int64_t>(u);
  }
  if (value->is_number_integer()) return value->get<int64_t>();
  if (value->is_number_float()) {
    double d = value->get<double>();
    // Integral floats (80.0) are what YAML-to-JSON conversions sometimes produce.
    if (d >= -9.2e18 && d <= 9.2e18 && d == static_cast<double>(static_cast<int64_t>(d))) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

std::optional<int64_t> IntField(const Json& j, const char* key) { return IntValue(Child(j, key)); }

bool BoolField(const Json& j, const char* key) {
  const Json* v = Child(j, key);
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

size_t CountOf(const Json* value) {
  if (value == nullptr || !(value->is_object() || value->is_array())) return 0;
  return value->size();
}

// ---------------------------------------------------------------------------------------------
// Metadata.

void ValidateLabels(const Json& labels, const std::string& path, FieldErrors& errors) {
  if (labels.is_null()) return;
  if (!labels.is_object()) {
    errors.push_back(InvalidValue(path, labels, "must be a map of string keys to string values"));
    return;
  }
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    for (auto& msg : IsQualifiedName(it.key())) {
      errors.push_back(InvalidValue(path, Json(it.key()), msg));
    }
    if (!it.value().is_string()) {
      errors.push_back(InvalidValue(path, it.value(), "label values must be strings"));
      continue;
    }
    for (auto& msg : IsValidLabelValue(it.value().get_ref<const std::string&>())) {
      errors.push_back(InvalidValue(path, it.value(), msg));
    }
  }
}

void ValidateAnnotations(const Json& annotations, const std::string& path, FieldErrors& errors) {
  if (annotations.is_null()) return;
  if (!annotations.is_object()) {
    errors.push_back(
        InvalidValue(path, annotations, "must be a map of string keys to string values"));
    return;
  }
  int64_t total = 0;
  for (auto it = annotations.begin(); it != annotations.end(); ++it) {
    std::string lower = it.key();
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (auto& msg : IsQualifiedName(lower)) {
      errors.push_back(InvalidValue(path, Json(it.key()), msg));
    }
    total += static_cast<int64_t>(it.key().size());
    if (it.value().is_string()) {
      total += static_cast<int64_t>(it.value().get_ref<const std::string&>().size());
    } else {
      errors.push_back(InvalidValue(path, it.value(), "annotation values must be strings"));
    }
  }
  if (total > kTotalAnnotationSizeLimit) {
    errors.push_back(TooLong(path, kTotalAnnotationSizeLimit));
  }
}

namespace {

std::vector<std::string> NameErrors(std::string_view name, NameValidation which) {
  switch (which) {
    case NameValidation::kDnsLabel:
      return IsDns1123Label(name);
    case NameValidation::kDns1035Label:
      return IsDns1035Label(name);
    case NameValidation::kDnsSubdomain:
      break;
  }
  return IsDns1123Subdomain(name);
}

void ValidateFinalizers(const Json* finalizers, FieldErrors& errors) {
  if (finalizers == nullptr || finalizers->is_null()) return;
  const std::string path = "metadata.finalizers";
  if (!finalizers->is_array()) {
    errors.push_back(InvalidValue(path, *finalizers, "must be a list of strings"));
    return;
  }
  bool orphan = false, foreground = false;
  for (const auto& f : *finalizers) {
    if (!f.is_string()) {
      errors.push_back(InvalidValue(path, f, "must be a string"));
      continue;
    }
    const std::string& name = f.get_ref<const std::string&>();
    for (auto& msg : IsQualifiedName(name)) errors.push_back(InvalidValue(path, f, msg));
    orphan |= name == "orphan";
    foreground |= name == "foregroundDeletion";
  }
  if (orphan && foreground) {
    errors.push_back(InvalidValue(path, *finalizers,
                                  "finalizer orphan and foregroundDeletion cannot be both set"));
  }
}

void ValidateOwnerReferences(const Json* refs, FieldErrors& errors) {
  if (refs == nullptr || refs->is_null()) return;
  const std::string path = "metadata.ownerReferences";
  if (!refs->is_array()) {
    errors.push_back(InvalidValue(path, *refs, "must be a list of owner references"));
    return;
  }
  std::string first_controller;
  for (const auto& ref : *refs) {
    std::string api_version = StringField(ref, "apiVersion");
    std::string kind = StringField(ref, "kind");
    std::string name = StringField(ref, "name");
    std::string uid = StringField(ref, "uid");
    // schema.FromAPIVersionAndKind: the version is what follows the last '/'.
    std::string version = api_version.substr(api_version.rfind('/') + 1);
    if (api_version.find('/') == std::string::npos) version = api_version;
    if (version.empty()) {
      errors.push_back(
          InvalidValue(path + ".apiVersion", Json(api_version), "version must not be empty"));
    }
    if (kind.empty()) {
      errors.push_back(InvalidValue(path + ".kind", Json(kind), "kind must not be empty"));
    }
    if (name.empty()) {
      errors.push_back(InvalidValue(path + ".name", Json(name), "name must not be empty"));
    }
    if (uid.empty()) {
      errors.push_back(InvalidValue(path + ".uid", Json(uid), "uid must not be empty"));
    }
    if (BoolField(ref, "controller")) {
      std::string current = kind + "/" + name;
      if (!first_controller.empty()) {
        errors.push_back(InvalidValue(
            path, *refs,
            "Only one reference can have Controller set to true. Found \"true\" in references "
            "for " +
                first_controller + " and " + current));
      } else {
        first_controller = current;
      }
    }
  }
}

// generateName is validated as a prefix: a trailing '-' is allowed (maskTrailingDash).
std::string MaskTrailingDash(std::string name) {
  if (name.size() > 1 && name.back() == '-') name.back() = 'a';
  return name;
}

}  // namespace

void ValidateObjectMeta(const Json& obj, bool namespaced, NameValidation which,
                        FieldErrors& errors) {
  static const Json kEmpty = Json::object();
  const Json* meta_ptr = Child(obj, "metadata");
  const Json& meta = (meta_ptr != nullptr && meta_ptr->is_object()) ? *meta_ptr : kEmpty;

  const Json* generate_name = Child(meta, "generateName");
  if (generate_name != nullptr && generate_name->is_string() &&
      !generate_name->get_ref<const std::string&>().empty()) {
    for (auto& msg : NameErrors(MaskTrailingDash(generate_name->get<std::string>()), which)) {
      errors.push_back(InvalidValue("metadata.generateName", *generate_name, msg));
    }
  }

  const Json* name = Child(meta, "name");
  if (name == nullptr || name->is_null() ||
      (name->is_string() && name->get_ref<const std::string&>().empty())) {
    errors.push_back(Required("metadata.name", "name or generateName is required"));
  } else if (!name->is_string()) {
    errors.push_back(InvalidValue("metadata.name", *name, "must be a string"));
  } else {
    for (auto& msg : NameErrors(name->get_ref<const std::string&>(), which)) {
      errors.push_back(InvalidValue("metadata.name", *name, msg));
    }
  }

  const Json* ns = Child(meta, "namespace");
  bool has_ns = ns != nullptr && !ns->is_null() &&
                !(ns->is_string() && ns->get_ref<const std::string&>().empty());
  if (namespaced) {
    if (!has_ns) {
      errors.push_back(Required("metadata.namespace"));
    } else if (!ns->is_string()) {
      errors.push_back(InvalidValue("metadata.namespace", *ns, "must be a string"));
    } else {
      for (auto& msg : IsDns1123Label(ns->get_ref<const std::string&>())) {
        errors.push_back(InvalidValue("metadata.namespace", *ns, msg));
      }
    }
  } else if (has_ns) {
    errors.push_back(Forbidden("metadata.namespace", "not allowed on this type"));
  }

  ValidateNonnegativeInt(Child(meta, "generation"), "metadata.generation", errors);
  if (const Json* labels = Child(meta, "labels"))
    ValidateLabels(*labels, "metadata.labels", errors);
  if (const Json* annotations = Child(meta, "annotations")) {
    ValidateAnnotations(*annotations, "metadata.annotations", errors);
  }
  ValidateOwnerReferences(Child(meta, "ownerReferences"), errors);
  ValidateFinalizers(Child(meta, "finalizers"), errors);
}

void ValidateObjectMetaUpdate(const Json& obj, const Json& old_obj, FieldErrors& errors) {
  static const Json kEmpty = Json::object();
  const Json* m = Child(obj, "metadata");
  const Json* o = Child(old_obj, "metadata");
  const Json& meta = (m != nullptr && m->is_object()) ? *m : kEmpty;
  const Json& old_meta = (o != nullptr && o->is_object()) ? *o : kEmpty;
  auto value_or_empty = [](const Json& j, const char* key) {
    const Json* v = Child(j, key);
    return v == nullptr || v->is_null() ? Json("") : *v;
  };
  ValidateImmutable(value_or_empty(meta, "name"), value_or_empty(old_meta, "name"), "metadata.name",
                    errors);
  ValidateImmutable(value_or_empty(meta, "namespace"), value_or_empty(old_meta, "namespace"),
                    "metadata.namespace", errors);
  for (const char* key :
       {"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"}) {
    const Json* now = Child(meta, key);
    if (now == nullptr || now->is_null()) continue;
    ValidateImmutable(*now, value_or_empty(old_meta, key), std::string("metadata.") + key, errors);
  }
  const Json* deletion = Child(old_meta, "deletionTimestamp");
  if (deletion != nullptr && !deletion->is_null()) {
    std::set<std::string> old_finalizers;
    if (const Json* f = Child(old_meta, "finalizers"); f != nullptr && f->is_array()) {
      for (const auto& v : *f) {
        if (v.is_string()) old_finalizers.insert(v.get<std::string>());
      }
    }
    std::vector<std::string> added;
    if (const Json* f = Child(meta, "finalizers"); f != nullptr && f->is_array()) {
      for (const auto& v : *f) {
        if (v.is_string() && !old_finalizers.count(v.get<std::string>())) {
          added.push_back(v.get<std::string>());
        }
      }
    }
    if (!added.empty()) {
      std::sort(added.begin(), added.end());
      errors.push_back(Forbidden(
          "metadata.finalizers",
          "no new finalizers can be added if the object is being deleted, found new finalizers " +
              FormatFieldValue(Json(added))));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Label selectors.

namespace {

struct Requirement {
  std::string key;
  std::string op;  // "=", "in", "notin", "exists", "!"
  std::set<std::string> values;
};

// labels.Selector form of a LabelSelector; false when malformed.
bool SelectorRequirements(const Json& selector, std::vector<Requirement>* out) {
  out->clear();
  if (selector.is_null()) return true;
  if (!selector.is_object()) return false;
  if (const Json* ml = Child(selector, "matchLabels"); ml != nullptr && !ml->is_null()) {
    if (!ml->is_object()) return false;
    for (auto it = ml->begin(); it != ml->end(); ++it) {
      if (!it.value().is_string()) return false;
      out->push_back(Requirement{it.key(), "=", {it.value().get<std::string>()}});
    }
  }
  if (const Json* me = Child(selector, "matchExpressions"); me != nullptr && !me->is_null()) {
    if (!me->is_array()) return false;
    for (const auto& expr : *me) {
      Requirement r;
      r.key = StringField(expr, "key");
      std::string op = StringField(expr, "operator");
      if (const Json* vals = Child(expr, "values"); vals != nullptr && !vals->is_null()) {
        if (!vals->is_array()) return false;
        for (const auto& v : *vals) {
          if (!v.is_string()) return false;
          r.values.insert(v.get<std::string>());
        }
      }
      if (op == "In" || op == "NotIn") {
        if (r.values.empty()) return false;
        r.op = op == "In" ? "in" : "notin";
      } else if (op == "Exists" || op == "DoesNotExist") {
        if (!r.values.empty()) return false;
        r.op = op == "Exists" ? "exists" : "!";
      } else {
        return false;
      }
      out->push_back(std::move(r));
    }
  }
  std::stable_sort(out->begin(), out->end(),
                   [](const Requirement& a, const Requirement& b) { return a.key < b.key; });
  return true;
}

}  // namespace

void ValidateLabelSelector(const Json& selector, const std::string& path, FieldErrors& errors) {
  if (selector.is_null()) return;
  if (!selector.is_object()) {
    errors.push_back(InvalidValue(path, selector, "must be a label selector object"));
    return;
  }
  if (const Json* ml = Child(selector, "matchLabels")) {
    ValidateLabels(*ml, path + ".matchLabels", errors);
  }
  const Json* me = Child(selector, "matchExpressions");
  if (me == nullptr || me->is_null()) return;
  if (!me->is_array()) {
    errors.push_back(InvalidValue(path + ".matchExpressions", *me, "must be a list"));
    return;
  }
  for (size_t i = 0; i < me->size(); ++i) {
    const Json& expr = (*me)[i];
    std::string p = path + ".matchExpressions[" + std::to_string(i) + "]";
    const Json* op = Child(expr, "operator");
    std::string op_s = op != nullptr && op->is_string() ? op->get<std::string>() : "";
    size_t nvalues = CountOf(Child(expr, "values"));
    if (op_s == "In" || op_s == "NotIn") {
      if (nvalues == 0) {
        errors.push_back(
            Required(p + ".values", "must be specified when `operator` is 'In' or 'NotIn'"));
      }
    } else if (op_s == "Exists" || op_s == "DoesNotExist") {
      if (nvalues > 0) {
        errors.push_back(Forbidden(
            p + ".values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
      }
    } else {
      errors.push_back(InvalidValue(p + ".operator", op != nullptr ? *op : Json(""),
                                    "not a valid selector operator"));
    }
    std::string key = StringField(expr, "key");
    for (auto& msg : IsQualifiedName(key)) {
      errors.push_back(InvalidValue(p + ".key", Json(key), msg));
    }
    if (const Json* vals = Child(expr, "values"); vals != nullptr && vals->is_array()) {
      for (size_t j = 0; j < vals->size(); ++j) {
        const Json& v = (*vals)[j];
        std::string vp = p + ".values[" + std::to_string(j) + "]";
        if (!v.is_string()) {
          errors.push_back(InvalidValue(vp, v, "must be a string"));
          continue;
        }
        for (auto& msg : IsValidLabelValue(v.get_ref<const std::string&>())) {
          errors.push_back(InvalidValue(vp, v, msg));
        }
      }
    }
  }
}

bool LabelSelectorMatches(const Json& selector, const Json& labels) {
  std::vector<Requirement> reqs;
  if (selector.is_null()) return false;  // a nil selector selects nothing
  if (!SelectorRequirements(selector, &reqs)) return false;
  for (const auto& r : reqs) {
    const Json* v = Child(labels, r.key.c_str());
    bool has = v != nullptr && v->is_string();
    std::string value = has ? v->get<std::string>() : "";
    if (r.op == "=" || r.op == "in") {
      if (!has || !r.values.count(value)) return false;
    } else if (r.op == "notin") {
      if (has && r.values.count(value)) return false;
    } else if (r.op == "exists") {
      if (!has) return false;
    } else if (r.op == "!") {
      if (has) return false;
    }
  }
  return true;
}

std::string FormatLabelSelector(const Json& selector) {
  std::vector<Requirement> reqs;
  if (!SelectorRequirements(selector, &reqs)) return "<error>";
  std::string out;
  for (const auto& r : reqs) {
    if (!out.empty()) out += ',';
    if (r.op == "=") {
      out += r.key + "=" + *r.values.begin();
    } else if (r.op == "exists") {
      out += r.key;
    } else if (r.op == "!") {
      out += "!" + r.key;
    } else {
      out += r.key + " " + r.op + " (";
      bool first = true;
      for (const auto& v : r.values) {
        if (!first) out += ',';
        first = false;
        out += v;
      }
      out += ')';
    }
  }
  return out;
}

std::string FormatLabels(const Json& labels) {
  std::string out;
  if (labels.is_object()) {
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (!out.empty()) out += ',';
      out += it.key() + "=" + (it.value().is_string() ? it.value().get<std::string>() : "");
    }
  }
  return out.empty() ? "<none>" : out;
}

// ---------------------------------------------------------------------------------------------
// Quantities.

namespace {

using Int128 = __int128;
constexpr Int128 kInt128Max = (static_cast<Int128>(1) << 126) - 1 + (static_cast<Int128>(1) << 126);

bool MulOverflows(Int128 a, Int128 b, Int128* out) { return __builtin_mul_overflow(a, b, out); }

Int128 Pow10(int n) {
  Int128 r = 1;
  for (int i = 0; i < n; ++i) r *= 10;
  return r;
}

}  // namespace

bool ParseQuantity(std::string_view text, Quantity* out) {
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  // Digits, at most one '.', at least one digit.
  Int128 mantissa = 0;
  int frac_digits = 0;      // fractional digits kept in the mantissa
  int dropped_integer = 0;  // integer digits beyond the mantissa's precision
  bool sticky = false;      // a nonzero digit was dropped
  bool seen_dot = false, seen_digit = false;
  const Int128 kLimit = Pow10(35);
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      if (seen_dot) return false;
      seen_dot = true;
      continue;
    }
    if (!IsDigit(c)) break;
    seen_digit = true;
    int d = c - '0';
    if (mantissa < kLimit) {
      mantissa = mantissa * 10 + d;
      if (seen_dot) ++frac_digits;
    } else {
      if (!seen_dot) ++dropped_integer;
      sticky |= d != 0;
    }
  }
  if (!seen_digit) return false;

  std::string_view suffix = text.substr(i);
  int exp10 = 0;
  int exp2 = 0;
  if (suffix.empty()) {
  } else if (suffix == "n") {
    exp10 = -9;
  } else if (suffix == "u") {
    exp10 = -6;
  } else if (suffix == "m") {
    exp10 = -3;
  } else if (suffix == "k") {
    exp10 = 3;
  } else if (suffix == "M") {
    exp10 = 6;
  } else if (suffix == "G") {
    exp10 = 9;
  } else if (suffix == "T") {
    exp10 = 12;
  } else if (suffix == "P") {
    exp10 = 15;
  } else if (suffix == "E") {
    exp10 = 18;
  } else if (suffix.size() == 2 && suffix[1] == 'i') {
    static const std::string_view kBinary = "KMGTPE";
    size_t idx = kBinary.find(suffix[0]);
    if (idx == std::string_view::npos) return false;
    exp2 = 10 * static_cast<int>(idx + 1);
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    std::string_view e = suffix.substr(1);
    bool eneg = false;
    if (!e.empty() && (e[0] == '+' || e[0] == '-')) {
      eneg = e[0] == '-';
      e = e.substr(1);
    }
    if (e.empty() || e.size() > 4 || !std::all_of(e.begin(), e.end(), IsDigit)) return false;
    exp10 = std::stoi(std::string(e)) * (eneg ? -1 : 1);
  } else {
    return false;
  }

  // nanos = mantissa * 10^(exp10 + 9 - frac_digits + dropped_integer) * 2^exp2, rounded up.
  int scale = exp10 + 9 - frac_digits + dropped_integer;
  Int128 value = mantissa;
  if (exp2 > 0 && MulOverflows(value, static_cast<Int128>(1) << exp2, &value)) return false;
  if (scale >= 0) {
    if (scale > 38) {
      if (value != 0) return false;
    } else if (MulOverflows(value, Pow10(scale), &value)) {
      return false;
    }
    if (sticky && value < kInt128Max) value += 1;
  } else {
    int down = -scale;
    if (down > 38) {
      value = (value != 0 || sticky) ? 1 : 0;
    } else {
      Int128 div = Pow10(down);
      Int128 q = value / div;
      if (value % div != 0 || sticky) ++q;
      value = q;
    }
  }
  out->nanos = negative ? -value : value;
  return true;
}

bool ParseQuantity(const Json& value, Quantity* out) {
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    // The decoder trims surrounding whitespace.
    size_t b = s.find_first_not_of(" \t\r\n");
    size_t e = s.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) return false;
    return ParseQuantity(std::string_view(s).substr(b, e - b + 1), out);
  }
  if (value.is_number()) {
    std::string text = base::DumpJson(value);
    return ParseQuantity(std::string_view(text), out);
  }
  return false;
}

namespace {

int64_t CeilDivSaturate(Int128 nanos, Int128 div) {
  Int128 q = nanos / div;
  if (nanos % div != 0 && nanos > 0) ++q;
  if (q > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  if (q < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(q);
}

}  // namespace

int64_t Quantity::Value() const { return CeilDivSaturate(nanos, 1'000'000'000); }
int64_t Quantity::MilliValue() const { return CeilDivSaturate(nanos, 1'000'000); }

void ValidateNonnegativeQuantity(const Json& value, const std::string& path, FieldErrors& errors) {
  Quantity q;
  if (!ParseQuantity(value, &q)) {
    errors.push_back(InvalidValue(path, value, kQuantityFormatError));
    return;
  }
  if (q.nanos < 0) {
    errors.push_back(InvalidValue(path, value.is_string() ? value : Json(base::DumpJson(value)),
                                  kNegativeError));
  }
}

// ---------------------------------------------------------------------------------------------
// Small validators.

void ValidateNonnegativeInt(const Json* value, const std::string& path, FieldErrors& errors) {
  if (value == nullptr || value->is_null()) return;
  auto v = IntValue(value);
  if (!v) {
    errors.push_back(InvalidValue(path, *value, "must be an integer"));
  } else if (*v < 0) {
    errors.push_back(InvalidValue(path, Json(*v), kNegativeError));
  }
}

void ValidatePortNumber(const Json* value, const std::string& path, bool required,
                        FieldErrors& errors) {
  if (value == nullptr || value->is_null()) {
    if (required) errors.push_back(Required(path));
    return;
  }
  auto v = IntValue(value);
  if (!v) {
    errors.push_back(InvalidValue(path, *value, "must be an integer"));
    return;
  }
  if (*v == 0 && required) {
    errors.push_back(Required(path));
    return;
  }
  for (auto& msg : IsValidPortNum(*v)) errors.push_back(InvalidValue(path, Json(*v), msg));
}

void ValidateProtocol(const Json* value, const std::string& path, FieldErrors& errors) {
  if (value == nullptr || value->is_null() ||
      (value->is_string() && value->get_ref<const std::string&>().empty())) {
    errors.push_back(Required(path));
    return;
  }
  if (value->is_string()) {
    const std::string& p = value->get_ref<const std::string&>();
    if (p == "TCP" || p == "UDP" || p == "SCTP") return;
  }
  errors.push_back(NotSupported(path, *value, {"SCTP", "TCP", "UDP"}));
}

}  // namespace fulcrum::api
