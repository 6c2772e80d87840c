#include "agent/stats.h"

#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "base/file.h"

namespace fulcrum::agent {
namespace {

constexpr long kCgroup2SuperMagic = 0x63677270;  // CGROUP2_SUPER_MAGIC, linux/magic.h

class SystemStatsFiles : public StatsFiles {
 public:
  // StatsFiles
  base::Result<std::string> Read(const std::string& path) override { return base::ReadFile(path); }
};

bool ParseU64(std::string_view s, uint64_t* out) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// The value of `key` in a "key value" file (memory.stat, cpu.stat) or a "Key: value kB" file
// (/proc/meminfo, where `key` includes the colon).
std::optional<uint64_t> KeyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string k, v;
    if (!(fields >> k >> v) || k != key) continue;
    uint64_t n;
    if (ParseU64(v, &n)) return n;
  }
  return std::nullopt;
}

base::Result<uint64_t> ReadU64(StatsFiles& files, const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, files.Read(path));
  uint64_t n;
  if (!ParseU64(text, &n)) return base::Internal(path + ": not a number");
  return n;
}

std::string FormatValue(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::unique_ptr<StatsFiles> NewSystemStatsFiles() { return std::make_unique<SystemStatsFiles>(); }

base::Status WriteCgroupFile(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? base::NotFound(path + ": no such cgroup")
                           : base::Internal(path + ": " + std::strerror(errno));
  }
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return base::Internal("writing " + value + " to " + path + ": " + std::strerror(err));
  }
  return base::Status::Ok();
}

CgroupLayout DetectCgroupLayout() {
  CgroupLayout layout;
  struct statfs st;
  if (::statfs("/sys/fs/cgroup", &st) == 0 && static_cast<long>(st.f_type) == kCgroup2SuperMagic) {
    layout.version = CgroupVersion::kV2;
  }
  return layout;
}

base::Result<CgroupDirs> CgroupDirsOfProcess(StatsFiles& files, const CgroupLayout& layout,
                                             int pid) {
  auto text = files.Read("/proc/" + std::to_string(pid) + "/cgroup");
  if (!text.ok()) return base::NotFound("process " + std::to_string(pid) + " is gone");
  CgroupDirs dirs;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    // hierarchy-ID:controller-list:cgroup-path
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (layout.version == CgroupVersion::kV2) {
      if (line.compare(0, a, "0") == 0 && controllers.empty()) {
        dirs.cpu = dirs.memory = dirs.cpu_bandwidth = layout.root + (path == "/" ? "" : path);
      }
      continue;
    }
    std::string list = "," + controllers + ",";
    // The mount of a v1 hierarchy is named by its controller list ("cpu,cpuacct", "memory").
    std::string dir = layout.root + "/" + controllers + (path == "/" ? "" : path);
    if (list.find(",cpuacct,") != std::string::npos) dirs.cpu = dir;
    if (list.find(",memory,") != std::string::npos) dirs.memory = dir;
    if (list.find(",cpu,") != std::string::npos) dirs.cpu_bandwidth = dir;
  }
  if (dirs.cpu.empty()) {
    return base::NotFound("process " + std::to_string(pid) + " has no CPU accounting cgroup");
  }
  return dirs;
}

