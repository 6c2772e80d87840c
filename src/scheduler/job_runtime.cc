#include "scheduler/job_runtime.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fulcrum::scheduler {

base::Result<int64_t> ParseGoDurationSeconds(std::string_view text) {
  auto invalid = [&] {
    return base::Invalid("\"" + std::string(text) +
                         "\" is not a positive duration (such as 30m, 1h30m, 90s)");
  };
  // Go's units, in seconds.
  static const std::pair<std::string_view, double> kUnits[] = {
      {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"\xce\xbcs", 1e-6},
      {"ms", 1e-3}, {"s", 1},     {"m", 60},           {"h", 3600}};
  std::string_view s = text;
  if (s.empty()) return invalid();
  double total = 0;
  while (!s.empty()) {
    // A decimal number, with a fraction or not ("1.5", ".5", "5."): one digit at least.
    size_t i = 0;
    double value = 0, scale = 1;
    bool digits = false, fraction = false;
    for (; i < s.size(); ++i) {
      if (s[i] == '.' && !fraction) {
        fraction = true;
        continue;
      }
      if (s[i] < '0' || s[i] > '9') break;
      digits = true;
      if (fraction) scale /= 10;
      value = value * 10 + (s[i] - '0');
    }
    value *= scale;
    if (!digits) return invalid();
    size_t unit_start = i;
    while (i < s.size() && !(s[i] >= '0' && s[i] <= '9') && s[i] != '.') ++i;
    std::string_view unit = s.substr(unit_start, i - unit_start);
    auto it = std::find_if(std::begin(kUnits), std::end(kUnits),
                           [&](const auto& u) { return u.first == unit; });
    if (it == std::end(kUnits)) return invalid();
    total += value * it->second;
    s.remove_prefix(i);
  }
  // Go's Duration is int64 nanoseconds: about 292 years.
  if (!(total > 0) || total > 9.2e9) return invalid();
  return static_cast<int64_t>(std::ceil(total - 1e-9));
}

std::string FormatGoDuration(int64_t seconds) {
  if (seconds <= 0) return "0s";
  int64_t h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60;
  if (h > 0) return std::to_string(h) + "h" + std::to_string(m) + "m" + std::to_string(s) + "s";
  if (m > 0) return std::to_string(m) + "m" + std::to_string(s) + "s";
  return std::to_string(s) + "s";
}

std::string RuntimeKey(std::string_view app) {
  // "ns/Job/name": the kind is the second field.
  size_t first = app.find('/');
  size_t second = first == std::string_view::npos ? first : app.find('/', first + 1);
  if (second == std::string_view::npos || app.substr(first + 1, second - first - 1) != "Job") {
    return std::string(app);
  }
  size_t dash = app.rfind('-');
  if (dash == std::string_view::npos || dash <= second + 1 || dash + 1 == app.size()) {
    return std::string(app);
  }
  for (char c : app.substr(dash + 1)) {
    if (c < '0' || c > '9') return std::string(app);
  }
  return std::string(app.substr(0, dash));
}

void JobRuntimes::Record(std::string_view app, int64_t seconds) {
  if (seconds <= 0 || options_.window == 0) return;
  std::deque<int64_t>& runs = runs_[RuntimeKey(app)];
  runs.push_back(seconds);
  while (runs.size() > options_.window) runs.pop_front();
}

int64_t JobRuntimes::Expected(std::string_view app) const {
  auto it = runs_.find(RuntimeKey(app));
  if (it == runs_.end() || it->second.empty()) return 0;
  std::vector<int64_t> sorted(it->second.begin(), it->second.end());
  std::sort(sorted.begin(), sorted.end());
  // Nearest rank: the smallest run with at least `quantile` of the runs at or below it.
  size_t rank =
      static_cast<size_t>(std::ceil(options_.quantile * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

size_t JobRuntimes::Runs(std::string_view app) const {
  auto it = runs_.find(RuntimeKey(app));
  return it == runs_.end() ? 0 : it->second.size();
}

}  // namespace fulcrum::scheduler
