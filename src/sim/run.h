#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "base/status.h"
#include "sim/trace.h"

namespace fulcrum::sim {

// The format of an online trace file from its first line: `ts,value` is crane, `timestamp,vm_id`
// azure, anything else alibaba-machine (which has no header). A directory is sniffed by its first
// *.csv file that is not metadata.
base::Result<TraceFormat> SniffTraceFormat(const std::string& path);

// `fulcrum sim run --nodes N --days D --online DIR_OR_FILE[,...] --batch FILE
// --policy NAME[,NAME...] [--seed S] [--plot FILE.svg] [--batch-scale X] [--online-fill X]
// [--request-factor X] [--nodes-to-score-percent P] [--risk-bound P] [--safety-margin X]`: one
// JSON object per policy per line on `out` (cluster.h, ReportJson), errors on `err`. Returns the
// exit code (0 ok, 1 failure such as a malformed trace, 2 usage).
int RunSimRunCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace fulcrum::sim
