// YAML to JSON as sigs.k8s.io/yaml does it: YAML 1.1 scalar resolution of go-yaml v2
// (gopkg.in/yaml.v2 resolve.go), then JSON-compatible keys. Parsing is yaml-cpp's event API, so
// aliases are expanded here, under a budget, rather than shared inside a node graph.
#include "api/yaml.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>

namespace fulcrum::api {
namespace {

using base::BadRequest;
using base::Status;

// Alias expansion may add at most this many values and string bytes to a document stream, or
// twice the input size if that is more. go-yaml v2 allows a similar absolute amount.
constexpr std::size_t kMinAliasBudget = 400'000;

// Thrown from the event handler to stop yaml-cpp, and turned into a Status.
struct YamlError {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void Fail(const YAML::Mark& mark, std::string message) {
  throw YamlError{mark, std::move(message)};
}

Status ErrorStatus(const YAML::Mark& mark, const std::string& message) {
  if (mark.is_null() || mark.line < 0) return BadRequest("yaml: " + message);
  return BadRequest("yaml: line " + std::to_string(mark.line + 1) + ", column " +
                    std::to_string(mark.column + 1) + ": " + message);
}

// Decodes the UTF-8 sequence at text[*i], advancing *i; nullptr on success, else what is wrong.
const char* NextCodePoint(std::string_view text, std::size_t* i, std::uint32_t* cp) {
  unsigned char c = static_cast<unsigned char>(text[*i]);
  if (c < 0x80) {
    *cp = c;
    ++*i;
    return nullptr;
  }
  std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (len == 0 || c > 0xF4 || *i + len > text.size()) return "invalid leading UTF-8 octet";
  *cp = c & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    unsigned char t = static_cast<unsigned char>(text[*i + k]);
    if ((t & 0xC0) != 0x80) return "invalid trailing UTF-8 octet";
    *cp = (*cp << 6) | (t & 0x3F);
  }
  static constexpr std::uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (*cp < kMinForLength[len] || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) {
    return "invalid Unicode character";
  }
  *i += len;
  return nullptr;
}

bool IsValidUtf8(std::string_view text) {
  std::uint32_t cp = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (NextCodePoint(text, &i, &cp) != nullptr) return false;
  }
  return true;
}

// go-yaml's reader accepts UTF-8 text of printable characters plus tab, LF and CR (and a
// byte-order mark). Checking first also keeps yaml-cpp from guessing a UTF-16/32 encoding.
Status CheckText(std::string_view text) {
  int line = 0;
  for (std::size_t i = 0; i < text.size();) {
    auto fail = [&](const char* what) {
      return BadRequest("yaml: line " + std::to_string(line + 1) + ": " + what);
    };
    std::size_t start = i;
    std::uint32_t cp = 0;
    if (const char* error = NextCodePoint(text, &i, &cp)) return fail(error);
    if (cp < 0x80) {
      if (cp == '\n') ++line;
      if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F) {
        return fail("control characters are not allowed");
      }
      continue;
    }
    bool printable = cp == 0x85 || (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
                     cp >= 0x10000;
    if (cp == 0xFEFF) printable = start == 0;  // a byte-order mark only at the start
    if (!printable) return fail("control characters are not allowed");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Scalar resolution (go-yaml v2 resolve()).

// strconv.ParseUint(s, 0, 64) digits after the sign: 0x, 0o, 0b prefixes, a leading 0 for octal.
std::optional<std::uint64_t> ParseGoUnsigned(std::string_view s) {
  int base = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16, s.remove_prefix(2);
  } else if (s.size() >= 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
    base = 2, s.remove_prefix(2);
  } else if (s.size() >= 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) {
    base = 8, s.remove_prefix(2);
  } else if (s.size() >= 2 && s[0] == '0') {
    base = 8, s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// strconv.ParseInt(s, 0, 64).
std::optional<std::int64_t> ParseGoInt(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s[0] == '+' || s[0] == '-') return std::nullopt;
  auto u = ParseGoUnsigned(s);
  if (!u) return std::nullopt;
  constexpr std::uint64_t kLimit = std::uint64_t{1} << 63;
  if (negative) {
    if (*u > kLimit) return std::nullopt;
    return *u == kLimit ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(*u);
  }
  if (*u >= kLimit) return std::nullopt;
  return static_cast<std::int64_t>(*u);
}

// ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
bool IsYamlStyleFloat(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  } else {
    if (digits() == 0) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

// strconv.ParseFloat(s, 64) for decimal text: nullopt on a syntax error or overflow; underflow
// gives zero, as in Go.
std::optional<double> ParseGoFloat(std::string_view s) {
  bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty() || s[0] == '+') return std::nullopt;
  for (char c : s) {
    // from_chars would also take "inf", "nan" and hex digits, which are not decimal floats.
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+')) {
      return std::nullopt;
    }
  }
  double d = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d, std::chars_format::general);
  if (end != s.data() + s.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) {
    std::size_t e = s.find_first_of("eE");
    bool tiny = e != std::string_view::npos && e + 1 < s.size() && s[e + 1] == '-';
    if (!tiny) return std::nullopt;
    return negative ? -0.0 : 0.0;
  }
  if (ec != std::errc()) return std::nullopt;
  return d;
}

// A float as Go's JSON round trip leaves it: integral values become integers.
Json FloatValue(double d) {
  if (std::isfinite(d) && std::trunc(d) == d && d >= -9223372036854775808.0 &&
      d < 9223372036854775808.0) {
    return Json(static_cast<std::int64_t>(d));
  }
  return Json(d);
}

// resolve() for an untagged plain scalar.
Json ResolvePlain(const std::string& in) {
  if (in.empty()) return Json(nullptr);
  char first = in[0];
  bool digit_or_sign = (first >= '0' && first <= '9') || first == '+' || first == '-';
  bool in_map_hint = std::string_view("yYnNtTfFoO~").find(first) != std::string_view::npos;
  if (!digit_or_sign && !in_map_hint && first != '.') return Json(in);

  static const std::unordered_map<std::string_view, Json>* const kMap = [] {
    auto* m = new std::unordered_map<std::string_view, Json>;
    for (const char* s :
         {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}) {
      (*m)[s] = true;
    }
    for (const char* s :
         {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}) {
      (*m)[s] = false;
    }
    for (const char* s : {"~", "null", "Null", "NULL"}) (*m)[s] = nullptr;
    for (const char* s : {".nan", ".NaN", ".NAN"}) (*m)[s] = std::nan("");
    for (const char* s : {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"}) {
      (*m)[s] = std::numeric_limits<double>::infinity();
    }
    for (const char* s : {"-.inf", "-.Inf", "-.INF"}) {
      (*m)[s] = -std::numeric_limits<double>::infinity();
    }
    return m;
  }();
  if (auto it = kMap->find(in); it != kMap->end()) return it->second;

  if (first == '.') {
    if (auto d = ParseGoFloat(in)) return FloatValue(*d);
    return Json(in);
  }
  if (!digit_or_sign) return Json(in);
  std::string plain;
  plain.reserve(in.size());
  for (char c : in) {
    if (c != '_') plain += c;
  }
  if (auto i = ParseGoInt(plain)) return Json(*i);
  if (plain[0] != '+' && plain[0] != '-') {
    if (auto u = ParseGoUnsigned(plain)) return Json(*u);
  }
  if (IsYamlStyleFloat(plain)) {
    if (auto d = ParseGoFloat(plain)) return FloatValue(*d);
  }
  return Json(in);
}

const char* TypeOfResolved(const Json& v) {
  if (v.is_null()) return "!!null";
  if (v.is_boolean()) return "!!bool";
  if (v.is_number_integer()) return "!!int";
  if (v.is_number()) return "!!float";
  return "!!str";
}

constexpr std::string_view kYamlTagPrefix = "tag:yaml.org,2002:";

// The JSON value of a scalar with yaml-cpp's tag: "?" for plain scalars, "!" for quoted and
// block scalars, otherwise the explicit tag (with "!!" expanded).
Json ResolveScalar(const YAML::Mark& mark, const std::string& tag, const std::string& value) {
  if (tag == "?") return ResolvePlain(value);
  if (tag.compare(0, kYamlTagPrefix.size(), kYamlTagPrefix) != 0) return Json(value);
  std::string_view type = std::string_view(tag).substr(kYamlTagPrefix.size());
  // !!str, !!timestamp and unknown tags give strings; so does !!binary, kept as its base64 text
  // (go-yaml would decode it).
  if (type != "int" && type != "float" && type != "bool" && type != "null") return Json(value);
  Json resolved = ResolvePlain(value);
  bool ok = (type == "int" && resolved.is_number_integer()) ||
            (type == "float" && resolved.is_number()) ||
            (type == "bool" && resolved.is_boolean()) || (type == "null" && resolved.is_null());
  if (!ok) {
    Fail(mark, "cannot decode " + std::string(TypeOfResolved(resolved)) + " `" + value +
                   "` as a !!" + std::string(type));
  }
  return resolved;
}

// Keys become strings the way sigs.k8s.io/yaml converts them.
std::string KeyString(const YAML::Mark& mark, const Json& key) {
  switch (key.type()) {
    case Json::value_t::string:
      return key.get<std::string>();
    case Json::value_t::boolean:
      return key.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer:
      return std::to_string(key.get<std::int64_t>());
    case Json::value_t::number_unsigned:
      return std::to_string(key.get<std::uint64_t>());
    case Json::value_t::number_float: {
      double d = key.get<double>();
      if (std::isnan(d)) return ".nan";
      if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<float>(d));
      if (ec != std::errc()) return base::DumpJson(key);
      return std::string(buf, end);
    }
    case Json::value_t::null:
      Fail(mark, "unsupported map key: null");
    case Json::value_t::object:
      Fail(mark, "unsupported map key: a mapping");
    case Json::value_t::array:
      Fail(mark, "unsupported map key: a sequence");
    default:
      Fail(mark, "unsupported map key");
  }
}

// ---------------------------------------------------------------------------------------------
// Building JSON from yaml-cpp events.

class JsonBuilder final : public YAML::EventHandler {
 public:
  explicit JsonBuilder(std::size_t alias_budget) : alias_budget_(alias_budget) {}