base::Result<Usage> ReadCgroupUsage(StatsFiles& files, const CgroupLayout& layout,
                                    const CgroupDirs& dirs) {
  Usage u;
  if (layout.version == CgroupVersion::kV1) {
    auto cpu = ReadU64(files, dirs.cpu + "/cpuacct.usage");
    if (!cpu.ok()) return base::NotFound("cgroup " + dirs.cpu + ": " + cpu.status().message());
    u.cpu_usage_ns = *cpu;
    if (!dirs.cpu_bandwidth.empty()) {
      if (auto stat = files.Read(dirs.cpu_bandwidth + "/cpu.stat"); stat.ok()) {
        auto throttled = KeyedValue(*stat, "nr_throttled");
        u.has_throttling = throttled.has_value();
        u.cpu_nr_throttled = throttled.value_or(0);
      }
    }
    auto mem = dirs.memory.empty() ? base::Result<uint64_t>(base::NotFound(""))
                                   : ReadU64(files, dirs.memory + "/memory.usage_in_bytes");
    auto stat = dirs.memory.empty() ? base::Result<std::string>(base::NotFound(""))
                                    : files.Read(dirs.memory + "/memory.stat");
    if (mem.ok() && stat.ok()) {
      u.has_memory = true;
      u.memory_usage_bytes = *mem;
      uint64_t inactive = KeyedValue(*stat, "total_inactive_file").value_or(0);
      u.memory_working_set_bytes = *mem > inactive ? *mem - inactive : 0;
    }
    return u;
  }
  auto cpu_stat = files.Read(dirs.cpu + "/cpu.stat");
  auto usec = cpu_stat.ok() ? KeyedValue(*cpu_stat, "usage_usec") : std::nullopt;
  if (!usec) return base::NotFound("cgroup " + dirs.cpu + ": no cpu.stat usage_usec");
  u.cpu_usage_ns = *usec * 1000;
  auto throttled = KeyedValue(*cpu_stat, "nr_throttled");
  u.has_throttling = throttled.has_value();
  u.cpu_nr_throttled = throttled.value_or(0);
  auto mem = ReadU64(files, dirs.memory + "/memory.current");
  auto stat = files.Read(dirs.memory + "/memory.stat");
  if (mem.ok() && stat.ok()) {
    u.has_memory = true;
    u.memory_usage_bytes = *mem;
    uint64_t inactive = KeyedValue(*stat, "inactive_file").value_or(0);
    u.memory_working_set_bytes = *mem > inactive ? *mem - inactive : 0;
  }
  return u;
}

base::Result<Usage> ReadNodeUsage(StatsFiles& files, int64_t clock_ticks_per_second) {
  ASSIGN_OR_RETURN(std::string stat, files.Read("/proc/stat"));
  std::istringstream in(stat);
  std::string cpu;
  uint64_t v[8] = {};
  in >> cpu;
  for (auto& x : v) in >> x;
  if (cpu != "cpu" || !in) return base::Internal("/proc/stat: no aggregate cpu line");
  // user nice system idle iowait irq softirq steal: busy time leaves out idle and iowait.
  uint64_t ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  Usage u;
  u.cpu_usage_ns = ticks * (1000000000ull / static_cast<uint64_t>(clock_ticks_per_second));
  ASSIGN_OR_RETURN(std::string meminfo, files.Read("/proc/meminfo"));
  auto total = KeyedValue(meminfo, "MemTotal:"), free = KeyedValue(meminfo, "MemFree:"),
       inactive = KeyedValue(meminfo, "Inactive(file):");
  if (total && free) {
    u.has_memory = true;
    u.memory_usage_bytes = (*total - std::min(*free, *total)) * 1024;
    uint64_t in_bytes = inactive.value_or(0) * 1024;
    u.memory_working_set_bytes =
        u.memory_usage_bytes > in_bytes ? u.memory_usage_bytes - in_bytes : 0;
  }
  return u;
}

StatsCollector::StatsCollector(std::unique_ptr<StatsFiles> files, CgroupLayout layout,
                               const base::Clock* clock, int64_t clock_ticks_per_second)
    : files_(std::move(files)), layout_(std::move(layout)), clock_(clock),
      ticks_(clock_ticks_per_second) {}

void StatsCollector::SetContainers(std::vector<SampledContainer> containers) {
  std::lock_guard lock(mu_);
  wanted_.clear();
  for (auto& c : containers) {
    Key key{c.pod_namespace, c.pod_name, c.container};
    wanted_[key] = std::move(c);
  }
  for (auto it = latest_.begin(); it != latest_.end();) {
    it = wanted_.count(it->first) ? std::next(it) : latest_.erase(it);
  }
}

UsageSample StatsCollector::Next(const std::optional<UsageSample>& prev, base::WallTime now,
                                 Usage usage) {
  UsageSample s{now, usage, std::nullopt};
  if (prev && now > prev->time && usage.cpu_usage_ns >= prev->usage.cpu_usage_ns) {
    double ns = std::chrono::duration<double, std::nano>(now - prev->time).count();
    s.cpu_cores = static_cast<double>(usage.cpu_usage_ns - prev->usage.cpu_usage_ns) / ns;
  }
  return s;
}

