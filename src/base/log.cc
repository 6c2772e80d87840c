#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <cstring>

#include "base/clock.h"

namespace fulcrum::base {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

LogLine::LogLine(LogLevel level, const char* file, int line) : level_(level) {
  static const char kLetters[] = {'D', 'I', 'W', 'E'};
  const char* base = std::strrchr(file, '/');
  out_ << kLetters[static_cast<int>(level_)] << ' ' << FormatRfc3339Micro(RealClock()->Now())
       << ' ' << (base ? base + 1 : file) << ':' << line << "] ";
}

LogLine::~LogLine() {
  out_ << '\n';
  std::string s = out_.str();
  std::fwrite(s.data(), 1, s.size(), stderr);
}

}  // namespace fulcrum::base
