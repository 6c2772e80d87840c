#pragma once

#include <sstream>
#include <string_view>

namespace fulcrum::base {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Set once at start-up (from --v or FULCRUM_LOG).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// One log line, written to stderr as a whole when the object dies. Thread-safe.
class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  template <typename T>
  LogLine& operator<<(const T& v) {
    out_ << v;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream out_;
};

}  // namespace fulcrum::base

#define FULCRUM_LOG(level)                                                             \
  if (::fulcrum::base::LogLevel::level < ::fulcrum::base::GetLogLevel()) {            \
  } else                                                                               \
    ::fulcrum::base::LogLine(::fulcrum::base::LogLevel::level, __FILE__, __LINE__)
#define LOG_DEBUG FULCRUM_LOG(kDebug)
#define LOG_INFO FULCRUM_LOG(kInfo)
#define LOG_WARNING FULCRUM_LOG(kWarning)
#define LOG_ERROR FULCRUM_LOG(kError)
