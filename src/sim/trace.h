#pragma once

// Readers for the public cluster traces described in ../shared/traces/README.md: Crane's
// application CPU test data, the Azure Public Dataset V2 VM readings, Alibaba cluster-trace-v2018
// machine_usage and cluster-trace-v2017 batch_task.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "scheduler/predictor.h"

namespace fulcrum::sim {

// Irregular readings of one series (one application, VM or machine), in file order.
struct TraceSeries {
  std::string name;                  // "app3.csv", a VM id, a machine id
  std::vector<int64_t> timestamps;   // seconds
  std::vector<double> values;
};

enum class TraceFormat { kCrane, kAzure, kAlibabaMachine };

// "crane", "azure", "alibaba-machine". BadRequest for any other name.
base::Result<TraceFormat> ParseTraceFormat(std::string_view name);

// Every parser takes the file's whole text and the name used in errors. A malformed or truncated
// input is BadRequest naming the file and line ("app3.csv:1042: expected 2 fields, got 1"); no
// field is ever read as zero by default.

// `ts,value` with that header: one series named after `file`.
base::Result<TraceSeries> ParseCraneTrace(std::string_view text, std::string_view file);

// Which reading of an Azure row to use.
enum class AzureColumn { kMin, kMax, kAvg };
// `timestamp,vm_id,min_cpu,max_cpu,avg_cpu` with that header: one series per VM, in order of
// first appearance.
base::Result<std::vector<TraceSeries>> ParseAzureTrace(std::string_view text, std::string_view file,
                                                      AzureColumn column = AzureColumn::kAvg);

// v2018 machine_usage, no header, nine fields: one cpu_util_percent series per machine, in order
// of first appearance. Readings of -1 or 101 (the trace's invalid markers) and empty readings
// are left out, so they become gaps; any other value outside 0..100 is an error.
base::Result<std::vector<TraceSeries>> ParseAlibabaMachineUsage(std::string_view text,
                                                                std::string_view file);

// One row of v2017 batch_task. Times in seconds from the trace start; CPU in cores x 100.
struct BatchTask {
  int64_t create_time = 0;
  int64_t end_time = 0;     // 0 while the task has not ended; times may be negative
  int64_t job_id = 0;
  int64_t task_id = 0;
  int64_t instances = 0;
  std::string status;       // Terminated, Failed, Waiting, Running, Cancelled, Interrupted
  double cpu_per_instance = 0;     // NaN where the trace leaves it empty
  double memory_per_instance = 0;  // normalised; NaN where empty
};
// With the trace's header line; validates field counts, numbers and statuses.
base::Result<std::vector<BatchTask>> ParseAlibabaBatchTasks(std::string_view text,
                                                           std::string_view file);

// Reads a file, or every *.csv file of a directory in name order except metadata files (names
// containing "meta"), and returns all their series. Series names from a directory are prefixed
// with the file name where the format names series by id.
base::Result<std::vector<TraceSeries>> ReadTrace(const std::string& path, TraceFormat format);

// Resamples readings onto a fixed step: a step's value is the mean of the readings that fall in
// it; steps without a reading are linearly interpolated when the gap between the readings around
// them is at most `max_gap_seconds`, and are NaN (a gap the predictors skip) otherwise. Readings
// need not be sorted. InvalidArgument-like BadRequest if the step is not positive or the series
// has no reading.
base::Result<scheduler::UsageHistory> Resample(const TraceSeries& series, int64_t step_seconds,
                                               int64_t max_gap_seconds = 1800);

// The median interval between consecutive distinct timestamps (at least 1), 60 if unknown.
int64_t MedianInterval(const TraceSeries& series);

}  // namespace fulcrum::sim
