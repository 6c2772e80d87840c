#include "sim/flags.h"

#include <algorithm>

namespace fulcrum::sim {

FlagParse ParseSimFlags(const std::vector<std::string>& args, const std::set<std::string>& known,
                        std::map<std::string, std::string>* flags, std::string* error) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") return FlagParse::kHelp;
    if (!arg.starts_with("--")) {
      *error = "unexpected argument " + arg;
      return FlagParse::kError;
    }
    std::string name = arg.substr(2), value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      *error = "--" + name + " needs a value";
      return FlagParse::kError;
    }
    if (!known.count(name)) {
      *error = "unknown flag --" + name;
      return FlagParse::kError;
    }
    (*flags)[name] = value;
  }
  return FlagParse::kOk;
}

}  // namespace fulcrum::sim
