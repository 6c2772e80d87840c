#pragma once

#include <chrono>
#include <mutex>
#include <string>

namespace fulcrum::base {

using WallTime = std::chrono::system_clock::time_point;

// The source of time for controllers, the scheduler and anything else whose behaviour depends on
// it. Tests and the simulator drive a FakeClock; production code gets RealClock(). Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual WallTime Now() const = 0;
};

// The process-wide wall clock. Never null, never destroyed.
Clock* RealClock();

// A clock that moves only when told to.
class FakeClock : public Clock {
 public:
  explicit FakeClock(WallTime start = WallTime{}) : now_(start) {}
  WallTime Now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }
  void Set(WallTime t) {
    std::lock_guard lock(mu_);
    now_ = t;
  }

 private:
  mutable std::mutex mu_;
  WallTime now_;
};

// RFC 3339 with second precision in UTC, as Kubernetes writes metadata timestamps:
// "2026-11-27T03:30:31Z".
std::string FormatRfc3339(WallTime t);
// RFC 3339 with microseconds, as Kubernetes writes MicroTime ("2026-11-27T03:30:31.123456Z").
std::string FormatRfc3339Micro(WallTime t);
// Parses what FormatRfc3339 and FormatRfc3339Micro write, plus numeric offsets. False if malformed.
bool ParseRfc3339(const std::string& s, WallTime* out);

}  // namespace fulcrum::base
