#include "client/informer.h"

#include "base/log.h"

namespace fulcrum::client {
namespace {

constexpr int kWatchTimeoutSeconds = 300;
// Longer than the server's bookmark interval, so a silent stream means a dead connection.
constexpr int kWatchReadTimeoutSeconds = 90;

}  // namespace

Informer::Informer(ApiClient* client, std::string collection_path, std::string query,
                   InformerHandlers handlers)
    : client_(client),
      collection_path_(std::move(collection_path)),
      query_(std::move(query)) {
  AddHandlers(std::move(handlers));
}

void Informer::AddHandlers(InformerHandlers handlers) {
  handlers_.push_back(std::move(handlers));
}

void Informer::NotifyAdd(const ObjectPtr& object) {
  for (const auto& h : handlers_) {
    if (h.on_add) h.on_add(object);
  }
}

void Informer::NotifyUpdate(const ObjectPtr& old_object, const ObjectPtr& new_object) {
  for (const auto& h : handlers_) {
    if (h.on_update) h.on_update(old_object, new_object);
  }
}

void Informer::NotifyDelete(const ObjectPtr& object) {
  for (const auto& h : handlers_) {
    if (h.on_delete) h.on_delete(object);
  }
}

Informer::~Informer() { Stop(); }

void Informer::Start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  stopping_ = true;
  {
    std::lock_guard lock(mu_);
    if (stream_ != nullptr) stream_->Close();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return synced_.load() || stopping_.load(); }) &&
         synced_.load();
}

ObjectPtr Informer::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Informer::List() const {
  std::lock_guard lock(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(objects_.size());
  for (const auto& [key, object] : objects_) out.push_back(object);
  return out;
}

std::string Informer::resource_version() const {
  std::lock_guard lock(mu_);
  return resource_version_;
}

void Informer::Run() {
  auto backoff = std::chrono::milliseconds(100);
  bool need_list = true;
  while (!stopping_) {
    base::Status s = need_list ? ListAndReplace() : base::Status::Ok();
    if (s.ok()) {
      need_list = false;
      s = WatchUntilError();
      if (s.ok()) {  // the watch timed out normally: resume from where it stopped
        backoff = std::chrono::milliseconds(100);
        continue;
      }
      if (s.code() == base::Code::kGone) {
        need_list = true;
        continue;
      }
    }
    if (stopping_) break;
    LOG_DEBUG << "informer " << collection_path_ << ": " << s.ToString() << "; retrying";
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, backoff, [this] { return stopping_.load(); });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

base::Status Informer::ListAndReplace() {
  std::string path = collection_path_ + (query_.empty() ? "" : "?" + query_);
  ASSIGN_OR_RETURN(Json list, client_->Get(path));
  std::map<std::string, ObjectPtr> fresh;
  if (Json* items = &list["items"]; items->is_array()) {
    for (Json& item : *items) {
      auto object = std::make_shared<const Json>(std::move(item));
      fresh[ObjectKey(*object)] = std::move(object);
    }
  }
  std::map<std::string, ObjectPtr> old;
  {
    std::lock_guard lock(mu_);
    old.swap(objects_);
    objects_ = fresh;
    resource_version_ = base::StringAt(list, {"metadata", "resourceVersion"});
  }
  // What a relist changed, told as the events a watch would have carried.
  for (const auto& [key, object] : fresh) {
    auto it = old.find(key);
    if (it == old.end()) {
      NotifyAdd(object);
    } else if (base::StringAt(*it->second, {"metadata", "resourceVersion"}) !=
               base::StringAt(*object, {"metadata", "resourceVersion"})) {
      NotifyUpdate(it->second, object);
    }
  }
  for (const auto& [key, object] : old) {
    if (!fresh.count(key)) NotifyDelete(object);
  }
  {
    std::lock_guard lock(mu_);
    synced_ = true;
    cv_.notify_all();
  }
  return base::Status::Ok();
}

base::Status Informer::WatchUntilError() {
  std::string path = collection_path_ + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=" +
                     std::to_string(kWatchTimeoutSeconds) + "&resourceVersion=" + resource_version();
  if (!query_.empty()) path += "&" + query_;
  ASSIGN_OR_RETURN(std::unique_ptr<WatchStream> stream,
                   client_->Watch(path, kWatchReadTimeoutSeconds));
  WatchStream* raw = stream.get();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return base::Unavailable("stopping");
    stream_ = std::move(stream);
  }
  base::Status result = base::Status::Ok();
  WatchEvent event;
  while (!stopping_) {
    auto next = raw->Next(&event);
    if (!next.ok()) {
      result = next.status();
      break;
    }
    if (!*next) break;
    if (event.type == "ERROR") {
      int code = event.object.value("code", 0);
      std::string message = base::StringAt(event.object, {"message"});
      result = code == 410 ? base::Gone(message) : base::Unavailable("watch error: " + message);
      break;
    }
    Apply(event.type, std::move(event.object));
  }
  std::lock_guard lock(mu_);
  stream_.reset();
  return result;
}

void Informer::Apply(const std::string& type, Json object) {
  std::string rv = base::StringAt(object, {"metadata", "resourceVersion"});
  if (type == "BOOKMARK") {
    std::lock_guard lock(mu_);
    if (!rv.empty()) resource_version_ = rv;
    return;
  }
  auto now = std::make_shared<const Json>(std::move(object));
  std::string key = ObjectKey(*now);
  ObjectPtr old;
  {
    std::lock_guard lock(mu_);
    if (!rv.empty()) resource_version_ = rv;
    auto it = objects_.find(key);
    if (it != objects_.end()) old = it->second;
    if (type == "DELETED") {
      objects_.erase(key);
    } else {
      objects_[key] = now;
    }
  }
  if (type == "DELETED") {
    NotifyDelete(now);
  } else if (old == nullptr) {
    NotifyAdd(now);
  } else {
    NotifyUpdate(old, now);
  }
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard lock(mu_);
  if (shut_down_ || dirty_.count(key)) return;
  dirty_.insert(key);
  if (!processing_.count(key)) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::AddAfter(const std::string& key, std::chrono::milliseconds delay) {
  if (delay.count() <= 0) return Add(key);
  std::lock_guard lock(mu_);
  if (shut_down_) return;
  delayed_.emplace(std::chrono::steady_clock::now() + delay, key);
  cv_.notify_one();
}

bool WorkQueue::Get(std::string* key) {
  std::unique_lock lock(mu_);
  while (true) {
    if (shut_down_) return false;
    auto now = std::chrono::steady_clock::now();
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
      std::string k = delayed_.begin()->second;
      delayed_.erase(delayed_.begin());
      if (!dirty_.count(k)) {
        dirty_.insert(k);
        if (!processing_.count(k)) queue_.push_back(k);
      }
    }
    if (!queue_.empty()) {
      *key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(*key);
      processing_.insert(*key);
      return true;
    }
    if (delayed_.empty()) {
      cv_.wait(lock);
    } else {
      auto next = delayed_.begin()->first;  // a copy: another thread may erase the entry
      cv_.wait_until(lock, next);
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key)) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard lock(mu_);
  shut_down_ = true;
  cv_.notify_all();
}

std::size_t WorkQueue::size() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace fulcrum::client