  // The value of the last document handled (null for an empty one).
  Json TakeDocument() { return std::move(document_); }

  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp 0.7 reports endless empty documents at a stray "," without moving on; a document
    // that starts where the previous one did means no progress.
    if (last_document_start_ >= 0 && mark.pos <= last_document_start_) {
      Fail(mark, "did not find expected node content");
    }
    last_document_start_ = mark.pos;
    frames_.clear();
    anchors_.clear();
    document_ = nullptr;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Emit(mark, Json(nullptr), 0, 1, anchor, false);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      Fail(mark, "anchor referenced by an alias inside its own node");
    }
    alias_cost_ += it->second.cost;
    if (alias_cost_ > alias_budget_) Fail(mark, "document contains excessive aliasing");
    Emit(mark, Json(it->second.value), it->second.depth, it->second.cost, 0, false);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    // Escapes in double-quoted scalars can spell what UTF-8 cannot carry ("\\ud800").
    if (!IsValidUtf8(value)) Fail(mark, "found invalid Unicode character escape code");
    bool merge_key = tag == "?" && value == "<<";
    Emit(mark, ResolveScalar(mark, tag, value), 0, 1 + value.size(), anchor, merge_key);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Push(mark, Json::array(), anchor);
  }
  void OnSequenceEnd() override { Pop(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Push(mark, Json::object(), anchor);
  }
  void OnMapEnd() override { Pop(); }

 private:
  struct Frame {
    YAML::Mark mark;
    Json value;
    YAML::anchor_t anchor = 0;
    int depth = 1;         // of this collection, counting itself
    std::size_t cost = 1;  // values and string bytes inside
    bool has_key = false;  // a map's key is waiting for its value
    bool key_is_merge = false;
    std::string key;
    Json merged = Json::object();  // entries from "<<" keys; explicit keys win over them
  };

  struct Anchored {
    Json value;
    int depth = 0;
    std::size_t cost = 0;
  };

  void Push(const YAML::Mark& mark, Json value, YAML::anchor_t anchor) {
    if (frames_.size() >= static_cast<std::size_t>(base::kMaxJsonDepth)) {
      Fail(mark, "nesting deeper than " + std::to_string(base::kMaxJsonDepth) + " levels");
    }
    Frame f;
    f.mark = mark;
    f.value = std::move(value);
    f.anchor = anchor;
    frames_.push_back(std::move(f));
  }

  void Pop() {
    Frame f = std::move(frames_.back());
    frames_.pop_back();
    if (f.value.is_object()) {
      for (auto it = f.merged.begin(); it != f.merged.end(); ++it) {
        if (!f.value.contains(it.key())) f.value[it.key()] = std::move(*it);
      }
    }
    Emit(f.mark, std::move(f.value), f.depth, f.cost, f.anchor, false);
  }

  // Places a finished value (of nesting `depth`, expansion cost `cost`) into its parent.
  void Emit(const YAML::Mark& mark, Json value, int depth, std::size_t cost, YAML::anchor_t anchor,
            bool merge_key) {
    if (frames_.size() + static_cast<std::size_t>(depth) >
        static_cast<std::size_t>(base::kMaxJsonDepth)) {
      Fail(mark, "nesting deeper than " + std::to_string(base::kMaxJsonDepth) + " levels");
    }
    if (anchor != 0) {
      // Keeping a copy costs like expanding it once; nested anchors would otherwise copy the
      // innermost content once per level.
      alias_cost_ += cost;
      if (alias_cost_ > alias_budget_) Fail(mark, "document contains excessive aliasing");
      anchors_[anchor] = Anchored{value, depth, cost};
    }
    bool is_key = !frames_.empty() && frames_.back().value.is_object() && !frames_.back().has_key;
    if (!is_key && value.is_number_float() && !std::isfinite(value.get<double>())) {
      Fail(mark, "unsupported value: " +
                     std::string(std::isnan(value.get<double>()) ? "NaN"
                                 : value.get<double>() > 0       ? "+Inf"
                                                                 : "-Inf") +
                     " (JSON has no infinities or NaN)");
    }
    if (frames_.empty()) {
      document_ = std::move(value);
      return;
    }
    Frame& f = frames_.back();
    f.cost += cost;
    f.depth = std::max(f.depth, depth + 1);
    if (f.value.is_array()) {
      f.value.push_back(std::move(value));
      return;
    }
    if (is_key) {
      f.key = KeyString(mark, value);
      f.key_is_merge = merge_key;
      f.has_key = true;
      return;
    }
    f.has_key = false;
    if (f.key_is_merge) {
      Merge(mark, f, value);
      return;
    }
    f.value[f.key] = std::move(value);
  }

  // "<<: *base" or "<<: [*a, *b]": earlier maps win over later ones.
  static void Merge(const YAML::Mark& mark, Frame& f, const Json& value) {
    auto merge_one = [&](const Json& m) {
      for (auto it = m.begin(); it != m.end(); ++it) {
        if (!f.merged.contains(it.key())) f.merged[it.key()] = *it;
      }
    };
    if (value.is_object()) {
      merge_one(value);
      return;
    }
    if (value.is_array()) {
      for (const Json& m : value) {
        if (!m.is_object()) Fail(mark, "map merge requires map or sequence of maps as the value");
      }
      for (const Json& m : value) merge_one(m);
      return;
    }
    Fail(mark, "map merge requires map or sequence of maps as the value");
  }

  int last_document_start_ = -1;
  std::size_t alias_budget_;
  std::size_t alias_cost_ = 0;  // across all documents of the stream
  std::vector<Frame> frames_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  Json document_;
};

