#pragma once

// Application profiles: per application (the owning workload), the per-replica CPU usage shape
// over the day (or week) in fixed slots, with its spread, learnt from observed usage.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "scheduler/predictor.h"

namespace fulcrum::scheduler {

struct AppProfile {
  std::string app;
  int64_t slot_seconds = 900;
  int slots = 96;                   // slots in one cycle (96 x 15 min: a day; 672: a week)
  std::vector<float> cpu_mean;      // per replica, millicores, per slot
  std::vector<float> cpu_std;       // spread of a replica's usage in the slot
  bool cold = true;                 // from requests only, no usage observed yet
  double observed_samples = 0;

  // Slot of a unix time within the cycle.
  int SlotAt(int64_t unix_seconds) const {
    int64_t s = unix_seconds / slot_seconds % slots;
    return static_cast<int>(s < 0 ? s + slots : s);
  }
};

struct ProfileOptions {
  int64_t slot_seconds = 900;
  int slots = 96;
  // Weight of what was known before, per cycle: older days count 2^(-age/half_life) as much.
  double half_life_cycles = 3;
  // Cold start from requests: mean = request x this, spread = request x cold_spread.
  double cold_mean_fraction = 0.5;
  double cold_spread_fraction = 0.25;
  // A floor on the spread, as a share of the slot's mean (no profile is ever certain).
  double min_relative_spread = 0.05;
  // Correlation the contention model assumes between the deviations of different applications
  // on one node (replicas of one application are taken as fully correlated). Online services
  // share the day's rhythm, so they are far from independent.
  double app_correlation = 0.25;
};

// Profiles of every known application. Learning is incremental (Observe) and every change bumps
// version(), so that caches built from profiles know when to rebuild. Not thread-safe.
class ProfileStore {
 public:
  explicit ProfileStore(ProfileOptions options = {}) : options_(options) {}

  // One observation of one replica's usage at a time (unix seconds, millicores).
  void Observe(std::string_view app, int64_t unix_seconds, double cpu_milli);
  // Observations of several replicas of one app at the same time (one lookup for all).
  void Observe(std::string_view app, int64_t unix_seconds, std::span<const double> cpu_milli);
  // The app's place among the observed applications (added when new), valid for the store's
  // lifetime: a caller that observes the same apps over and over looks each up once.
  using AppIndex = size_t;
  AppIndex IndexOf(std::string_view app);
  // The same as Observe by name, for an index from IndexOf().
  void Observe(AppIndex app, int64_t unix_seconds, std::span<const double> cpu_milli);
  // Every sample of a replica's usage history (NaN samples skipped).
  void ObserveHistory(std::string_view app, const UsageHistory& history);
  // Turns what was observed since the last call into the profiles' means and spreads, decaying
  // older cycles. Call periodically (the simulator: every hour).
  void Commit();
  // Makes the app's profile what it would be if the current cycle ended now (its samples since
  // the last Commit taken as this cycle's), without ending it: the next Commit still takes them
  // in once, with the rest of the cycle, and touches no other application. For an application
  // seen for the first time, which should not wait for its slot to end to be known. Nothing
  // happens when the app has no samples since the last Commit.
  void LearnSoFar(std::string_view app);

  // A profile for the app; a cold one from `request_cpu_milli` when nothing was observed. The
  // reference stays valid for the store's lifetime (Commit and Restore update a learnt profile in
  // place); Get answers another profile for the app only when the app is first learnt, and size()
  // grows then.
  const AppProfile& Get(std::string_view app, int64_t request_cpu_milli) const;
  const AppProfile* Find(std::string_view app) const;
  // Every learnt profile (none of the cold ones), in no particular order.
  std::vector<const AppProfile*> Learnt() const;
  // Takes `profile` (learnt earlier, e.g. read back from an AppProfile object) as the app's
  // history so far, each slot weighing as one cycle. False, changing nothing, when its slot layout
  // differs from the store's.
  bool Restore(const AppProfile& profile);

  uint64_t version() const { return version_; }
  const ProfileOptions& options() const { return options_; }
  size_t size() const { return profiles_.size(); }  // learnt applications

 private:
  struct Accumulator {
    std::string app;
    AppProfile* profile = nullptr;  // its entry in profiles_ once committed
    std::vector<double> weight, sum, sum_sq;  // decayed totals per slot
    // Per slot, since the last Commit: together, as one observation adds to all three.
    struct Fresh {
      double n = 0, sum = 0, sum_sq = 0;
    };
    std::vector<Fresh> fresh;
  };
  Accumulator& AccumulatorFor(std::string_view app) { return accumulators_[IndexOf(app)]; }
  // Adds a slot's samples since the last Commit to its decayed totals, as one cycle.
  static void Fold(const Accumulator::Fresh& fresh, double decay, double* weight, double* sum,
                   double* sum_sq);
  // The app's profile from its totals (and, with_fresh, the samples since the last Commit as one
  // more cycle, leaving the totals as they are).
  void Publish(Accumulator& a, bool with_fresh);

  // Looked up by string_view without building a std::string (a lookup per application and
  // observation, and per node and application when contention tables are rebuilt).
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  template <typename Value>
  using ByApp = std::unordered_map<std::string, Value, KeyHash, std::equal_to<>>;

  ProfileOptions options_;
  std::vector<Accumulator> accumulators_;  // in the order the apps were first seen
  ByApp<AppIndex> accumulator_index_;
  ByApp<AppProfile> profiles_;
  mutable ByApp<AppProfile> cold_;
  uint64_t version_ = 1;
};

}  // namespace fulcrum::scheduler
