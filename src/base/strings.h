// Small string helpers shared by flag parsers.
#pragma once

#include <string>
#include <vector>

namespace fulcrum::base {

// "a,b,,c" → {"a", "b", "c"}: the comma-separated items of a flag value, empty ones dropped.
std::vector<std::string> SplitList(const std::string& list);

}  // namespace fulcrum::base
