#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace fulcrum::sim {

enum class FlagParse { kOk, kHelp, kError };

// Parses `--name value` and `--name=value` pairs of a `fulcrum sim` subcommand. kHelp when -h or
// --help is among them; kError, with `error` saying why, on a positional argument, a flag
// missing its value or a name not in `known`. A repeated flag keeps its last value.
FlagParse ParseSimFlags(const std::vector<std::string>& args, const std::set<std::string>& known,
                        std::map<std::string, std::string>* flags, std::string* error);

}  // namespace fulcrum::sim
