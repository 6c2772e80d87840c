#include "controllers/controller.h"

#include <algorithm>

#include "base/log.h"
#include "controllers/workload.h"

namespace fulcrum::controllers {

void Controller::Start(int workers) {
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
}

void Controller::EnqueueOnEvents(client::Informer* informer) {
  client::InformerHandlers h;
  h.on_add = [this](const client::ObjectPtr& o) { Enqueue(client::ObjectKey(*o)); };
  h.on_update = [this](const client::ObjectPtr&, const client::ObjectPtr& o) {
    Enqueue(client::ObjectKey(*o));
  };
  h.on_delete = [this](const client::ObjectPtr& o) { Enqueue(client::ObjectKey(*o)); };
  informer->AddHandlers(std::move(h));
}

void Controller::EnqueueOwnerOfPods(client::Informer* pods, const std::string& kind,
                                    Expectations* expectations) {
  auto on_pod = [this, kind, expectations](const client::ObjectPtr& pod, bool deleted) {
    std::string owner = ControllerName(*pod, kind);
    if (owner.empty()) return;
    std::string key = base::StringAt(*pod, {"metadata", "namespace"}) + "/" + owner;
    expectations->Observed(key, base::StringAt(*pod, {"metadata", "name"}), deleted);
    Enqueue(key);
  };
  client::InformerHandlers h;
  h.on_add = [on_pod](const client::ObjectPtr& o) { on_pod(o, false); };
  h.on_update = [on_pod](const client::ObjectPtr&, const client::ObjectPtr& o) { on_pod(o, false); };
  h.on_delete = [on_pod](const client::ObjectPtr& o) { on_pod(o, true); };
  pods->AddHandlers(std::move(h));
}

void Controller::Stop() {
  queue_.ShutDown();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

void Controller::Work() {
  std::string key;
  while (queue_.Get(&key)) {
    base::Status s = Sync(key);
    int failures = 0;
    {
      std::lock_guard lock(mu_);
      if (s.ok()) {
        failures_.erase(key);
      } else {
        failures = ++failures_[key];
      }
    }
    if (!s.ok()) {
      // Conflicts are routine (a stale cache); say so quietly.
      if (s.IsConflict() || s.IsNotFound() || s.IsAlreadyExists()) {
        LOG_DEBUG << name_ << " " << key << ": " << s.ToString();
      } else {
        LOG_WARNING << name_ << " " << key << ": " << s.ToString();
      }
      auto delay = std::chrono::milliseconds(5) * (1 << std::min(failures, 14));
      queue_.AddAfter(key, std::min(delay, std::chrono::milliseconds(60000)));
    }
    queue_.Done(key);
  }
}

void OwnerIndex::Attach(client::Informer* informer) {
  client::InformerHandlers h;
  h.on_add = [this](const client::ObjectPtr& o) { Set(client::ObjectKey(*o), ControllerUid(*o)); };
  h.on_update = [this](const client::ObjectPtr&, const client::ObjectPtr& o) {
    Set(client::ObjectKey(*o), ControllerUid(*o));
  };
  h.on_delete = [this](const client::ObjectPtr& o) { Set(client::ObjectKey(*o), ""); };
  informer->AddHandlers(std::move(h));
}

void OwnerIndex::Set(const std::string& key, const std::string& owner_uid) {
  std::lock_guard lock(mu_);
  auto it = owner_of_.find(key);
  if (it != owner_of_.end()) {
    if (it->second == owner_uid) return;
    auto& set = by_owner_[it->second];
    set.erase(key);
    if (set.empty()) by_owner_.erase(it->second);
    owner_of_.erase(it);
  }
  if (owner_uid.empty()) return;
  owner_of_[key] = owner_uid;
  by_owner_[owner_uid][key] = true;
}

std::vector<std::string> OwnerIndex::Dependents(const std::string& owner_uid) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  auto it = by_owner_.find(owner_uid);
  if (it == by_owner_.end()) return out;
  for (const auto& [key, unused] : it->second) out.push_back(key);
  return out;
}

std::vector<client::ObjectPtr> CachedObjects(const client::Informer& informer,
                                             const std::vector<std::string>& keys) {
  std::vector<client::ObjectPtr> out;
  out.reserve(keys.size());
  for (const auto& key : keys) {
    if (auto o = informer.Get(key)) out.push_back(std::move(o));
  }
  return out;
}

namespace {
constexpr auto kExpectationTimeout = std::chrono::minutes(1);
}  // namespace

void Expectations::Expire(Entry& e) {
  auto now = clock_->Now();
  for (auto* m : {&e.creates, &e.deletes}) {
    for (auto it = m->begin(); it != m->end();) {
      it = now - it->second > kExpectationTimeout ? m->erase(it) : std::next(it);
    }
  }
}

void Expectations::ExpectCreated(const std::string& owner_key, const std::string& pod_name) {
  std::lock_guard lock(mu_);
  by_owner_[owner_key].creates[pod_name] = clock_->Now();
}

void Expectations::ExpectDeleted(const std::string& owner_key, const std::string& pod_name) {
  std::lock_guard lock(mu_);
  by_owner_[owner_key].deletes[pod_name] = clock_->Now();
}

void Expectations::Observed(const std::string& owner_key, const std::string& pod_name,
                            bool deleted) {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(owner_key);
  if (it == by_owner_.end()) return;
  it->second.creates.erase(pod_name);
  if (deleted) it->second.deletes.erase(pod_name);
  if (it->second.creates.empty() && it->second.deletes.empty()) by_owner_.erase(it);
}

int Expectations::PendingCreates(const std::string& owner_key) {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(owner_key);
  if (it == by_owner_.end()) return 0;
  Expire(it->second);
  return static_cast<int>(it->second.creates.size());
}

bool Expectations::PendingDelete(const std::string& owner_key, const std::string& pod_name) {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(owner_key);
  if (it == by_owner_.end()) return false;
  Expire(it->second);
  return it->second.deletes.count(pod_name) > 0;
}

}  // namespace fulcrum::controllers