// Converts the documents of `text`; only the first unless `all`.
Status Convert(std::string_view text, bool all, std::vector<Json>* out) {
  RETURN_IF_ERROR(CheckText(text));
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    JsonBuilder builder(std::max(kMinAliasBudget, 2 * text.size()));
    while (parser.HandleNextDocument(builder)) {
      out->push_back(builder.TakeDocument());
      if (!all) break;
    }
  } catch (const YamlError& e) {
    return ErrorStatus(e.mark, e.message);
  } catch (const YAML::Exception& e) {
    return ErrorStatus(e.mark, e.msg);
  } catch (const std::exception& e) {
    return BadRequest(std::string("yaml: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace

Result<Json> YamlToJson(std::string_view text) {
  std::vector<Json> documents;
  RETURN_IF_ERROR(Convert(text, /*all=*/false, &documents));
  if (documents.empty()) return Json(nullptr);
  return std::move(documents.front());
}

Result<std::vector<Json>> YamlDocumentsToJson(std::string_view text) {
  std::vector<Json> documents;
  RETURN_IF_ERROR(Convert(text, /*all=*/true, &documents));
  std::vector<Json> out;
  for (Json& d : documents) {
    if (!d.is_null()) out.push_back(std::move(d));
  }
  return out;
}

}  // namespace fulcrum::api
