#include "sim/trace.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <unordered_map>

#include "base/file.h"

namespace fulcrum::sim {
namespace {

using base::BadRequest;
using base::Result;
using base::Status;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Splits text into lines (without "\n" or a trailing "\r"), numbering them from 1.
class LineReader {
 public:
  LineReader(std::string_view text, std::string_view file) : text_(text), file_(file) {}

  bool Next(std::string_view* line) {
    while (pos_ < text_.size()) {
      size_t end = text_.find('\n', pos_);
      if (end == std::string_view::npos) end = text_.size();
      *line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      ++number_;
      if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
      if (!line->empty()) return true;  // blank lines carry nothing
    }
    return false;
  }

  Status Error(const std::string& what) const {
    return BadRequest(std::string(file_) + ":" + std::to_string(number_) + ": " + what);
  }

 private:
  std::string_view text_;
  std::string_view file_;
  size_t pos_ = 0;
  int64_t number_ = 0;
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      fields.push_back(Trim(line.substr(start)));
      return fields;
    }
    fields.push_back(Trim(line.substr(start, comma - start)));
    start = comma + 1;
  }
}

std::string Shown(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out;
}

Status ParseInt(const LineReader& r, std::string_view field, const char* what, int64_t* out) {
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), *out);
  if (field.empty() || ec != std::errc() || end != field.data() + field.size()) {
    return r.Error(std::string("bad ") + what + " \"" + Shown(field) + "\": expected an integer");
  }
  return Status::Ok();
}

Status ParseDouble(const LineReader& r, std::string_view field, const char* what, double* out) {
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), *out);
  if (field.empty() || ec != std::errc() || end != field.data() + field.size() ||
      !std::isfinite(*out)) {
    return r.Error(std::string("bad ") + what + " \"" + Shown(field) + "\": expected a number");
  }
  return Status::Ok();
}

Status ExpectFields(const LineReader& r, const std::vector<std::string_view>& fields,
                    size_t expected) {
  if (fields.size() != expected) {
    return r.Error("expected " + std::to_string(expected) + " fields, got " +
                   std::to_string(fields.size()));
  }
  return Status::Ok();
}

Status ExpectHeader(LineReader& r, std::string_view expected_first_field) {
  std::string_view line;
  if (!r.Next(&line)) return r.Error("empty file, expected a header");
  auto fields = SplitFields(line);
  if (fields[0] != expected_first_field) {
    return r.Error("expected a header starting with \"" + std::string(expected_first_field) +
                   "\", got \"" + Shown(line) + "\"");
  }
  return Status::Ok();
}

// Groups rows by series id, keeping the order of first appearance.
class SeriesByName {
 public:
  TraceSeries& Get(std::string_view name) {
    auto [it, inserted] = index_.try_emplace(std::string(name), series_.size());
    if (inserted) series_.push_back(TraceSeries{std::string(name), {}, {}});
    return series_[it->second];
  }
  std::vector<TraceSeries> Take() { return std::move(series_); }

 private:
  std::unordered_map<std::string, size_t> index_;
  std::vector<TraceSeries> series_;
};

}  // namespace

Result<TraceFormat> ParseTraceFormat(std::string_view name) {
  if (name == "crane") return TraceFormat::kCrane;
  if (name == "azure") return TraceFormat::kAzure;
  if (name == "alibaba-machine") return TraceFormat::kAlibabaMachine;
  return BadRequest("unknown trace format \"" + std::string(name) +
                    "\" (expected crane, azure or alibaba-machine)");
}

Result<TraceSeries> ParseCraneTrace(std::string_view text, std::string_view file) {
  LineReader r(text, file);
  RETURN_IF_ERROR(ExpectHeader(r, "ts"));
  TraceSeries s{std::string(file), {}, {}};
  std::string_view line;
  while (r.Next(&line)) {
    auto fields = SplitFields(line);
    RETURN_IF_ERROR(ExpectFields(r, fields, 2));
    int64_t ts;
    double value;
    RETURN_IF_ERROR(ParseInt(r, fields[0], "timestamp", &ts));
    RETURN_IF_ERROR(ParseDouble(r, fields[1], "value", &value));
    s.timestamps.push_back(ts);
    s.values.push_back(value);
  }
  if (s.values.empty()) return r.Error("no readings after the header");
  return s;
}

