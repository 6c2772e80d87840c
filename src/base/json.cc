#include "base/json.h"

#include <algorithm>

namespace fulcrum::base {
namespace {

// Depth of the deepest nesting outside string literals, stopping early once over the limit.
int NestingDepth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

Status ParseJson(std::string_view text, Json* out, std::vector<std::string>* duplicate_keys) {
  if (NestingDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return BadRequest("JSON nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    if (duplicate_keys == nullptr) {
      *out = Json::parse(text.begin(), text.end());
    } else {
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
