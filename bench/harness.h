// The benchmarks' harness: clocks, the load average, rounding, percentiles, one JSON
// line per result.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace fulcrum::bench {

using OJson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The 1-minute load average: on a shared 2-core machine it says how much else was running.
inline double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double one = -1;
  in >> one;
  return one;
}

// Prints `j` with the load average as one line on stdout.
inline void Emit(OJson j) {
  j["loadavg_1m"] = LoadAverage();
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

inline double Round(double v, int digits) {
  double m = std::pow(10.0, digits);
  return std::round(v * m) / m;
}

// Nearest-rank percentiles p50, p90, p99 and the maximum of an unsorted sample (sorted in
// place), each multiplied by `scale`.
template <typename T>
OJson Percentiles(std::vector<T>& v, double scale, int digits) {
  OJson j = OJson::object();
  if (v.empty()) return j;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    std::size_t idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    idx = idx == 0 ? 0 : idx - 1;
    return Round(static_cast<double>(v[std::min(idx, v.size() - 1)]) * scale, digits);
  };
  j["p50"] = at(0.50);
  j["p90"] = at(0.90);
  j["p99"] = at(0.99);
  j["max"] = Round(static_cast<double>(v.back()) * scale, digits);
  return j;
}

// User + system CPU seconds of this process (all its threads) so far.
inline double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Parses `--name value` and `--name=value` into the variable each map names: false (with the
// reason on stderr, prefixed by `prog`) for -h/--help, an unknown flag, a missing value or a
// number that does not parse.
inline bool ParseNamedFlags(const char* prog, int argc, char** argv,
                            const std::map<std::string, std::string*>& strings,
                            const std::map<std::string, int*>& ints,
                            const std::map<std::string, double*>& doubles) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") return false;
    if (arg.rfind("--", 0) != 0) {
      std::fprintf(stderr, "%s: unexpected argument %s\n", prog, arg.c_str());
      return false;
    }
    std::string name = arg.substr(2);
    std::string value;
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "%s: --%s needs a value\n", prog, name.c_str());
      return false;
    }
    try {
      if (auto s = strings.find(name); s != strings.end()) {
        *s->second = value;
      } else if (auto n = ints.find(name); n != ints.end()) {
        *n->second = std::stoi(value);
      } else if (auto d = doubles.find(name); d != doubles.end()) {
        *d->second = std::stod(value);
      } else {
        std::fprintf(stderr, "%s: unknown flag --%s\n", prog, name.c_str());
        return false;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "%s: --%s: not a number: %s\n", prog, name.c_str(), value.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace fulcrum::bench
