// Statistics files for the agent's tests.
#pragma once

#include <map>
#include <string>

#include "agent/stats.h"

namespace fulcrum::agent {

// /proc and cgroup files as a map from path to contents; a path not in it is NotFound.
struct FakeStatsFiles : StatsFiles {
  base::Result<std::string> Read(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return base::NotFound(path);
    return it->second;
  }
  std::map<std::string, std::string> files;
};

}  // namespace fulcrum::agent
