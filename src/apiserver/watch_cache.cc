#include "apiserver/watch_cache.h"

#include <algorithm>
#include <cctype>

#include "base/log.h"

namespace fulcrum::apiserver {
namespace {

using base::Json;

// Fields that lists and watches filter on often enough to keep beside the bytes.
const std::vector<std::string>& IndexedFields(const api::ResourceType& type) {
  static const std::vector<std::string> kPods = {"spec.nodeName", "status.phase"};
  static const std::vector<std::string> kEvents = {"involvedObject.kind", "involvedObject.name",
                                                   "involvedObject.namespace",
                                                   "involvedObject.uid"};
  static const std::vector<std::string> kNone;
  if (type.group.empty() && type.plural == "pods") return kPods;
  if (type.group.empty() && type.plural == "events") return kEvents;
  return kNone;
}

std::string GroupKey(const std::string& group, const std::string& plural) {
  return (group.empty() ? "core" : group) + "/" + plural;
}

}  // namespace

std::string StorePrefix(const api::ResourceType& type) {
  return "/registry/" + GroupKey(type.group, type.plural) + "/";
}

std::string StoreKey(const api::ResourceType& type, const std::string& namespace_,
                     const std::string& name) {
  if (type.namespaced) return StorePrefix(type) + namespace_ + "/" + name;
  return StorePrefix(type) + name;
}

bool CacheWatcher::Next(std::vector<CacheEvent>* out,
                        std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [this] { return ended_ || !pending_.empty(); });
  bool had = !pending_.empty();
  for (auto& e : pending_) out->push_back(std::move(e));
  pending_.clear();
  initial_left_ = 0;
  return !ended_ || had;
}