Result<std::vector<TraceSeries>> ParseAzureTrace(std::string_view text, std::string_view file,
                                                 AzureColumn column) {
  LineReader r(text, file);
  RETURN_IF_ERROR(ExpectHeader(r, "timestamp"));
  SeriesByName series;
  std::string_view line;
  const size_t index = column == AzureColumn::kMin ? 2 : column == AzureColumn::kMax ? 3 : 4;
  while (r.Next(&line)) {
    auto fields = SplitFields(line);
    RETURN_IF_ERROR(ExpectFields(r, fields, 5));
    int64_t ts;
    double readings[3];
    RETURN_IF_ERROR(ParseInt(r, fields[0], "timestamp", &ts));
    if (fields[1].empty()) return r.Error("empty vm_id");
    RETURN_IF_ERROR(ParseDouble(r, fields[2], "min_cpu", &readings[0]));
    RETURN_IF_ERROR(ParseDouble(r, fields[3], "max_cpu", &readings[1]));
    RETURN_IF_ERROR(ParseDouble(r, fields[4], "avg_cpu", &readings[2]));
    TraceSeries& s = series.Get(fields[1]);
    s.timestamps.push_back(ts);
    s.values.push_back(readings[index - 2]);
  }
  auto out = series.Take();
  if (out.empty()) return r.Error("no readings after the header");
  return out;
}

Result<std::vector<TraceSeries>> ParseAlibabaMachineUsage(std::string_view text,
                                                         std::string_view file) {
  LineReader r(text, file);
  SeriesByName series;
  std::string_view line;
  bool any_row = false;
  while (r.Next(&line)) {
    any_row = true;
    auto fields = SplitFields(line);
    RETURN_IF_ERROR(ExpectFields(r, fields, 9));
    if (fields[0].empty()) return r.Error("empty machine_id");
    int64_t ts;
    RETURN_IF_ERROR(ParseInt(r, fields[1], "time_stamp", &ts));
    TraceSeries& s = series.Get(fields[0]);
    if (fields[2].empty()) continue;  // no reading: a gap
    double cpu;
    RETURN_IF_ERROR(ParseDouble(r, fields[2], "cpu_util_percent", &cpu));
    if (cpu == -1 || cpu == 101) continue;  // the trace's invalid-reading markers: a gap
    if (cpu < 0 || cpu > 100) {
      return r.Error("cpu_util_percent " + Shown(fields[2]) + " is outside 0..100");
    }
    s.timestamps.push_back(ts);
    s.values.push_back(cpu);
  }
  if (!any_row) return r.Error("empty file");
  auto out = series.Take();
  std::erase_if(out, [](const TraceSeries& s) { return s.values.empty(); });
  return out;
}

Result<std::vector<BatchTask>> ParseAlibabaBatchTasks(std::string_view text,
                                                     std::string_view file) {
  LineReader r(text, file);
  RETURN_IF_ERROR(ExpectHeader(r, "task_create_time"));
  std::vector<BatchTask> tasks;
  std::string_view line;
  while (r.Next(&line)) {
    auto fields = SplitFields(line);
    RETURN_IF_ERROR(ExpectFields(r, fields, 8));
    BatchTask t;
    RETURN_IF_ERROR(ParseInt(r, fields[0], "task_create_time", &t.create_time));
    RETURN_IF_ERROR(ParseInt(r, fields[1], "task_end_time", &t.end_time));
    RETURN_IF_ERROR(ParseInt(r, fields[2], "job_id", &t.job_id));
    RETURN_IF_ERROR(ParseInt(r, fields[3], "task_id", &t.task_id));
    RETURN_IF_ERROR(ParseInt(r, fields[4], "number_of_instances", &t.instances));
    t.status = std::string(fields[5]);
    static const char* const kStatuses[] = {"Terminated", "Failed",    "Waiting",
                                            "Running",    "Cancelled", "Interrupted"};
    if (std::none_of(std::begin(kStatuses), std::end(kStatuses),
                     [&](const char* s) { return t.status == s; })) {
      return r.Error("unknown status \"" + Shown(fields[5]) + "\"");
    }
    t.cpu_per_instance = kNaN;
    t.memory_per_instance = kNaN;
    if (!fields[6].empty()) {
      RETURN_IF_ERROR(ParseDouble(r, fields[6], "cpu request", &t.cpu_per_instance));
    }
    if (!fields[7].empty()) {
      RETURN_IF_ERROR(ParseDouble(r, fields[7], "memory request", &t.memory_per_instance));
    }
    // Times may be negative (tasks created before the trace window opens); counts may not.
    if (t.instances < 0 || t.cpu_per_instance < 0 || t.memory_per_instance < 0) {
      return r.Error("negative instance count or request");
    }
    // end_time may precede create_time by a second in the real trace; users clamp durations.
    tasks.push_back(std::move(t));
  }
  if (tasks.empty()) return r.Error("no tasks after the header");
  return tasks;
}

