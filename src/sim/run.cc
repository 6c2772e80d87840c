#include "sim/run.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "base/file.h"
#include "base/strings.h"
#include "scheduler/framework.h"
#include "sim/cluster.h"
#include "sim/flags.h"

namespace fulcrum::sim {
namespace {

using base::BadRequest;
using base::Result;

constexpr char kRunUsage[] =
    "usage: fulcrum sim run --nodes N --days D --online DIR_OR_FILE[,DIR_OR_FILE...]\n"
    "                       --batch BATCH_TASK_CSV --policy NAME[,NAME...] [--seed S]\n"
    "                       [--plot FILE.svg] [--batch-scale X] [--online-fill X]\n"
    "                       [--request-factor X] [--nodes-to-score-percent P]\n"
    "                       [--risk-bound P] [--safety-margin X]\n"
    "policies: requests, load-aware, archimedes, oracle\n";

template <typename T>
bool ParseNumber(const std::string& text, T* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

Result<std::vector<TraceSeries>> ReadOnline(const std::string& list) {
  std::vector<TraceSeries> all;
  for (const std::string& path : base::SplitList(list)) {
    ASSIGN_OR_RETURN(TraceFormat format, SniffTraceFormat(path));
    ASSIGN_OR_RETURN(std::vector<TraceSeries> series, ReadTrace(path, format));
    for (TraceSeries& s : series) all.push_back(std::move(s));
  }
  if (all.empty()) return BadRequest("--online: no series in " + list);
  return all;
}

}  // namespace

Result<TraceFormat> SniffTraceFormat(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.ends_with(".csv") &&
          name.find("meta") == std::string::npos) {
        files.push_back(entry.path().string());
      }
    }
    if (files.empty()) return BadRequest(path + ": no *.csv trace files");
    file = *std::min_element(files.begin(), files.end());
  }
  std::ifstream in(file);
  std::string first;
  if (!in || !std::getline(in, first)) return BadRequest(file + ":1: cannot read the first line");
  if (first.starts_with("ts,")) return TraceFormat::kCrane;
  if (first.starts_with("timestamp,")) return TraceFormat::kAzure;
  return TraceFormat::kAlibabaMachine;
}

int RunSimRunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  static const std::set<std::string> kFlags = {
      "nodes", "days", "online", "batch", "policy", "seed", "plot", "batch-scale",
      "online-fill", "request-factor", "nodes-to-score-percent", "risk-bound", "safety-margin"};
  std::map<std::string, std::string> flags;
  std::string error;
  switch (ParseSimFlags(args, kFlags, &flags, &error)) {
    case FlagParse::kHelp:
      out << kRunUsage;
      return 0;
    case FlagParse::kError:
      err << "fulcrum sim run: " << error << "\n" << kRunUsage;
      return 2;
    case FlagParse::kOk:
      break;
  }
  for (const char* required : {"nodes", "days", "online", "batch", "policy"}) {
    if (!flags.count(required)) {
      err << "fulcrum sim run: --" << required << " is required\n" << kRunUsage;
      return 2;
    }
  }
  ClusterOptions options;
  bool ok = ParseNumber(flags["nodes"], &options.nodes) && options.nodes > 0 &&
            ParseNumber(flags["days"], &options.days) && options.days > 0 &&
            (!flags.count("seed") || ParseNumber(flags["seed"], &options.seed)) &&
            (!flags.count("batch-scale") ||
             (ParseNumber(flags["batch-scale"], &options.batch_scale) &&
              options.batch_scale >= 0)) &&
            (!flags.count("online-fill") ||
             (ParseNumber(flags["online-fill"], &options.online_fill) &&
              options.online_fill > 0 && options.online_fill <= 1)) &&
            (!flags.count("request-factor") ||
             (ParseNumber(flags["request-factor"], &options.request_factor) &&
              options.request_factor > 0)) &&
            (!flags.count("risk-bound") ||
             (ParseNumber(flags["risk-bound"], &options.risk_bound) && options.risk_bound > 0 &&
              options.risk_bound < 1)) &&
            (!flags.count("safety-margin") ||
             (ParseNumber(flags["safety-margin"], &options.safety_margin) &&
              options.safety_margin >= 0 && options.safety_margin < 1)) &&
            (!flags.count("nodes-to-score-percent") ||
             (ParseNumber(flags["nodes-to-score-percent"], &options.percentage_of_nodes_to_score) &&
              options.percentage_of_nodes_to_score >= 0 &&
              options.percentage_of_nodes_to_score <= 100));
  if (!ok) {
    err << "fulcrum sim run: --nodes and --days must be positive integers, --seed an unsigned "
           "integer, --batch-scale >= 0, --online-fill in (0, 1], --request-factor > 0, "
           "--risk-bound in (0, 1), --safety-margin in [0, 1), --nodes-to-score-percent "
           "0..100\n"
        << kRunUsage;
    return 2;
  }
  std::vector<std::string> policies = base::SplitList(flags["policy"]);
  std::vector<std::string> known = scheduler::PolicyNames();
  for (const std::string& p : policies) {
    if (std::find(known.begin(), known.end(), p) == known.end()) {
      err << "fulcrum sim run: unknown policy " << p
          << " (known: requests, load-aware, archimedes, oracle)\n";
      return 2;
    }
  }
  if (policies.empty()) {
    err << "fulcrum sim run: --policy needs at least one name\n" << kRunUsage;
    return 2;
  }

  auto online = ReadOnline(flags["online"]);
  if (!online.ok()) {
    err << "fulcrum sim run: " << online.status().message() << "\n";
    return 1;
  }
  auto batch_text = base::ReadFile(flags["batch"]);
  if (!batch_text.ok()) {
    err << "fulcrum sim run: " << flags["batch"] << ": " << batch_text.status().message() << "\n";
    return 1;
  }
  std::string batch_name = std::filesystem::path(flags["batch"]).filename().string();
  auto tasks = ParseAlibabaBatchTasks(*batch_text, batch_name);
  if (!tasks.ok()) {
    err << "fulcrum sim run: " << tasks.status().message() << "\n";
    return 1;
  }
  auto workload = BuildWorkload(*online, *tasks, options);
  if (!workload.ok()) {
    err << "fulcrum sim run: " << workload.status().message() << "\n";
    return 1;
  }
  std::vector<PolicyReport> reports;
  for (const std::string& p : policies) {
    auto report = RunCluster(*workload, p, options);
    if (!report.ok()) {
      err << "fulcrum sim run: " << report.status().message() << "\n";
      return 1;
    }
    out << ReportJson(*report, options.nodes, options.days) << std::endl;
    reports.push_back(std::move(*report));
  }
  if (flags.count("plot")) {
    base::Status written = base::WriteFileAtomic(flags["plot"], PlotSvg(reports));
    if (!written.ok()) {
      err << "fulcrum sim run: --plot: " << written.message() << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace fulcrum::sim
