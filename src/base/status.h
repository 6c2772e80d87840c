#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace fulcrum::base {

// The outcome of an operation. Codes mirror the Kubernetes Status reasons that the API surfaces,
// so a failure deep in the store maps to the right HTTP code without translation tables.
enum class Code {
  kOk,
  kBadRequest,       // 400 BadRequest: the input could not be understood
  kUnauthorized,     // 401
  kForbidden,        // 403
  kNotFound,         // 404
  kMethodNotAllowed, // 405
  kNotAcceptable,    // 406
  kAlreadyExists,    // 409 AlreadyExists
  kConflict,         // 409 Conflict: optimistic concurrency failure
  kGone,             // 410 Expired: a compacted revision
  kRequestTooLarge,  // 413
  kUnsupportedMediaType,  // 415
  kInvalid,          // 422 Invalid: the object fails validation
  kTooManyRequests,  // 429
  kInternal,         // 500
  kUnavailable,      // 503
  kTimeout,          // 504
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsConflict() const { return code_ == Code::kConflict; }
  bool IsAlreadyExists() const { return code_ == Code::kAlreadyExists; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

const char* CodeName(Code code);

inline Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
inline Status AlreadyExists(std::string m) { return Status(Code::kAlreadyExists, std::move(m)); }
inline Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
inline Status Invalid(std::string m) { return Status(Code::kInvalid, std::move(m)); }
inline Status BadRequest(std::string m) { return Status(Code::kBadRequest, std::move(m)); }
inline Status Gone(std::string m) { return Status(Code::kGone, std::move(m)); }
inline Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }
inline Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }

// A value or the Status saying why there is none. Accessing value() of a failed Result aborts.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Internal("Result constructed from an OK status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace fulcrum::base

#define FULCRUM_CONCAT_INNER(a, b) a##b
#define FULCRUM_CONCAT(a, b) FULCRUM_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    ::fulcrum::base::Status status_macro_ = (expr);      \
    if (!status_macro_.ok()) return status_macro_;       \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, ResultExpr())`: binds the value or returns the failure.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(FULCRUM_CONCAT(result_macro_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