Result<std::vector<TraceSeries>> ReadTrace(const std::string& path, TraceFormat format) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> files;
  const bool directory = fs::is_directory(path, ec);
  if (directory) {
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.ends_with(".csv") &&
          name.find("meta") == std::string::npos) {
        files.push_back(entry.path().string());
      }
    }
    if (ec) return BadRequest(path + ": " + ec.message());
    std::sort(files.begin(), files.end());
    if (files.empty()) return BadRequest(path + ": no .csv trace files in the directory");
  } else {
    files.push_back(path);
  }
  std::vector<TraceSeries> all;
  for (const auto& file : files) {
    ASSIGN_OR_RETURN(std::string text, base::ReadFile(file));
    std::string shown = directory ? fs::path(file).filename().string() : file;
    if (format == TraceFormat::kCrane) {
      ASSIGN_OR_RETURN(TraceSeries s, ParseCraneTrace(text, shown));
      all.push_back(std::move(s));
      continue;
    }
    Result<std::vector<TraceSeries>> parsed = format == TraceFormat::kAzure
                                                   ? ParseAzureTrace(text, shown)
                                                   : ParseAlibabaMachineUsage(text, shown);
    if (!parsed.ok()) return parsed.status();
    for (auto& s : *parsed) {
      if (files.size() > 1) s.name = shown + ":" + s.name;
      all.push_back(std::move(s));
    }
  }
  return all;
}

Result<scheduler::UsageHistory> Resample(const TraceSeries& series, int64_t step_seconds,
                                         int64_t max_gap_seconds) {
  if (step_seconds <= 0) return BadRequest("step must be positive");
  if (series.values.empty() || series.values.size() != series.timestamps.size()) {
    return BadRequest(series.name + ": no readings to resample");
  }
  auto [lo, hi] = std::minmax_element(series.timestamps.begin(), series.timestamps.end());
  auto floor_div = [](int64_t a, int64_t b) { return a / b - (a % b < 0 ? 1 : 0); };
  const int64_t first = floor_div(*lo, step_seconds);
  const int64_t last = floor_div(*hi, step_seconds);
  constexpr int64_t kMaxSteps = 50'000'000;
  if (static_cast<__int128>(last) - first >= kMaxSteps) {
    return BadRequest(series.name + ": readings span more than " + std::to_string(kMaxSteps) +
                      " steps");
  }
  const size_t steps = static_cast<size_t>(last - first + 1);
  std::vector<double> sum(steps, 0);
  std::vector<int> count(steps, 0);
  for (size_t i = 0; i < series.values.size(); ++i) {
    size_t k = static_cast<size_t>(floor_div(series.timestamps[i], step_seconds) - first);
    sum[k] += series.values[i];
    ++count[k];
  }
  scheduler::UsageHistory h;
  h.start_unix_seconds = first * step_seconds;
  h.step_seconds = step_seconds;
  h.samples.assign(steps, kNaN);
  for (size_t k = 0; k < steps; ++k) {
    if (count[k]) h.samples[k] = sum[k] / count[k];
  }
  const int64_t max_gap_steps = max_gap_seconds / step_seconds;
  size_t prev = 0;  // samples[0] is always a reading
  for (size_t k = 1; k < steps; ++k) {
    if (!count[k]) continue;
    const int64_t gap = static_cast<int64_t>(k - prev);
    if (gap > 1 && gap <= max_gap_steps) {
      for (size_t j = prev + 1; j < k; ++j) {
        double f = static_cast<double>(j - prev) / static_cast<double>(gap);
        h.samples[j] = h.samples[prev] + f * (h.samples[k] - h.samples[prev]);
      }
    }
    prev = k;
  }
  return h;
}

int64_t MedianInterval(const TraceSeries& series) {
  std::vector<int64_t> ts = series.timestamps;
  std::sort(ts.begin(), ts.end());
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < ts.size(); ++i) {
    if (ts[i] > ts[i - 1]) gaps.push_back(ts[i] - ts[i - 1]);
  }
  if (gaps.empty()) return 60;
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  return std::max<int64_t>(1, gaps[gaps.size() / 2]);
}

}  // namespace fulcrum::sim
