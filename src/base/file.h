#pragma once

#include <string>

#include "base/status.h"

namespace fulcrum::base {

// Reads a whole file. NotFound if it does not exist, Internal on other errors.
Result<std::string> ReadFile(const std::string& path);
// Writes `data` to a temporary file beside `path`, fsyncs it and renames it over `path`, so a
// reader sees the old or the new content, never a mix. `mode` is the new file's permission bits.
Status WriteFileAtomic(const std::string& path, const std::string& data, int mode = 0644);
// Creates the directory and its parents (mode 0755, or `mode`). OK if it exists.
Status MakeDirs(const std::string& path, int mode = 0755);

}  // namespace fulcrum::base
