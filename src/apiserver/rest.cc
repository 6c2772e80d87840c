#include "apiserver/rest.h"

#include <chrono>

#include "api/patch.h"
#include "api/protobuf.h"
#include "api/selector.h"
#include "api/yaml.h"
#include "base/base64.h"
#include "base/log.h"

namespace fulcrum::apiserver {
namespace {

using base::Code;

constexpr auto kBookmarkInterval = std::chrono::seconds(30);
constexpr auto kFreshTimeout = std::chrono::seconds(5);

int HttpCode(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kBadRequest: return 400;
    case Code::kUnauthorized: return 401;
    case Code::kForbidden: return 403;
    case Code::kNotFound: return 404;
    case Code::kMethodNotAllowed: return 405;
    case Code::kNotAcceptable: return 406;
    case Code::kAlreadyExists: return 409;
    case Code::kConflict: return 409;
    case Code::kGone: return 410;
    case Code::kRequestTooLarge: return 413;
    case Code::kUnsupportedMediaType: return 415;
    case Code::kInvalid: return 422;
    case Code::kTooManyRequests: return 429;
    case Code::kInternal: return 500;
    case Code::kUnavailable: return 503;
    case Code::kTimeout: return 504;
  }
  return 500;
}

Json StatusJson(const base::Status& status, const RequestInfo* info,
                const api::FieldErrors* causes) {
  Json j = {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", Json::object()}};
  if (status.ok()) {
    j["status"] = "Success";
    j["code"] = 200;
    return j;
  }
  j["status"] = "Failure";
  j["message"] = status.message();
  j["reason"] = base::CodeName(status.code());
  j["code"] = HttpCode(status.code());
  if (info != nullptr && info->type != nullptr) {
    Json details = Json::object();
    if (!info->name.empty()) details["name"] = info->name;
    if (!info->type->group.empty()) details["group"] = info->type->group;
    details["kind"] = status.code() == Code::kInvalid ? info->type->kind : info->type->plural;
    if (causes != nullptr && !causes->empty()) {
      Json list = Json::array();
      for (const auto& c : *causes) {
        list.push_back({{"reason", c.type}, {"message", c.detail}, {"field", c.field}});
      }
      details["causes"] = std::move(list);
    }
    j["details"] = std::move(details);
  }
  return j;
}

HttpResponse JsonResponse(int code, std::string body) {
  HttpResponse r;
  r.status = code;
  r.body = std::move(body);
  return r;
}

// The media type of a Content-Type header, lower-cased, without parameters.
std::string MediaType(const std::string& content_type) {
  std::string m = content_type.substr(0, content_type.find(';'));
  while (!m.empty() && m.back() == ' ') m.pop_back();
  for (char& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return m;
}

// Decodes a request body given as JSON, YAML or Kubernetes protobuf. Keys given twice in one JSON
// object are appended to `duplicate_keys` when it is not null.
base::Status DecodeBody(const HttpRequest& request, Json* out,
                        std::vector<std::string>* duplicate_keys = nullptr) {
  std::string media = MediaType(request.Header("content-type"));
  if (request.body.empty()) return base::BadRequest("the request body is empty");
  if (media == "application/yaml" || media == "application/apply-patch+yaml" ||
      media == "text/yaml") {
    auto parsed = api::YamlToJson(request.body);
    if (!parsed.ok()) return parsed.status();
    *out = std::move(parsed).value();
    return base::Status::Ok();
  }
  if (media == api::kProtobufMediaType) {
    auto decoded = api::DecodeKubernetesProtobuf(request.body);
    if (!decoded.ok()) return decoded.status();
    *out = std::move(decoded).value();
    return base::Status::Ok();
  }
  if (media.find("protobuf") != std::string::npos || media.find("cbor") != std::string::npos) {
    return base::Status(Code::kUnsupportedMediaType,
                        "the body of the request was in an unknown format - accepted media types "
                        "include: application/json, application/yaml, "
                        "application/vnd.kubernetes.protobuf");
  }
  return base::ParseJson(request.body, out, duplicate_keys);
}

bool WantsTable(const HttpRequest& request) {
  return request.Header("accept").find("as=Table") != std::string::npos;
}

// Applies fieldValidation=Strict|Warn|Ignore to a decoded object. Returns BadRequest under Strict;
// under Warn adds Warning headers.
// Drops the fields the kind does not have, as Kubernetes' decoder does, and applies
// fieldValidation=Strict|Warn|Ignore to them and to keys given twice: BadRequest under Strict,
// Warning headers under Warn (the default).
base::Status CheckUnknownFields(const HttpRequest& request, const api::ResourceType& type,
                                Json& obj, const std::vector<std::string>& duplicate_keys,
                                HttpResponse* response) {
  std::string mode = request.Query("fieldValidation", "Warn");
  std::vector<std::string> problems;
  for (const auto& key : duplicate_keys) problems.push_back("duplicate field \"" + key + "\"");
  if (obj.is_object()) {
    if (auto unknown = api::PruneUnknownFields(obj, type.GroupVersion(), type.kind)) {
      for (const auto& f : *unknown) problems.push_back("unknown field \"" + f + "\"");
    }
  }
  if (problems.empty() || mode == "Ignore") return base::Status::Ok();
  if (mode == "Strict") {
    std::string msg = "strict decoding error: ";
    for (std::size_t i = 0; i < problems.size(); ++i) msg += (i ? ", " : "") + problems[i];
    return base::BadRequest(msg);
  }
  for (const auto& p : problems) {
    std::string quoted;
    for (char c : p) quoted += c == '"' ? std::string("\\\"") : std::string(1, c);
    response->headers.emplace_back("Warning", "299 - \"" + quoted + "\"");
  }
  return base::Status::Ok();
}

// Checks that a body's apiVersion and kind, when given, name this endpoint's kind.
base::Status CheckKind(const api::ResourceType& type, const Json& obj, const std::string& kind,
                       const std::string& api_version) {
  if (!obj.is_object()) return base::BadRequest("the request body must be a JSON or YAML object");
  std::string got_kind = base::StringAt(obj, {"kind"});
  std::string got_version = base::StringAt(obj, {"apiVersion"});
  if (obj.contains("kind") && !obj["kind"].is_string()) {
    return base::BadRequest("kind: must be a string");
  }
  if (!got_version.empty() && got_version != api_version) {
    return base::BadRequest("the API version in the data (" + got_version +
                            ") does not match the expected API version (" + api_version + ")");
  }
  if (!got_kind.empty() && got_kind != kind) {
    return base::BadRequest("the kind in the data (" + got_kind +
                            ") does not match the expected kind (" + kind + ")");
  }
  return base::Status::Ok();
}

// The object in a create or update body: decoded, of this endpoint's kind, unknown fields handled
// per fieldValidation (warnings go into response->headers).
base::Status DecodeObject(const HttpRequest& request, const api::ResourceType& type, Json* body,
                          HttpResponse* response) {
  std::vector<std::string> duplicates;
  RETURN_IF_ERROR(DecodeBody(request, body, &duplicates));
  RETURN_IF_ERROR(CheckKind(type, *body, type.kind, type.GroupVersion()));
  return CheckUnknownFields(request, type, *body, duplicates, response);
}

// Namespace, label and field selectors of a list or watch, as one filter. When the label selector
// requires one key=value pair, *index_label (if given) receives it for an index lookup.
base::Status BuildFilter(const HttpRequest& request, const api::ResourceType& type,
                         ObjectFilter* filter,
                         std::optional<std::pair<std::string, std::string>>* index_label = nullptr) {
  std::optional<api::LabelSelector> labels;
  std::string label_text = request.Query("labelSelector");
  if (!label_text.empty()) {
    auto parsed = api::LabelSelector::Parse(label_text);
    if (!parsed.ok()) return parsed.status();
    if (!parsed->Empty()) labels = std::move(parsed).value();
    if (labels && index_label != nullptr) *index_label = labels->EqualityRequirement();
  }
  std::optional<api::FieldSelector> fields;
  std::string field_text = request.Query("fieldSelector");
  if (!field_text.empty()) {
    auto parsed = api::FieldSelector::Parse(field_text);
    if (!parsed.ok()) return parsed.status();
    // Reject fields this kind cannot select on, as Kubernetes does.
    Json probe = Json::object();
    for (const auto& field : parsed->fields()) {
      if (field == "metadata.name" || field == "metadata.namespace") continue;
      std::string unused;
      Json sample = {{"metadata", Json::object()}, {"spec", Json::object()},
                     {"status", Json::object()}};
      if (!type.selectable_field || !type.selectable_field(sample, field, &unused)) {
        return base::BadRequest("field label not supported: " + field);
      }
    }
    fields = std::move(parsed).value();
  }
  if (!labels && !fields) {
    *filter = nullptr;
    return base::Status::Ok();
  }
  const api::ResourceType* t = &type;
  *filter = [labels = std::move(labels), fields = std::move(fields), t](const CachedObject& o) {
    if (labels && !labels->Matches(o.labels)) return false;
    if (!fields) return true;
    std::optional<Json> parsed;
    return fields->Matches([&](std::string_view field, std::string* value) {
      if (field == "metadata.name") {
        *value = o.name;
        return true;
      }
      if (field == "metadata.namespace") {
        *value = o.namespace_;
        return true;
      }
      for (const auto& [k, v] : o.fields) {
        if (k == field) {
          *value = v;
          return true;
        }
      }
      if (!parsed) {
        parsed.emplace();
        if (!base::ParseJson(o.json, &*parsed).ok()) return false;
      }
      return t->selectable_field && t->selectable_field(*parsed, field, value);
    });
  };
  return base::Status::Ok();
}

// --- Tables (meta.k8s.io/v1 Table) ---

Json TableColumns(const api::ResourceType& type) {
  Json cols = Json::array();
  if (type.server_adds_name_column) {
    cols.push_back({{"name", "Name"},
                  {"type", "string"},
                  {"format", "name"},
                  {"description", "Name must be unique within a namespace."},
                    {"priority", 0}});
  }
  for (const auto& c : type.columns) {
    cols.push_back({{"name", c.name},
                    {"type", c.type},
                    {"format", c.format},
                    {"description", c.description},
                    {"priority", c.priority}});
  }
  return cols;
}

Json TableRow(const api::ResourceType& type, const CachedObject& o, const std::string& include,
              base::WallTime now) {
  Json obj;
  if (!base::ParseJson(o.json, &obj).ok()) obj = Json::object();
  Json cells = type.server_adds_name_column ? Json::array({o.name}) : Json::array();
  if (type.cells) {
    for (auto& c : type.cells(obj, now)) cells.push_back(std::move(c));
  }
  Json row = {{"cells", std::move(cells)}};
  if (include == "Object") {
    row["object"] = std::move(obj);
  } else if (include != "None") {
    row["object"] = {{"kind", "PartialObjectMetadata"},
                     {"apiVersion", "meta.k8s.io/v1"},
                     {"metadata", obj.value("metadata", Json::object())}};
  }
  return row;
}

std::string TableJson(const api::ResourceType& type, const std::vector<ObjectPtr>& items,
                      const HttpRequest& request, int64_t rv, const std::string& cont,
                      bool with_columns, base::WallTime now) {
  Json table = {{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}};
  Json meta = Json::object();
  if (rv > 0) meta["resourceVersion"] = std::to_string(rv);
  if (!cont.empty()) meta["continue"] = cont;
  table["metadata"] = std::move(meta);
  table["columnDefinitions"] = with_columns ? TableColumns(type) : Json::array();
  Json rows = Json::array();
  std::string include = request.Query("includeObject", "Metadata");
  for (const auto& o : items) rows.push_back(TableRow(type, *o, include, now));
  table["rows"] = std::move(rows);
  return base::DumpJson(table);
}

// --- Watch ---

const char* EventTypeName(CacheEvent::Type t) {
  switch (t) {
    case CacheEvent::Type::kAdded: return "ADDED";
    case CacheEvent::Type::kModified: return "MODIFIED";
    case CacheEvent::Type::kDeleted: return "DELETED";
  }
  return "ERROR";
}

// One watch: events taken from a cache watcher without blocking, each framed as a chunk holding
// one JSON line. Plain JSON events are framed once per event and the same bytes go to every
// watcher (EventBytes, one slot per event type as delivered); table events depend on the request
// and are framed per watcher.
class WatchStream : public HttpStream {
 public:
  WatchStream(const api::ResourceType& type, WatchCache* cache,
              std::shared_ptr<CacheWatcher> watcher, const HttpRequest& request,
              base::Clock* clock, bool table, bool bookmarks,
              bool initial_events_end, std::chrono::seconds timeout)
      : type_(type),
        cache_(cache),
        watcher_(std::move(watcher)),
        request_(request),
        clock_(clock),
        table_(table),
        bookmarks_(bookmarks),
        initial_events_end_(initial_events_end),
        end_(std::chrono::steady_clock::now() + timeout),
        next_bookmark_(std::chrono::steady_clock::now() + kBookmarkInterval) {
    request_.body.clear();
  }

  void Start(std::function<void()> wake) override { watcher_->SetWake(std::move(wake)); }

  bool Poll(TimePoint now, std::size_t max_bytes, std::vector<SharedBytes>* out,
            TimePoint* poll_at) override {
    if (now >= end_) return false;
    std::size_t bytes = 0;
    bool alive = true;
    while (alive && bytes < max_bytes) {
      events_.clear();
      alive = watcher_->Take(&events_, kTakeBatch);
      for (const auto& e : events_) {
        out->push_back(Encode(e));
        bytes += out->back()->size();
      }
      if (events_.size() < kTakeBatch) break;
    }
    events_.clear();
    if (initial_events_end_ && !watcher_->InitialPending()) {
      initial_events_end_ = false;
      out->push_back(Bookmark(true));
    }
    if (bookmarks_ && now >= next_bookmark_) {
      out->push_back(Bookmark(false));
      next_bookmark_ = now + kBookmarkInterval;
    }
    *poll_at = bookmarks_ ? std::min(end_, next_bookmark_) : end_;
    return alive;
  }

  bool Abandoned() const override { return watcher_->Dropped(); }

  void Cancel() override { watcher_->Cancel(); }

 private:
  static constexpr std::size_t kTakeBatch = 64;

  static std::string FrameText(std::string_view type, std::string_view object) {
    std::string line;
    line.reserve(object.size() + 32);
    line += "{\"type\":\"";
    line += type;
    line += "\",\"object\":";
    line += object;
    line += "}\n";
    return HttpChunk(line);
  }

  static SharedBytes Frame(std::string_view type, std::string_view object) {
    return std::make_shared<const std::string>(FrameText(type, object));
  }

  SharedBytes Encode(const CacheEvent& e) {
    const char* type = EventTypeName(e.type);
    if (table_) {
      std::string table = TableJson(type_, {e.object}, request_, e.object->resource_version, "",
                                    !sent_columns_, clock_->Now());
      sent_columns_ = true;
      return Frame(type, table);
    }
    if (!e.bytes) return Frame(type, e.object->json);
    return e.bytes->Get(static_cast<std::size_t>(e.type),
                        [&] { return FrameText(type, e.object->json); });
  }

  SharedBytes Bookmark(bool initial_end) {
    Json meta = {{"resourceVersion", std::to_string(cache_->BookmarkRevision(*watcher_))}};
    if (initial_end) meta["annotations"] = {{"k8s.io/initial-events-end", "true"}};
    Json obj = {{"kind", type_.kind}, {"apiVersion", type_.GroupVersion()}, {"metadata", meta}};
    return Frame("BOOKMARK", base::DumpJson(obj));
  }

  const api::ResourceType& type_;
  WatchCache* cache_;
  std::shared_ptr<CacheWatcher> watcher_;
  HttpRequest request_;
  base::Clock* clock_;
  bool table_;
  bool bookmarks_;
  bool initial_events_end_;
  bool sent_columns_ = false;
  TimePoint end_;
  TimePoint next_bookmark_;
  std::vector<CacheEvent> events_;  // reused between polls
};

base::Status ParseRv(const std::string& text, int64_t* rv) {
  try {
    std::size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used != text.size() || v < 0) throw std::invalid_argument("rv");
    *rv = v;
    return base::Status::Ok();
  } catch (...) {
    return base::BadRequest("resourceVersion: Invalid value: \"" + text +
                            "\": must be a non-negative integer");
  }
}

HttpResponse Watch(Objects& objects, const HttpRequest& request, const RequestInfo& info) {
  const api::ResourceType& type = *info.type;
  ObjectFilter filter;
  if (auto s = BuildFilter(request, type, &filter); !s.ok()) return StatusResponse(s, &info);
  if (!info.name.empty()) {
    std::string name = info.name;
    ObjectFilter inner = std::move(filter);
    filter = [name, inner](const CachedObject& o) { return o.name == name && (!inner || inner(o)); };
  }
  std::string rv_text = request.Query("resourceVersion");
  bool send_initial = request.Query("sendInitialEvents") == "true";
  int64_t after = -1;
  if (rv_text.empty()) {
    if (auto s = objects.cache().WaitForFresh(kFreshTimeout); !s.ok()) {
      return StatusResponse(s, &info);
    }
  } else if (rv_text != "0" || !send_initial) {
    int64_t rv = 0;
    if (auto s = ParseRv(rv_text, &rv); !s.ok()) return StatusResponse(s, &info);
    if (rv > 0) {
      if (auto s = objects.cache().WaitForRevision(rv, std::chrono::seconds(3)); !s.ok()) {
        return StatusResponse(s, &info);
      }
      after = rv;
    }
  }
  if (send_initial) after = -1;
  auto watcher = objects.cache().Watch(type, info.namespace_, std::move(filter), after);
  HttpResponse response;
  response.content_type = "application/json";
  if (!watcher.ok()) {
    // Kubernetes answers 200 and reports the expired version as an ERROR event.
    Json ev = {{"type", "ERROR"}, {"object", StatusJson(watcher.status(), &info, nullptr)}};
    response.body = base::DumpJson(ev) + "\n";
    return response;
  }
  long timeout = 1800;
  if (std::string t = request.Query("timeoutSeconds"); !t.empty()) {
    try {
      timeout = std::stol(t);
    } catch (...) {
      return StatusResponse(base::BadRequest("timeoutSeconds: must be an integer"), &info);
    }
  }
  response.headers.emplace_back("Cache-Control", "no-cache, private");
  response.stream = std::make_shared<WatchStream>(
      type, &objects.cache(), std::move(watcher).value(), request, &objects.clock(), WantsTable(request),
      request.Query("allowWatchBookmarks") == "true", send_initial,
      std::chrono::seconds(std::max(1L, timeout)));
  return response;
}

// --- List ---

HttpResponse List(Objects& objects, const HttpRequest& request, const RequestInfo& info) {
  const api::ResourceType& type = *info.type;
  ObjectFilter filter;
  std::optional<std::pair<std::string, std::string>> index_label;
  if (auto s = BuildFilter(request, type, &filter, &index_label); !s.ok()) {
    return StatusResponse(s, &info);
  }
  std::string rv_text = request.Query("resourceVersion");
  std::string cont = request.Query("continue");
  std::string after_key;
  if (!cont.empty()) {
    std::string decoded;
    Json token;
    std::size_t bad = 0;
    if (!base::Base64Decode(cont, &decoded, &bad) || !base::ParseJson(decoded, &token).ok() ||
        !token.is_object() || !token.contains("start") || !token["start"].is_string()) {
      return StatusResponse(base::BadRequest("continue key is not valid: illegal base64 data"),
                            &info);
    }
    after_key = token["start"].get<std::string>();
  } else if (rv_text.empty()) {
    if (auto s = objects.cache().WaitForFresh(kFreshTimeout); !s.ok()) {
      return StatusResponse(s, &info);
    }
  } else if (rv_text != "0") {
    int64_t rv = 0;
    if (auto s = ParseRv(rv_text, &rv); !s.ok()) return StatusResponse(s, &info);
    if (auto s = objects.cache().WaitForRevision(rv, std::chrono::seconds(3)); !s.ok()) {
      return StatusResponse(s, &info);
    }
  }
  std::size_t limit = 0;
  if (std::string l = request.Query("limit"); !l.empty()) {
    try {
      long long v = std::stoll(l);
      if (v > 0) limit = static_cast<std::size_t>(v);
    } catch (...) {
      return StatusResponse(base::BadRequest("limit: must be an integer"), &info);
    }
  }
  ListResult result;
  if (request.Query("resourceVersionMatch") == "Exact") {
    int64_t rv = 0;
    if (auto s = ParseRv(rv_text, &rv); !s.ok() || rv == 0) {
      return StatusResponse(base::BadRequest("resourceVersionMatch: Forbidden: resourceVersionMatch "
                                             "\"Exact\" is forbidden for resourceVersion \"" +
                                             rv_text + "\""),
                            &info);
    }
    auto at = objects.cache().ListAt(type, info.namespace_, filter, after_key, limit, rv);
    if (!at.ok()) return StatusResponse(at.status(), &info);
    result = std::move(at).value();
  } else {
    result = objects.cache().List(type, info.namespace_, filter, after_key, limit,
                                  index_label ? &*index_label : nullptr);
  }
  std::string next;
  if (result.more && !result.items.empty()) {
    Json token = {{"rv", result.resource_version}, {"start", result.items.back()->key}};
    next = base::Base64Encode(base::DumpJson(token));
  }
  if (WantsTable(request)) {
    return JsonResponse(200, TableJson(type, result.items, request, result.resource_version, next,
                                       true, objects.clock().Now()));
  }
  std::size_t size = 128;
  for (const auto& o : result.items) size += o->json.size() + 1;
  std::string body;
  body.reserve(size);
  body += "{\"kind\":\"" + type.ListKind() + "\",\"apiVersion\":\"" + type.GroupVersion() +
          "\",\"metadata\":{\"resourceVersion\":\"" + std::to_string(result.resource_version) +
          "\"";
  if (!next.empty()) body += ",\"continue\":\"" + next + "\"";
  body += "},\"items\":[";
  for (std::size_t i = 0; i < result.items.size(); ++i) {
    if (i > 0) body += ',';
    body += result.items[i]->json;
  }
  body += "]}";
  return JsonResponse(200, std::move(body));
}

// --- Single objects ---

HttpResponse ObjectResponse(int code, const ObjectPtr& obj, const HttpRequest& request,
                            const api::ResourceType& type, base::Clock& clock) {
  if (WantsTable(request)) {
    return JsonResponse(code, TableJson(type, {obj}, request, obj->resource_version, "", true,
                                        clock.Now()));
  }
  return JsonResponse(code, obj->json);
}

HttpResponse Failure(const base::Status& s, const RequestInfo& info,
                     const api::FieldErrors& causes) {
  return StatusResponse(s, &info, &causes);
}

WriteOptions ParseWriteOptions(const HttpRequest& request) {
  WriteOptions options;
  options.dry_run = request.Query("dryRun") == "All";
  return options;
}

// autoscaling/v1 Scale of a Deployment or ReplicaSet.
Json ScaleOf(const Json& obj) {
  Json selector = base::FindPath(obj, {"spec", "selector", "matchLabels"})
                      ? obj["spec"]["selector"]["matchLabels"]
                      : Json::object();
  std::string sel;
  for (const auto& [k, v] : selector.items()) {
    if (!sel.empty()) sel += ",";
    sel += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  const Json& meta = obj["metadata"];
  Json scale_meta = Json::object();
  for (const char* f : {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"}) {
    if (meta.contains(f)) scale_meta[f] = meta[f];
  }
  return {{"kind", "Scale"},
          {"apiVersion", "autoscaling/v1"},
          {"metadata", scale_meta},
          {"spec", {{"replicas", obj["spec"].value("replicas", 0)}}},
          {"status",
           {{"replicas", obj.contains("status") ? obj["status"].value("replicas", 0) : 0},
            {"selector", sel}}}};
}

Result<Json> ApplyPatch(const HttpRequest& request, const api::ResourceType& type,
                        const Json& current, const Json& patch) {
  std::string media = MediaType(request.Header("content-type"));
  if (media == "application/json-patch+json") return api::ApplyJsonPatch(current, patch);
  if (media == "application/merge-patch+json") return api::ApplyMergePatch(current, patch);
  if (media == "application/strategic-merge-patch+json") {
    return api::ApplyStrategicMergePatch(current, patch, type.group, type.kind);
  }
  return base::Status(Code::kUnsupportedMediaType,
                      "the body of the request was in an unknown format - accepted media types "
                      "include: application/json-patch+json, application/merge-patch+json, "
                      "application/strategic-merge-patch+json");
}

HttpResponse Scale(Objects& objects, const HttpRequest& request, const RequestInfo& info) {
  const api::ResourceType& type = *info.type;
  if (info.verb == "get") {
    auto obj = objects.GetFresh(type, info.namespace_, info.name);
    if (!obj.ok()) return StatusResponse(obj.status(), &info);
    Json j;
    (void)base::ParseJson((*obj)->json, &j);
    return JsonResponse(200, base::DumpJson(ScaleOf(j)));
  }
  Json body;
  if (auto s = DecodeBody(request, &body); !s.ok()) return StatusResponse(s, &info);
  api::FieldErrors causes;
  auto written = objects.Mutate(
      type, info.namespace_, info.name,
      [&](const Json& current) -> Result<Json> {
        Json scale = ScaleOf(current);
        Json next_scale;
        if (info.verb == "patch") {
          ASSIGN_OR_RETURN(next_scale, ApplyPatch(request, type, scale, body));
        } else {
          next_scale = body;
        }
        // Go clients omit a zero spec.replicas (omitempty), so absent means 0.
        const Json zero = 0;
        const Json* replicas = base::FindPath(next_scale, {"spec", "replicas"});
        if (replicas == nullptr) replicas = &zero;
        if (!replicas->is_number_integer() || replicas->get<int64_t>() < 0) {
          return base::Invalid("Scale.autoscaling \"" + info.name +
                               "\" is invalid: spec.replicas: Invalid value: must be a "
                               "non-negative integer");
        }
        Json next = current;
        next["spec"]["replicas"] = *replicas;
        std::string rv = base::StringAt(next_scale, {"metadata", "resourceVersion"});
        if (!rv.empty()) next["metadata"]["resourceVersion"] = rv;
        return next;
      },
      Subresource::kMain, ParseWriteOptions(request), &causes);
  if (!written.ok()) return Failure(written.status(), info, causes);
  Json j;
  (void)base::ParseJson((*written)->json, &j);
  return JsonResponse(200, base::DumpJson(ScaleOf(j)));
}

HttpResponse Binding(Objects& objects, const HttpRequest& request, const RequestInfo& info) {
  Json body;
  if (auto s = DecodeBody(request, &body); !s.ok()) return StatusResponse(s, &info);
  std::string node = base::StringAt(body, {"target", "name"});
  if (node.empty()) {
    return StatusResponse(base::Invalid("Binding \"" + info.name +
                                        "\" is invalid: target.name: Required value"),
                          &info);
  }
  api::FieldErrors causes;
  auto written = objects.Mutate(
      *info.type, info.namespace_, info.name,
      [&](const Json& current) -> Result<Json> {
        std::string existing = base::StringAt(current, {"spec", "nodeName"});
        if (!existing.empty()) {
          return base::Conflict("Operation cannot be fulfilled on pods/binding \"" + info.name +
                                "\": pod " + info.name + " is already assigned to node \"" +
                                existing + "\"");
        }
        if (base::FindPath(current, {"metadata", "deletionTimestamp"}) != nullptr) {
          return base::Conflict("pod " + info.name + " is being deleted, cannot be assigned to a host");
        }
        Json next = current;
        next["spec"]["nodeName"] = node;
        Json& conditions = next["status"]["conditions"];
        if (!conditions.is_array()) conditions = Json::array();
        Json cond = {{"type", "PodScheduled"},
                     {"status", "True"},
                     {"lastProbeTime", nullptr},
                     {"lastTransitionTime", base::FormatRfc3339(objects.clock().Now())}};
        bool replaced = false;
        for (auto& c : conditions) {
          if (c.value("type", "") == "PodScheduled") {
            c = cond;
            replaced = true;
          }
        }
        if (!replaced) conditions.push_back(cond);
        return next;
      },
      Subresource::kAll, ParseWriteOptions(request), &causes);
  if (!written.ok()) return Failure(written.status(), info, causes);
  return JsonResponse(201, base::DumpJson(StatusJson(base::Status::Ok(), nullptr, nullptr)));
}

base::Status ParseDeleteOptions(const HttpRequest& request, DeleteOptions* options) {
  Json body = Json::object();
  if (!request.body.empty()) RETURN_IF_ERROR(DecodeBody(request, &body));
  if (!body.is_object()) return base::BadRequest("DeleteOptions must be an object");
  if (body.contains("gracePeriodSeconds") && body["gracePeriodSeconds"].is_number_integer()) {
    options->grace_period_seconds = body["gracePeriodSeconds"].get<int64_t>();
  }
  if (std::string g = request.Query("gracePeriodSeconds"); !g.empty()) {
    try {
      options->grace_period_seconds = std::stoll(g);
    } catch (...) {
      return base::BadRequest("gracePeriodSeconds: must be an integer");
    }
  }
  options->precondition_uid = base::StringAt(body, {"preconditions", "uid"});
  options->precondition_resource_version =
      base::StringAt(body, {"preconditions", "resourceVersion"});
  options->dry_run = request.Query("dryRun") == "All";
  if (const Json* d = base::FindPath(body, {"dryRun"}); d && d->is_array()) {
    for (const auto& v : *d) {
      if (v == "All") options->dry_run = true;
    }
  }
  return base::Status::Ok();
}

}  // namespace

HttpResponse StatusResponse(const base::Status& status, const RequestInfo* info,
                            const api::FieldErrors* causes) {
  Json j = StatusJson(status, info, causes);
  return JsonResponse(j["code"].get<int>(), base::DumpJson(j));
}

bool ParseResourcePath(const HttpRequest& request, const api::Registry& registry,
                       RequestInfo* info) {
  std::vector<std::string> parts;
  std::string_view path = request.path;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    parts.emplace_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  std::size_t i = 0;
  if (parts.size() >= 3 && parts[0] == "api") {
    info->group = "";
    info->version = parts[1];
    i = 2;
  } else if (parts.size() >= 4 && parts[0] == "apis") {
    info->group = parts[1];
    info->version = parts[2];
    i = 3;
  } else {
    return false;
  }
  std::vector<std::string> rest(parts.begin() + static_cast<long>(i), parts.end());
  // namespaces/{ns}/{resource}... (but namespaces/{name} and namespaces/{name}/status are the
  // Namespace itself)
  if (rest.size() >= 3 && rest[0] == "namespaces" && rest[2] != "status" && rest[2] != "finalize") {
    info->namespace_ = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  info->resource_request = true;
  info->resource = rest[0];
  if (rest.size() >= 2) info->name = rest[1];
  if (rest.size() >= 3) info->subresource = rest[2];
  if (rest.size() > 3) info->type = nullptr;
  else info->type = registry.Find(info->group, info->version, info->resource);
  bool watch = request.Query("watch") == "true" || request.Query("watch") == "1";
  const std::string& m = request.method;
  if (m == "GET" || m == "HEAD") {
    info->verb = info->name.empty() ? (watch ? "watch" : "list") : (watch ? "watch" : "get");
  } else if (m == "POST") {
    info->verb = "create";
  } else if (m == "PUT") {
    info->verb = "update";
  } else if (m == "PATCH") {
    info->verb = "patch";
  } else if (m == "DELETE") {
    info->verb = info->name.empty() ? "deletecollection" : "delete";
  } else {
    info->verb = m;
  }
  return true;
}

HttpResponse ServeResource(Objects& objects, const HttpRequest& request, const RequestInfo& info) {
  if (info.type == nullptr) {
    return StatusResponse(base::NotFound("the server could not find the requested resource"));
  }
  const api::ResourceType& type = *info.type;
  if (type.namespaced && info.namespace_.empty() && !info.name.empty()) {
    return StatusResponse(base::NotFound("the server could not find the requested resource"));
  }
  if (!type.namespaced && !info.namespace_.empty()) {
    return StatusResponse(base::NotFound("the server could not find the requested resource"));
  }
  const std::string& verb = info.verb;
  base::Clock& clock = objects.clock();
  api::FieldErrors causes;

  if (!info.subresource.empty()) {
    if (info.subresource == "scale" && type.has_scale &&
        (verb == "get" || verb == "update" || verb == "patch")) {
      return Scale(objects, request, info);
    }
    if (info.subresource == "binding" && type.group.empty() && type.plural == "pods" &&
        verb == "create") {
      return Binding(objects, request, info);
    }
    if (info.subresource != "status" || !type.has_status) {
      return StatusResponse(base::NotFound("the server could not find the requested resource"));
    }
    if (verb != "get" && verb != "update" && verb != "patch") {
      return StatusResponse(base::Status(Code::kMethodNotAllowed,
                                         "the server does not allow this method on the "
                                         "requested resource"));
    }
  }
  Subresource sub = info.subresource == "status" ? Subresource::kStatus : Subresource::kMain;

  if (verb == "get") {
    ObjectPtr obj;
    if (request.Query("resourceVersion").empty()) {
      auto fresh = objects.GetFresh(type, info.namespace_, info.name);
      if (!fresh.ok()) return StatusResponse(fresh.status(), &info);
      obj = *fresh;
    } else {
      obj = objects.cache().Get(type, info.namespace_, info.name);
      if (!obj) {
        return StatusResponse(
            base::NotFound(Objects::Qualified(type) + " \"" + info.name + "\" not found"), &info);
      }
    }
    return ObjectResponse(200, obj, request, type, clock);
  }
  if (verb == "list") return List(objects, request, info);
  if (verb == "watch") return Watch(objects, request, info);

  if (verb == "create") {
    if (!info.name.empty()) {
      return StatusResponse(base::Status(Code::kMethodNotAllowed,
                                         "the server does not allow this method on the "
                                         "requested resource"));
    }
    Json body;
    HttpResponse response;
    if (auto s = DecodeObject(request, type, &body, &response); !s.ok()) {
      return StatusResponse(s, &info);
    }
    RequestInfo named = info;
    named.name = base::StringAt(body, {"metadata", "name"});
    auto created = objects.Create(type, info.namespace_, std::move(body),
                                  ParseWriteOptions(request), &causes);
    if (!created.ok()) return Failure(created.status(), named, causes);
    HttpResponse out = ObjectResponse(201, *created, request, type, clock);
    out.headers = std::move(response.headers);
    return out;
  }
  if (verb == "update") {
    Json body;
    HttpResponse response;
    if (auto s = DecodeObject(request, type, &body, &response); !s.ok()) {
      return StatusResponse(s, &info);
    }
    auto updated = objects.Update(type, info.namespace_, info.name, std::move(body), sub,
                                  ParseWriteOptions(request), &causes);
    if (!updated.ok()) return Failure(updated.status(), info, causes);
    HttpResponse out = ObjectResponse(200, *updated, request, type, clock);
    out.headers = std::move(response.headers);
    return out;
  }
  if (verb == "patch") {
    std::string media = MediaType(request.Header("content-type"));
    Json patch;
    if (media == "application/apply-patch+yaml") {
      return StatusResponse(base::Status(Code::kUnsupportedMediaType,
                                         "server-side apply is not supported yet; use "
                                         "client-side kubectl apply"),
                            &info);
    }
    if (auto s = base::ParseJson(request.body, &patch); !s.ok()) {
      return StatusResponse(s, &info);
    }
    HttpResponse response;
    auto patched = objects.Mutate(
        type, info.namespace_, info.name,
        [&](const Json& current) -> Result<Json> {
          Json plain = current;
          ASSIGN_OR_RETURN(Json next, ApplyPatch(request, type, plain, patch));
          RETURN_IF_ERROR(CheckKind(type, next, type.kind, type.GroupVersion()));
          RETURN_IF_ERROR(CheckUnknownFields(request, type, next, {}, &response));
          return next;
        },
        sub, ParseWriteOptions(request), &causes);
    if (!patched.ok()) return Failure(patched.status(), info, causes);
    HttpResponse out = ObjectResponse(200, *patched, request, type, clock);
    out.headers = std::move(response.headers);
    return out;
  }
  if (verb == "delete") {
    DeleteOptions options;
    if (auto s = ParseDeleteOptions(request, &options); !s.ok()) return StatusResponse(s, &info);
    auto deleted = objects.Delete(type, info.namespace_, info.name, options);
    if (!deleted.ok()) return StatusResponse(deleted.status(), &info);
    return ObjectResponse(200, *deleted, request, type, clock);
  }
  if (verb == "deletecollection") {
    DeleteOptions options;
    if (auto s = ParseDeleteOptions(request, &options); !s.ok()) return StatusResponse(s, &info);
    ObjectFilter filter;
    if (auto s = BuildFilter(request, type, &filter); !s.ok()) return StatusResponse(s, &info);
    if (auto s = objects.cache().WaitForFresh(kFreshTimeout); !s.ok()) {
      return StatusResponse(s, &info);
    }
    ListResult list = objects.cache().List(type, info.namespace_, filter, "", 0);
    std::string body = "{\"kind\":\"" + type.ListKind() + "\",\"apiVersion\":\"" +
                       type.GroupVersion() + "\",\"metadata\":{},\"items\":[";
    bool first = true;
    for (const auto& o : list.items) {
      auto deleted = objects.Delete(type, o->namespace_, o->name, options);
      if (!deleted.ok()) {
        if (deleted.status().IsNotFound()) continue;
        return StatusResponse(deleted.status(), &info);
      }
      if (!first) body += ',';
      first = false;
      body += (*deleted)->json;
    }
    body += "]}";
    return JsonResponse(200, std::move(body));
  }
  return StatusResponse(base::Status(Code::kMethodNotAllowed,
                                     "the server does not allow this method on the requested "
                                     "resource"));
}

}  // namespace fulcrum::apiserver