void StatsCollector::Sample() {
  std::lock_guard lock(mu_);
  base::WallTime now = clock_->Now();
  if (auto node = ReadNodeUsage(*files_, ticks_); node.ok()) node_ = Next(node_, now, *node);
  for (const auto& [key, c] : wanted_) {
    auto dirs = CgroupDirsOfProcess(*files_, layout_, c.pid);
    auto usage = dirs.ok() ? ReadCgroupUsage(*files_, layout_, *dirs)
                           : base::Result<Usage>(dirs.status());
    if (!usage.ok()) {
      latest_.erase(key);
      continue;
    }
    auto it = latest_.find(key);
    std::optional<UsageSample> prev;
    // A different process (the container restarted) starts a new rate.
    if (it != latest_.end() && it->second.container.pid == c.pid) prev = it->second.sample;
    latest_[key] = ContainerUsage{c, Next(prev, now, *usage), *dirs};
  }
}

std::optional<UsageSample> StatsCollector::Node() const {
  std::lock_guard lock(mu_);
  return node_;
}

std::vector<ContainerUsage> StatsCollector::Containers() const {
  std::lock_guard lock(mu_);
  std::vector<ContainerUsage> out;
  for (const auto& [key, c] : latest_) out.push_back(c);
  return out;
}

std::string PrometheusLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string StatsCollector::PrometheusText() const {
  std::lock_guard lock(mu_);
  auto millis = [](base::WallTime t) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
  };
  auto labels = [](const SampledContainer& c) {
    return "{container=\"" + PrometheusLabelValue(c.container) + "\",namespace=\"" +
           PrometheusLabelValue(c.pod_namespace) + "\",pod=\"" + PrometheusLabelValue(c.pod_name) +
           "\"}";
  };
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  family("node_cpu_usage_seconds_total", "counter",
         "Cumulative cpu time consumed by the node in core-seconds");
  if (node_) {
    out += "node_cpu_usage_seconds_total " + FormatValue(node_->usage.cpu_usage_ns / 1e9) + " " +
           millis(node_->time) + "\n";
  }
  family("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes");
  if (node_ && node_->usage.has_memory) {
    out += "node_memory_working_set_bytes " +
           std::to_string(node_->usage.memory_working_set_bytes) + " " + millis(node_->time) + "\n";
  }
  family("fulcrum_node_cpu_usage_cores", "gauge",
         "CPU cores the node used between the last two samples");
  if (node_ && node_->cpu_cores) {
    out += "fulcrum_node_cpu_usage_cores " + FormatValue(*node_->cpu_cores) + " " +
           millis(node_->time) + "\n";
  }
  family("container_cpu_usage_seconds_total", "counter",
         "Cumulative cpu time consumed by the container in core-seconds");
  for (const auto& [key, c] : latest_) {
    out += "container_cpu_usage_seconds_total" + labels(c.container) + " " +
           FormatValue(c.sample.usage.cpu_usage_ns / 1e9) + " " + millis(c.sample.time) + "\n";
  }
  family("container_memory_working_set_bytes", "gauge",
         "Current working set of the container in bytes");
  for (const auto& [key, c] : latest_) {
    if (!c.sample.usage.has_memory) continue;
    out += "container_memory_working_set_bytes" + labels(c.container) + " " +
           std::to_string(c.sample.usage.memory_working_set_bytes) + " " + millis(c.sample.time) +
           "\n";
  }
  family("fulcrum_container_cpu_usage_cores", "gauge",
         "CPU cores the container used between the last two samples");
  for (const auto& [key, c] : latest_) {
    if (!c.sample.cpu_cores) continue;
    out += "fulcrum_container_cpu_usage_cores" + labels(c.container) + " " +
           FormatValue(*c.sample.cpu_cores) + " " + millis(c.sample.time) + "\n";
  }
  return out;
}

}  // namespace fulcrum::agent
