// Image layers for the agent's tests.
#pragma once

#include <string>

#include "agent/tar.h"

namespace fulcrum::agent {

// A layer tar holding one executable file under bin/ (`file` is its path, e.g. "bin/hello").
inline std::string OneFileLayer(const std::string& file, const std::string& content) {
  std::string out;
  TarWriter w(&out);
  w.AddDirectory("bin");
  w.AddFile(file, content, 0755);
  w.Finish();
  return out;
}

}  // namespace fulcrum::agent
