#include "base/json.h"

#include <algorithm>

namespace fulcrum::base {
namespace {

// What a scan of the text finds outside string literals: the deepest nesting (the scan stops
// early once it is over the limit) and the number of object keys (strings followed by ':').
struct TextShape {
  int depth = 0;
  std::size_t keys = 0;
};

TextShape ScanJson(std::string_view text, int limit) {
  TextShape shape;
  int depth = 0;
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; ++i) {
    char c = text[i];
    if (c == '"') {
      ++i;
      while (i < n && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      std::size_t next = i + 1;
      while (next < n && (text[next] == ' ' || text[next] == '\n' || text[next] == '\r' ||
                          text[next] == '\t')) {
        ++next;
      }
      if (next < n && text[next] == ':') ++shape.keys;
    } else if (c == '{' || c == '[') {
      if (++depth > shape.depth) {
        shape.depth = depth;
        if (shape.depth > limit) return shape;
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return shape;
}

// Object keys in a parsed document; fewer than in its text when a key was given twice.
std::size_t CountKeys(const Json& j) {
  std::size_t n = 0;
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) n += 1 + CountKeys(v);
  } else if (j.is_array()) {
    for (const auto& v : j) n += CountKeys(v);
  }
  return n;
}

}  // namespace

Status ParseJson(std::string_view text, Json* out, std::vector<std::string>* duplicate_keys) {
  TextShape shape = ScanJson(text, kMaxJsonDepth);
  if (shape.depth > kMaxJsonDepth) {
    return BadRequest("JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    // The plain parser is several times faster than one with a callback. Duplicate keys are rare:
    // only when the parsed document has fewer keys than the text is it parsed again to name them.
    *out = Json::parse(text.begin(), text.end());
    if (duplicate_keys != nullptr && CountKeys(*out) != shape.keys) {
      std::vector<std::vector<std::string>> seen;  // keys of each open object
      Json::parser_callback_t track = [&](int, Json::parse_event_t event, Json& parsed) {
        if (event == Json::parse_event_t::object_start) {
          seen.emplace_back();
        } else if (event == Json::parse_event_t::object_end) {
          if (!seen.empty()) seen.pop_back();
        } else if (event == Json::parse_event_t::key && !seen.empty() && parsed.is_string()) {
          const auto& key = parsed.get_ref<const std::string&>();
          auto& keys = seen.back();
          if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
            duplicate_keys->push_back(key);
          } else {
            keys.push_back(key);
          }
        }
        return true;
      };
      *out = Json::parse(text.begin(), text.end(), track);
    }
  } catch (const Json::exception& e) {
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; keep the part a person can use.
    auto pos = what.find("] ");
    if (pos != std::string::npos) what = what.substr(pos + 2);
    return BadRequest("invalid JSON: " + what);
  }
  return Status::Ok();
}

std::string DumpJson(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

const Json* FindPath(const Json& j, std::initializer_list<const char*> path) {
  const Json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::string StringAt(const Json& j, std::initializer_list<const char*> path) {
  const Json* v = FindPath(j, path);
  if (v == nullptr || !v->is_string()) return "";
  return v->get<std::string>();
}

std::string Quote(std::string_view s) { return DumpJson(Json(std::string(s))); }

}  // namespace fulcrum::base