bool CacheWatcher::Take(std::vector<CacheEvent>* out, std::size_t max) {
  std::lock_guard lock(mu_);
  std::size_t n = std::min(max, pending_.size());
  for (std::size_t i = 0; i < n; ++i) {
    out->push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  initial_left_ -= std::min(initial_left_, n);
  if (n == 0 && !ended_) wake_armed_ = true;
  return !ended_ || !pending_.empty() || n > 0;
}

void CacheWatcher::SetWake(std::function<void()> wake) {
  std::lock_guard lock(mu_);
  wake_ = std::move(wake);
  wake_armed_ = false;
  if (wake_ && (ended_ || !pending_.empty())) wake_();
}

bool CacheWatcher::InitialPending() const {
  std::lock_guard lock(mu_);
  return initial_left_ > 0;
}

bool CacheWatcher::Dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void CacheWatcher::EndLocked() {
  ended_ = true;
  cv_.notify_all();
  if (wake_armed_ && wake_) {
    wake_armed_ = false;
    wake_();
  }
}

void CacheWatcher::Cancel() {
  std::lock_guard lock(mu_);
  EndLocked();
}

int64_t WatchCache::BookmarkRevision(const CacheWatcher& watcher) const {
  // Events are queued under mu_, so a watcher with nothing pending has been given everything up
  // to the cache's revision; otherwise only up to just before its oldest pending event.
  std::lock_guard lock(mu_);
  std::lock_guard wlock(watcher.mu_);
  if (watcher.pending_.empty()) return std::max(revision_, watcher.revision_);
  return watcher.pending_.front().object->resource_version - 1;
}

WatchCache::WatchCache(const api::Registry* registry, store::Store* store, std::size_t history,
                       std::size_t max_pending)
    : registry_(registry), store_(store), history_limit_(history), max_pending_(max_pending) {
  for (const auto& type : registry_->types()) {
    auto& state = states_[GroupKey(type->group, type->plural)];
    state.type = type.get();
  }
}

WatchCache::~WatchCache() {
  watch_.reset();
  std::lock_guard lock(mu_);
  for (auto& [_, state] : states_) {
    for (auto& w : state.watchers) {
      if (auto watcher = w.lock()) watcher->Cancel();
    }
  }
}

namespace {

// Where the value of the top-level "metadata" key begins ('{'), or npos. Scans the serialized
// object once, tracking strings and depth, so a "metadata" key nested anywhere else is ignored.
std::size_t TopLevelMetadata(std::string_view json) {
  int depth = 0;
  for (std::size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (c == '"') {
      std::size_t start = i++;
      while (i < json.size() && json[i] != '"') i += json[i] == '\\' ? 2 : 1;
      if (depth == 1 && json.substr(start, i - start + 1) == "\"metadata\"") {
        std::size_t j = i + 1;
        while (j < json.size() && std::isspace(static_cast<unsigned char>(json[j]))) ++j;
        if (j < json.size() && json[j] == ':') {
          ++j;
          while (j < json.size() && std::isspace(static_cast<unsigned char>(json[j]))) ++j;
          return j < json.size() && json[j] == '{' ? j : std::string_view::npos;
        }
      }
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return std::string_view::npos;
}

}  // namespace

base::Result<ObjectPtr> WatchCache::MakeObject(const api::ResourceType& type, Json obj,
                                               int64_t rv) {
  if (!obj.is_object() || !obj["metadata"].is_object()) {
    return base::Internal("stored object has no metadata");
  }
  obj["metadata"].erase("resourceVersion");
  std::string stored = base::DumpJson(obj);
  return MakeObject(type, obj, stored, rv);
}

base::Result<ObjectPtr> WatchCache::MakeObject(const api::ResourceType& type, const Json& obj,
                                               std::string_view stored, int64_t rv) {
  ASSIGN_OR_RETURN(auto prepared, Prepare(type, obj, stored));
  return WithRevision(*prepared, rv);
}

base::Result<std::shared_ptr<const CachedObject>> WatchCache::Prepare(const api::ResourceType& type,
                                                                      const Json& obj,
                                                                      std::string_view stored) {
  if (!obj.is_object()) return base::Internal("stored value is not a JSON object");
  const Json* meta = base::FindPath(obj, {"metadata"});
  if (meta == nullptr || !meta->is_object()) return base::Internal("stored object has no metadata");
  if (TopLevelMetadata(stored) == std::string_view::npos || meta->contains("resourceVersion")) {
    Json copy = obj;
    copy["metadata"].erase("resourceVersion");
    std::string plain = base::DumpJson(copy);
    if (TopLevelMetadata(plain) == std::string_view::npos) {
      return base::Internal("cannot find metadata");
    }
    return Prepare(type, copy, plain);
  }
  auto cached = std::make_shared<CachedObject>();
  cached->name = base::StringAt(*meta, {"name"});
  cached->namespace_ = base::StringAt(*meta, {"namespace"});
  cached->uid = base::StringAt(*meta, {"uid"});
  cached->key = type.namespaced ? cached->namespace_ + "/" + cached->name : cached->name;
  if (auto it = meta->find("labels"); it != meta->end() && it->is_object()) {
    for (auto& [k, v] : it->items()) {
      if (v.is_string()) cached->labels.emplace_back(k, v.get<std::string>());
    }
    std::sort(cached->labels.begin(), cached->labels.end());
  }
  if (type.selectable_field) {
    for (const auto& field : IndexedFields(type)) {
      std::string value;
      if (type.selectable_field(obj, field, &value)) cached->fields.emplace_back(field, value);
    }
  }
  cached->json = std::string(stored);
  return std::shared_ptr<const CachedObject>(std::move(cached));
}

ObjectPtr WatchCache::WithRevision(const CachedObject& prepared, int64_t rv) {
  auto cached = std::make_shared<CachedObject>();
  cached->key = prepared.key;
  cached->namespace_ = prepared.namespace_;
  cached->name = prepared.name;
  cached->uid = prepared.uid;
  cached->labels = prepared.labels;
  cached->fields = prepared.fields;
  cached->resource_version = rv;
  // The resourceVersion goes first in metadata; the rest of the bytes are the stored ones.
  const std::string& stored = prepared.json;
  std::size_t brace = TopLevelMetadata(stored);
  std::string field = "\"resourceVersion\":\"" + std::to_string(rv) + "\"";
  bool empty_meta = brace + 1 < stored.size() && stored[brace + 1] == '}';
  cached->json.reserve(stored.size() + field.size() + 1);
  cached->json.append(stored, 0, brace + 1);
  cached->json.append(field);
  if (!empty_meta) cached->json.push_back(',');
  cached->json.append(stored, brace + 1);
  return cached;
}

void WatchCache::Expect(const std::string& store_key, std::shared_ptr<const CachedObject> prepared) {
  std::lock_guard lock(expected_mu_);
  expected_[store_key] = std::move(prepared);
}

void WatchCache::Unexpect(const std::string& store_key, const CachedObject* prepared) {
  std::lock_guard lock(expected_mu_);
  auto it = expected_.find(store_key);
  if (it != expected_.end() && it->second.get() == prepared) expected_.erase(it);
}

void WatchCache::Put(TypeState& state, const std::string& key, ObjectPtr next) {
  auto it = state.objects.find(key);
  if (it != state.objects.end()) {
    for (const auto& [k, v] : it->second->labels) {
      auto entry = state.by_label.find(k + '\0' + v);
      if (entry == state.by_label.end()) continue;
      entry->second.erase(it->second.get());
      if (entry->second.empty()) state.by_label.erase(entry);
    }
    if (next == nullptr) {
      state.objects.erase(it);
      return;
    }
  } else if (next == nullptr) {
    return;
  }
  for (const auto& [k, v] : next->labels) state.by_label[k + '\0' + v].insert(next.get());
  state.objects[key] = std::move(next);
}

WatchCache::TypeState* WatchCache::StateForKey(const std::string& store_key,
                                               std::string* object_key) {
  // "/registry/<group>/<plural>/<rest>"
  constexpr std::string_view kRoot = "/registry/";
  if (store_key.compare(0, kRoot.size(), kRoot) != 0) return nullptr;
  auto slash1 = store_key.find('/', kRoot.size());
  if (slash1 == std::string::npos) return nullptr;
  auto slash2 = store_key.find('/', slash1 + 1);
  if (slash2 == std::string::npos) return nullptr;
  auto it = states_.find(store_key.substr(kRoot.size(), slash2 - kRoot.size()));
  if (it == states_.end()) return nullptr;
  *object_key = store_key.substr(slash2 + 1);
  return &it->second;
}

base::Status WatchCache::Start() {
  ASSIGN_OR_RETURN(int64_t rev, store_->CurrentRevision());
  std::string start = "/registry/";
  std::string end = store::RangeEndForPrefix(start);
  std::size_t loaded = 0;
  for (;;) {
    ASSIGN_OR_RETURN(auto page, store_->Range(start, end, 5000, rev));
    std::lock_guard lock(mu_);
    for (auto& kv : page.kvs) {
      std::string object_key;
      TypeState* state = StateForKey(kv.key, &object_key);
      if (state == nullptr) continue;
      Json obj;
      if (!base::ParseJson(kv.value, &obj).ok()) {
        LOG_ERROR << "skipping unreadable object at " << kv.key;
        continue;
      }
      auto cached = MakeObject(*state->type, obj, kv.value, kv.mod_revision);
      if (!cached.ok()) {
        LOG_ERROR << "skipping " << kv.key << ": " << cached.status().ToString();
        continue;
      }
      Put(*state, object_key, *cached);
      ++loaded;
    }
    if (!page.more || page.kvs.empty()) break;
    start = page.kvs.back().key + '\0';
  }
  {
    std::lock_guard lock(mu_);
    revision_ = rev;
    for (auto& [_, state] : states_) state.history_floor = rev;
  }
  LOG_INFO << "watch cache loaded " << loaded << " objects at revision " << rev;
  ASSIGN_OR_RETURN(watch_, store_->Watch("/registry/", end, rev,
                                         [this](const store::WatchBatch& b) { Apply(b); }));
  return base::Status::Ok();
}

void WatchCache::Apply(const store::WatchBatch& batch) {
  std::lock_guard lock(mu_);
  if (batch.compacted) {
    LOG_ERROR << "the store watch fell behind compaction; the cache is stale";
    failed_ = true;
    return;
  }
  for (const auto& ev : batch.events) {
    std::string object_key;
    TypeState* state = StateForKey(ev.kv.key, &object_key);
    if (state == nullptr) continue;
    int64_t rev = ev.kv.mod_revision;
    CacheEvent event;
    event.bytes = std::make_shared<EventBytes>();
    auto existing = state->objects.find(object_key);
    ObjectPtr prev = existing == state->objects.end() ? nullptr : existing->second;
    if (ev.type == store::WatchEvent::Type::kPut) {
      ObjectPtr cached;
      {
        // A write made through this server announced its object: reuse it rather than parse.
        std::lock_guard elock(expected_mu_);
        auto it = expected_.find(ev.kv.key);
        if (it != expected_.end() && it->second->json == ev.kv.value) {
          cached = WithRevision(*it->second, rev);
          expected_.erase(it);
        }
      }
      if (!cached) {
        Json obj;
        if (!base::ParseJson(ev.kv.value, &obj).ok()) {
          LOG_ERROR << "unreadable object at " << ev.kv.key;
          continue;
        }
        auto made = MakeObject(*state->type, obj, ev.kv.value, rev);
        if (!made.ok()) continue;
        cached = *made;
      }
      event.type = prev ? CacheEvent::Type::kModified : CacheEvent::Type::kAdded;
      event.object = cached;
      event.prev = prev;
      Put(*state, object_key, cached);
    } else {
      if (!prev) continue;
      Json obj;
      if (!base::ParseJson(prev->json, &obj).ok()) continue;
      auto cached = MakeObject(*state->type, std::move(obj), rev);
      if (!cached.ok()) continue;
      event.type = CacheEvent::Type::kDeleted;
      event.object = *cached;
      event.prev = prev;
      Put(*state, object_key, nullptr);
    }
    state->history.emplace_back(rev, event);
    while (state->history.size() > history_limit_) {
      state->history_floor = state->history.front().first;
      state->history.pop_front();
    }
    Dispatch(*state, rev, event);
  }
  if (batch.revision > revision_) revision_ = batch.revision;
  advanced_.notify_all();
}

void WatchCache::Dispatch(TypeState& state, int64_t revision, const CacheEvent& event) {
  bool prune = false;
  for (auto& w : state.watchers) {
    auto watcher = w.lock();
    if (!watcher) {
      prune = true;
      continue;
    }
    bool now = event.type != CacheEvent::Type::kDeleted && watcher->filter_(*event.object);
    bool before = event.prev && watcher->filter_(*event.prev);
    if (!now && !before) continue;
    CacheEvent::Type type = event.type;
    if (now && !before) {
      type = CacheEvent::Type::kAdded;
    } else if (!now && before) {
      type = CacheEvent::Type::kDeleted;
    }
    std::lock_guard wlock(watcher->mu_);
    if (watcher->ended_) {
      prune = true;
      continue;
    }
    if (watcher->pending_.size() - watcher->initial_left_ >= max_pending_) {
      // Too slow: the client relists, as with Kubernetes. What it has queued is dropped with it.
      watcher->pending_.clear();
      watcher->initial_left_ = 0;
      watcher->dropped_ = true;
      watcher->EndLocked();
      prune = true;
      continue;
    }
    watcher->pending_.push_back({type, event.object, nullptr, event.bytes});
    watcher->revision_ = revision;
    watcher->cv_.notify_one();
    if (watcher->wake_armed_) {
      watcher->wake_armed_ = false;
      watcher->wake_();
    }
  }
  if (prune) {
    std::erase_if(state.watchers, [](const std::weak_ptr<CacheWatcher>& w) {
      auto p = w.lock();
      if (!p) return true;
      std::lock_guard wlock(p->mu_);
      return p->ended_;
    });
  }
}

base::Status WatchCache::WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!advanced_.wait_for(lock, timeout, [&] { return revision_ >= revision || failed_; })) {
    return base::Status(base::Code::kTimeout, "Too large resource version: " +
                                                  std::to_string(revision) + ", current: " +
                                                  std::to_string(revision_));
  }
  if (failed_) return base::Unavailable("the watch cache is not current");
  return base::Status::Ok();
}

base::Status WatchCache::WaitForFresh(std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(int64_t rev, store_->CurrentRevision());
  return WaitForRevision(rev, timeout);
}

int64_t WatchCache::Revision() const {
  std::lock_guard lock(mu_);
  return revision_;
}

ObjectPtr WatchCache::Get(const api::ResourceType& type, const std::string& namespace_,
                          const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = states_.find(GroupKey(type.group, type.plural));
  if (it == states_.end()) return nullptr;
  auto obj = it->second.objects.find(type.namespaced ? namespace_ + "/" + name : name);
  return obj == it->second.objects.end() ? nullptr : obj->second;
}

ListResult WatchCache::List(const api::ResourceType& type, const std::string& namespace_,
                            const ObjectFilter& filter, const std::string& after_key,
                            std::size_t limit,
                            const std::pair<std::string, std::string>* label) const {
  ListResult result;
  std::lock_guard lock(mu_);
  result.resource_version = revision_;
  auto it = states_.find(GroupKey(type.group, type.plural));
  if (it == states_.end()) return result;
  const TypeState& state = it->second;
  std::string prefix = type.namespaced && !namespace_.empty() ? namespace_ + "/" : "";
  std::string start = after_key.empty() || after_key < prefix ? prefix : after_key;
  bool exclusive = !after_key.empty() && after_key >= prefix;
  // Visits objects in key order from `start`; returns false to stop.
  auto visit = [&](const CachedObject& o, const ObjectPtr& owner) {
    if (!prefix.empty() && o.key.compare(0, prefix.size(), prefix) != 0) return false;
    if (filter && !filter(o)) return true;
    if (limit > 0 && result.items.size() == limit) {
      result.more = true;
      return false;
    }
    result.items.push_back(owner);
    return true;
  };
  if (label != nullptr) {
    auto entry = state.by_label.find(label->first + '\0' + label->second);
    if (entry == state.by_label.end()) return result;
    CachedObject probe;
    probe.key = start;
    auto pos = exclusive ? entry->second.upper_bound(&probe) : entry->second.lower_bound(&probe);
    for (; pos != entry->second.end(); ++pos) {
      if (!visit(**pos, state.objects.at((*pos)->key))) break;
    }
    return result;
  }
  auto pos = exclusive ? state.objects.upper_bound(start) : state.objects.lower_bound(start);
  for (; pos != state.objects.end(); ++pos) {
    if (!visit(*pos->second, pos->second)) break;
  }
  return result;
}

base::Result<ListResult> WatchCache::ListAt(const api::ResourceType& type,
                                            const std::string& namespace_,
                                            const ObjectFilter& filter,
                                            const std::string& after_key, std::size_t limit,
                                            int64_t revision) const {
  ListResult result;
  result.resource_version = revision;
  std::string prefix = StorePrefix(type);
  std::string scope = type.namespaced && !namespace_.empty() ? prefix + namespace_ + "/" : prefix;
  std::string start = after_key.empty() ? scope : prefix + after_key + '\0';
  if (start < scope) start = scope;
  std::string end = store::RangeEndForPrefix(scope);
  for (;;) {
    ASSIGN_OR_RETURN(auto page, store_->Range(start, end, 1000, revision));
    for (auto& kv : page.kvs) {
      Json obj;
      if (!base::ParseJson(kv.value, &obj).ok()) continue;
      auto cached = MakeObject(type, obj, kv.value, kv.mod_revision);
      if (!cached.ok()) continue;
      if (filter && !filter(**cached)) continue;
      if (limit > 0 && result.items.size() == limit) {
        result.more = true;
        return result;
      }
      result.items.push_back(*cached);
    }
    if (!page.more || page.kvs.empty()) return result;
    start = page.kvs.back().key + '\0';
  }
}

base::Result<std::shared_ptr<CacheWatcher>> WatchCache::Watch(const api::ResourceType& type,
                                                              const std::string& namespace_,
                                                              ObjectFilter filter,
                                                              int64_t after_revision) {
  auto watcher = std::make_shared<CacheWatcher>();
  std::string prefix = type.namespaced && !namespace_.empty() ? namespace_ + "/" : "";
  watcher->filter_ = [prefix, filter = std::move(filter)](const CachedObject& o) {
    if (!prefix.empty() && o.key.compare(0, prefix.size(), prefix) != 0) return false;
    return !filter || filter(o);
  };
  std::lock_guard lock(mu_);
  auto it = states_.find(GroupKey(type.group, type.plural));
  if (it == states_.end()) return base::NotFound("no such resource " + type.plural);
  TypeState& state = it->second;
  if (after_revision < 0) {
    for (const auto& [key, obj] : state.objects) {
      if (watcher->filter_(*obj)) {
        watcher->pending_.push_back({CacheEvent::Type::kAdded, obj, nullptr, nullptr});
      }
    }
    watcher->initial_left_ = watcher->pending_.size();
  } else {
    if (after_revision < state.history_floor) {
      return base::Gone("too old resource version: " + std::to_string(after_revision) + " (" +
                        std::to_string(state.history_floor) + ")");
    }
    for (const auto& [rev, event] : state.history) {
      if (rev <= after_revision) continue;
      bool now = event.type != CacheEvent::Type::kDeleted && watcher->filter_(*event.object);
      bool before = event.prev && watcher->filter_(*event.prev);
      if (!now && !before) continue;
      CacheEvent out{event.type, event.object, nullptr, event.bytes};
      if (now && !before) out.type = CacheEvent::Type::kAdded;
      if (!now && before) out.type = CacheEvent::Type::kDeleted;
      watcher->pending_.push_back(std::move(out));
    }
  }
  watcher->revision_ = revision_;
  state.watchers.push_back(watcher);
  return watcher;
}

std::size_t WatchCache::Count(const api::ResourceType& type) const {
  std::lock_guard lock(mu_);
  auto it = states_.find(GroupKey(type.group, type.plural));
  return it == states_.end() ? 0 : it->second.objects.size();
}

}  // namespace fulcrum::apiserver
