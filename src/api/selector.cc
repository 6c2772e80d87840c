// Kubernetes label selectors (k8s.io/apimachinery/pkg/labels/selector.go, the grammar below) and
// field selectors (k8s.io/apimachinery/pkg/fields/selector.go).
//
//   <selector-syntax>         ::= <requirement> | <requirement> "," <selector-syntax>
//   <requirement>             ::= [!] KEY [ <set-based-restriction> | <exact-match-restriction> ]
//   <set-based-restriction>   ::= "" | <inclusion-exclusion> <value-set>
//   <inclusion-exclusion>     ::= "in" | "notin"
//   <value-set>               ::= "(" <values> ")"
//   <values>                  ::= VALUE | VALUE "," <values>
//   <exact-match-restriction> ::= ["=" | "==" | "!=" | ">" | "<"] VALUE
#include "api/selector.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

namespace fulcrum::api {
namespace {

using base::BadRequest;

// ---------------------------------------------------------------------------------------------
// Label syntax (k8s.io/apimachinery/pkg/util/validation).

constexpr std::string_view kQualifiedNameFmt = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
constexpr std::string_view kQualifiedNameErrMsg =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character";
constexpr std::string_view kLabelValueFmt = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
constexpr std::string_view kLabelValueErrMsg =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character";
constexpr std::string_view kDns1123SubdomainFmt =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
constexpr std::string_view kDns1123SubdomainErrMsg =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character";
constexpr std::size_t kQualifiedNameMaxLength = 63;
constexpr std::size_t kLabelValueMaxLength = 63;
constexpr std::size_t kDns1123SubdomainMaxLength = 253;

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool MatchesQualifiedName(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

// [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*
bool MatchesDns1123Subdomain(std::string_view s) {
  std::size_t start = 0;
  while (true) {
    std::size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (label.empty() || !IsLowerAlnum(label.front()) || !IsLowerAlnum(label.back())) return false;
    for (char c : label) {
      if (!IsLowerAlnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string RegexError(std::string_view msg, std::string_view fmt,
                       std::initializer_list<std::string_view> examples) {
  std::string out(msg);
  out += " (e.g. ";
  bool first = true;
  for (std::string_view e : examples) {
    if (!first) out += " or ";
    first = false;
    out += "'" + std::string(e) + "', ";
  }
  out += "regex used for validation is '" + std::string(fmt) + "')";
  return out;
}

std::string MaxLenError(std::size_t n) {
  return "must be no more than " + std::to_string(n) + " characters";
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

// field.Invalid(...).Error() for a string value.
std::string InvalidValue(std::string_view field, std::string_view value, std::string_view detail) {
  return std::string(field) + ": Invalid value: " + base::Quote(value) + ": " + std::string(detail);
}

// Go's %#v of a []string, as field.Invalid prints one.
std::string GoStringSlice(const std::vector<std::string>& values) {
  std::string out = "[]string{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += base::Quote(values[i]);
  }
  return out + "}";
}

// utilerrors.NewAggregate(...).Error().
std::string Aggregate(const std::vector<std::string>& errors) {
  if (errors.size() == 1) return errors[0];
  return "[" + Join(errors, ", ") + "]";
}

std::optional<long long> ParseInt64(std::string_view s) {
  bool plus = !s.empty() && s[0] == '+';  // strconv.ParseInt accepts one leading sign
  if (plus) s.remove_prefix(1);
  if (s.empty() || s[0] == '+' || (plus && s[0] == '-')) return std::nullopt;
  long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------------------------------------
// The label selector lexer and parser, after k8s.io/apimachinery/pkg/labels.

enum class Token {
  kError,
  kEnd,
  kClosedPar,
  kComma,
  kDoesNotExist,
  kDoubleEquals,
  kEquals,
  kGreaterThan,
  kIdentifier,
  kIn,
  kLessThan,
  kNotEquals,
  kNotIn,
  kOpenPar,
};

std::optional<Token> LiteralToken(std::string_view s) {
  static const std::map<std::string_view, Token> kTokens = {
      {")", Token::kClosedPar},     {",", Token::kComma},    {"!", Token::kDoesNotExist},
      {"==", Token::kDoubleEquals}, {"=", Token::kEquals},   {">", Token::kGreaterThan},
      {"in", Token::kIn},           {"<", Token::kLessThan}, {"!=", Token::kNotEquals},
      {"notin", Token::kNotIn},     {"(", Token::kOpenPar},
  };
  auto it = kTokens.find(s);
  if (it == kTokens.end()) return std::nullopt;
  return it->second;
}

bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool IsSpecialSymbol(char c) {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

struct ScannedItem {
  Token token;
  std::string literal;
};

// Splits the whole selector into tokens. Like the Go lexer, a NUL byte ends the input.
std::vector<ScannedItem> Scan(std::string_view s) {
  std::vector<ScannedItem> items;
  std::size_t pos = 0;
  auto peek = [&]() -> char { return pos < s.size() ? s[pos] : '\0'; };
  while (true) {
    while (peek() != '\0' && IsWhitespace(peek())) ++pos;
    char c = peek();
    if (c == '\0') {
      items.push_back({Token::kEnd, ""});
      return items;
    }
    if (IsSpecialSymbol(c)) {
      // The longest run of special symbols that is still a token.
      std::string buffer;
      std::optional<ScannedItem> last;
      while (IsSpecialSymbol(peek())) {
        buffer += peek();
        if (auto t = LiteralToken(buffer)) {
          last = ScannedItem{*t, buffer};
          ++pos;
        } else if (last) {
          break;
        } else {
          ++pos;
        }
      }
      if (last) {
        items.push_back(std::move(*last));
      } else {
        items.push_back({Token::kError, "error expected: keyword found '" + buffer + "'"});
      }
      continue;
    }
    std::string buffer;
    while (peek() != '\0' && !IsSpecialSymbol(peek()) && !IsWhitespace(peek())) buffer += s[pos++];
    auto t = LiteralToken(buffer);
    items.push_back({t ? *t : Token::kIdentifier, std::move(buffer)});
  }
}

enum class Context { kKeyAndOperator, kValues };

Status NewRequirement(std::string key, LabelSelector::Operator op, std::vector<std::string> values,
                      LabelSelector::Requirement* out) {
  using Op = LabelSelector::Operator;
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  std::vector<std::string> errors;
  if (auto key_errors = LabelKeyErrors(key); !key_errors.empty()) {
    errors.push_back(InvalidValue("key", key, Join(key_errors, "; ")));
  }
  long long number = 0;
  switch (op) {
    case Op::kIn:
    case Op::kNotIn:
      if (values.empty()) {
        errors.push_back("values: Invalid value: " + GoStringSlice(values) +
                         ": for 'in', 'notin' operators, values set can't be empty");
      }
      break;
    case Op::kEquals:
    case Op::kDoubleEquals:
    case Op::kNotEquals:
      if (values.size() != 1) {
        errors.push_back("values: Invalid value: " + GoStringSlice(values) +
                         ": exact-match compatibility requires one single value");
      }
      break;
    case Op::kExists:
    case Op::kDoesNotExist:
      if (!values.empty()) {
        errors.push_back("values: Invalid value: " + GoStringSlice(values) +
                         ": values set must be empty for exists and does not exist");
      }
      break;
    case Op::kGreaterThan:
    case Op::kLessThan:
      if (values.size() != 1) {
        errors.push_back("values: Invalid value: " + GoStringSlice(values) +
                         ": for 'Gt', 'Lt' operators, exactly one value is required");
      }
      for (std::size_t i = 0; i < values.size(); ++i) {
        auto n = ParseInt64(values[i]);
        if (!n) {
          errors.push_back(InvalidValue("values[" + std::to_string(i) + "]", values[i],
                                        "for 'Gt', 'Lt' operators, the value must be an integer"));
        } else {
          number = *n;
        }
      }
      break;
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (auto value_errors = LabelValueErrors(values[i]); !value_errors.empty()) {
      errors.push_back(InvalidValue("values[" + std::to_string(i) + "][" + key + "]", values[i],
                                    Join(value_errors, "; ")));
    }
  }
  if (!errors.empty()) return BadRequest(Aggregate(errors));
  out->key = std::move(key);
  out->op = op;
  out->values = std::move(values);
  out->number = number;
  return Status::Ok();
}

class SelectorParser {
 public:
  explicit SelectorParser(std::string_view text) : items_(Scan(text)) {}

  Status Parse(std::vector<LabelSelector::Requirement>* out) {
    while (true) {
      auto [tok, lit] = Lookahead(Context::kValues);
      switch (tok) {
        case Token::kIdentifier:
        case Token::kDoesNotExist: {
          LabelSelector::Requirement r;
          Status s = ParseRequirement(&r);
          if (!s.ok()) return BadRequest("unable to parse requirement: " + s.message());
          out->push_back(std::move(r));
          auto [t, l] = Consume(Context::kValues);
          if (t == Token::kEnd) return Status::Ok();
          if (t == Token::kComma) {
            auto [t2, l2] = Lookahead(Context::kValues);
            if (t2 != Token::kIdentifier && t2 != Token::kDoesNotExist) {
              return BadRequest("found '" + l2 + "', expected: identifier after ','");
            }
            break;
          }
          return BadRequest("found '" + l + "', expected: ',' or 'end of string'");
        }
        case Token::kEnd:
          return Status::Ok();
        default:
          return BadRequest("found '" + lit + "', expected: !, identifier, or 'end of string'");
      }
    }
  }

 private:
  using Op = LabelSelector::Operator;

  std::pair<Token, std::string> Lookahead(Context context) const {
    const ScannedItem& item = items_[std::min(position_, items_.size() - 1)];
    Token tok = item.token;
    if (context == Context::kValues && (tok == Token::kIn || tok == Token::kNotIn)) {
      tok = Token::kIdentifier;
    }
    return {tok, item.literal};
  }

  std::pair<Token, std::string> Consume(Context context) {
    auto result = Lookahead(context);
    if (position_ < items_.size() - 1) ++position_;
    return result;
  }

  Status ParseRequirement(LabelSelector::Requirement* out) {
    std::optional<Op> op;
    auto [tok, lit] = Consume(Context::kValues);
    if (tok == Token::kDoesNotExist) {
      op = Op::kDoesNotExist;
      std::tie(tok, lit) = Consume(Context::kValues);
    }
    if (tok != Token::kIdentifier) return BadRequest("found '" + lit + "', expected: identifier");
    if (auto key_errors = LabelKeyErrors(lit); !key_errors.empty()) {
      return BadRequest(InvalidValue("<nil>", lit, Join(key_errors, "; ")));
    }
    std::string key = lit;
    auto [next, next_lit] = Lookahead(Context::kValues);
    if ((next == Token::kEnd || next == Token::kComma) && !op) op = Op::kExists;
    if (op) return NewRequirement(std::move(key), *op, {}, out);

    auto [op_tok, op_lit] = Consume(Context::kKeyAndOperator);
    std::vector<std::string> values;
    switch (op_tok) {
      case Token::kIn:
        op = Op::kIn;
        break;
      case Token::kNotIn:
        op = Op::kNotIn;
        break;
      case Token::kEquals:
        op = Op::kEquals;
        break;
      case Token::kDoubleEquals:
        op = Op::kDoubleEquals;
        break;
      case Token::kNotEquals:
        op = Op::kNotEquals;
        break;
      case Token::kGreaterThan:
        op = Op::kGreaterThan;
        break;
      case Token::kLessThan:
        op = Op::kLessThan;
        break;
      default:
        return BadRequest("found '" + op_lit + "', expected: in, notin, =, ==, !=, gt, lt");
    }
    if (*op == Op::kIn || *op == Op::kNotIn) {
      RETURN_IF_ERROR(ParseValues(&values));
    } else {
      RETURN_IF_ERROR(ParseExactValue(&values));
    }
    return NewRequirement(std::move(key), *op, std::move(values), out);
  }

  Status ParseValues(std::vector<std::string>* values) {
    auto [tok, lit] = Consume(Context::kValues);
    if (tok != Token::kOpenPar) return BadRequest("found '" + lit + "' expected: '('");
    auto [next, next_lit] = Lookahead(Context::kValues);
    switch (next) {
      case Token::kIdentifier:
      case Token::kComma: {
        RETURN_IF_ERROR(ParseIdentifiersList(values));
        auto [close, close_lit] = Consume(Context::kValues);
        if (close != Token::kClosedPar) {
          return BadRequest("found '" + close_lit + "', expected: ')'");
        }
        return Status::Ok();
      }
      case Token::kClosedPar:
        Consume(Context::kValues);
        values->push_back("");
        return Status::Ok();
      default:
        return BadRequest("found '" + next_lit + "', expected: ',', ')' or identifier");
    }
  }

  // A possibly empty list of comma-separated, possibly empty identifiers; stops before ')'.
  Status ParseIdentifiersList(std::vector<std::string>* values) {
    while (true) {
      auto [tok, lit] = Consume(Context::kValues);
      if (tok == Token::kIdentifier) {
        values->push_back(lit);
        auto [next, next_lit] = Lookahead(Context::kValues);
        if (next == Token::kComma) continue;
        if (next == Token::kClosedPar) return Status::Ok();
        return BadRequest("found '" + next_lit + "', expected: ',' or ')'");
      }
      if (tok == Token::kComma) {
        if (values->empty()) values->push_back("");  // "(,"
        auto [next, next_lit] = Lookahead(Context::kValues);
        if (next == Token::kClosedPar) {
          values->push_back("");  // ",)"
          return Status::Ok();
        }
        if (next == Token::kComma) {
          Consume(Context::kValues);
          values->push_back("");  // ",,"
        }
        continue;
      }
      return BadRequest("found '" + lit + "', expected: ',', or identifier");
    }
  }

  Status ParseExactValue(std::vector<std::string>* values) {
    auto [next, next_lit] = Lookahead(Context::kValues);
    if (next == Token::kEnd || next == Token::kComma) {
      values->push_back("");
      return Status::Ok();
    }
    auto [tok, lit] = Consume(Context::kValues);
    if (tok != Token::kIdentifier) return BadRequest("found '" + lit + "', expected: identifier");
    values->push_back(lit);
    return Status::Ok();
  }

  std::vector<ScannedItem> items_;
  std::size_t position_ = 0;
};

void SortByKey(std::vector<LabelSelector::Requirement>* requirements) {
  std::stable_sort(requirements->begin(), requirements->end(),
                   [](const auto& a, const auto& b) { return a.key < b.key; });
}

// ---------------------------------------------------------------------------------------------
// Field selector escaping (fields.EscapeValue / UnescapeValue).

std::string EscapeFieldValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == ',' || c == '=') out += '\\';
    out += c;
  }
  return out;
}

Status UnescapeFieldValue(std::string_view s, std::string* out) {
  out->clear();
  bool in_slash = false;
  for (char c : s) {
    if (in_slash) {
      if (c != '\\' && c != ',' && c != '=') {
        return BadRequest("invalid field selector: invalid escape sequence: \\" +
                          std::string(1, c));
      }
      *out += c;
      in_slash = false;
      continue;
    }
    if (c == '\\') {
      in_slash = true;
    } else if (c == ',' || c == '=') {
      return BadRequest("invalid field selector: unescaped character in value: " +
                        std::string(1, c));
    } else {
      *out += c;
    }
  }
  if (in_slash) return BadRequest("invalid field selector: invalid escape sequence: \\");
  return Status::Ok();
}

// fields.splitTerm: splits at the first operator; at one place "!=" and "==" beat "=".
bool SplitFieldTerm(std::string_view term, std::string_view* lhs, std::string_view* op,
                    std::string_view* rhs) {
  for (std::size_t i = 0; i < term.size(); ++i) {
    for (std::string_view candidate : {"!=", "==", "="}) {
      if (term.substr(i, candidate.size()) == candidate) {
        *lhs = term.substr(0, i);
        *op = candidate;
        *rhs = term.substr(i + candidate.size());
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> LabelKeyErrors(std::string_view key) {
  std::vector<std::string> errors;
  std::string_view name = key;
  std::size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) {
      errors.push_back(
          "a qualified name " +
          RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt, {"MyName", "my.name", "123-abc"}) +
          " with an optional DNS subdomain prefix and '/' (e.g. "
          "'example.com/MyName')");
      return errors;
    }
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) {
      errors.push_back("prefix part must be non-empty");
    } else {
      if (prefix.size() > kDns1123SubdomainMaxLength) {
        errors.push_back("prefix part " + MaxLenError(kDns1123SubdomainMaxLength));
      }
      if (!MatchesDns1123Subdomain(prefix)) {
        errors.push_back("prefix part " + RegexError(kDns1123SubdomainErrMsg, kDns1123SubdomainFmt,
                                                     {"example.com"}));
      }
    }
  }
  if (name.empty()) {
    errors.push_back("name part must be non-empty");
  } else if (name.size() > kQualifiedNameMaxLength) {
    errors.push_back("name part " + MaxLenError(kQualifiedNameMaxLength));
  }
  if (!MatchesQualifiedName(name)) {
    errors.push_back("name part " + RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt,
                                               {"MyName", "my.name", "123-abc"}));
  }
  return errors;
}

std::vector<std::string> LabelValueErrors(std::string_view value) {
  std::vector<std::string> errors;
  if (value.size() > kLabelValueMaxLength) errors.push_back(MaxLenError(kLabelValueMaxLength));
  if (!value.empty() && !MatchesQualifiedName(value)) {
    errors.push_back(
        RegexError(kLabelValueErrMsg, kLabelValueFmt, {"MyValue", "my_value", "12345"}));
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------
// LabelSelector.

bool LabelSelector::Requirement::Matches(const std::string* value) const {
  auto contains = [&] {
    return value != nullptr && std::binary_search(values.begin(), values.end(), *value);
  };
  switch (op) {
    case Operator::kEquals:
    case Operator::kDoubleEquals:
    case Operator::kIn:
      return contains();
    case Operator::kNotEquals:
    case Operator::kNotIn:
      return !contains();
    case Operator::kExists:
      return value != nullptr;
    case Operator::kDoesNotExist:
      return value == nullptr;
    case Operator::kGreaterThan:
    case Operator::kLessThan: {
      if (value == nullptr) return false;
      auto n = ParseInt64(*value);
      if (!n) return false;
      return op == Operator::kGreaterThan ? *n > number : *n < number;
    }
  }
  return false;
}

std::string LabelSelector::Requirement::ToString() const {
  std::string out;
  if (op == Operator::kDoesNotExist) out += "!";
  out += key;
  switch (op) {
    case Operator::kEquals:
      out += "=";
      break;
    case Operator::kDoubleEquals:
      out += "==";
      break;
    case Operator::kNotEquals:
      out += "!=";
      break;
    case Operator::kIn:
      out += " in ";
      break;
    case Operator::kNotIn:
      out += " notin ";
      break;
    case Operator::kGreaterThan:
      out += ">";
      break;
    case Operator::kLessThan:
      out += "<";
      break;
    case Operator::kExists:
    case Operator::kDoesNotExist:
      return out;
  }
  bool set = op == Operator::kIn || op == Operator::kNotIn;
  if (set) out += "(";
  out += Join(values, ",");
  if (set) out += ")";
  return out;
}

LabelSelector LabelSelector::Nothing() {
  LabelSelector s;
  s.nothing_ = true;
  return s;
}

Result<LabelSelector> LabelSelector::Parse(std::string_view text) {
  LabelSelector selector;
  SelectorParser parser(text);
  RETURN_IF_ERROR(parser.Parse(&selector.requirements_));
  SortByKey(&selector.requirements_);
  return selector;
}

Result<LabelSelector> LabelSelector::FromJson(const Json& json) {
  if (json.is_null()) return Nothing();
  if (!json.is_object()) return BadRequest("a label selector must be an object");
  LabelSelector selector;
  if (auto it = json.find("matchLabels"); it != json.end() && !it->is_null()) {
    if (!it->is_object()) return BadRequest("matchLabels must be an object");
    for (auto label = it->begin(); label != it->end(); ++label) {
      if (!label->is_string()) {
        return BadRequest("matchLabels[" + base::Quote(label.key()) + "] must be a string");
      }
      Requirement r;
      RETURN_IF_ERROR(
          NewRequirement(label.key(), Operator::kEquals, {label->get<std::string>()}, &r));
      selector.requirements_.push_back(std::move(r));
    }
  }
  if (auto it = json.find("matchExpressions"); it != json.end() && !it->is_null()) {
    if (!it->is_array()) return BadRequest("matchExpressions must be a list");
    for (const Json& expr : *it) {
      if (!expr.is_object()) return BadRequest("matchExpressions entries must be objects");
      std::string key = base::StringAt(expr, {"key"});
      const Json* op_json = base::FindPath(expr, {"operator"});
      std::string op_name =
          op_json != nullptr && op_json->is_string() ? op_json->get<std::string>() : "";
      Operator op;
      if (op_name == "In") {
        op = Operator::kIn;
      } else if (op_name == "NotIn") {
        op = Operator::kNotIn;
      } else if (op_name == "Exists") {
        op = Operator::kExists;
      } else if (op_name == "DoesNotExist") {
        op = Operator::kDoesNotExist;
      } else {
        return BadRequest(base::Quote(op_name) + " is not a valid label selector operator");
      }
      std::vector<std::string> values;
      if (const Json* v = base::FindPath(expr, {"values"}); v != nullptr && !v->is_null()) {
        if (!v->is_array()) return BadRequest("matchExpressions values must be a list");
        for (const Json& value : *v) {
          if (!value.is_string()) return BadRequest("matchExpressions values must be strings");
          values.push_back(value.get<std::string>());
        }
      }
      Requirement r;
      RETURN_IF_ERROR(NewRequirement(std::move(key), op, std::move(values), &r));
      selector.requirements_.push_back(std::move(r));
    }
  }
  SortByKey(&selector.requirements_);
  return selector;
}

bool LabelSelector::Matches(const Json& labels) const {
  if (nothing_) return false;
  for (const Requirement& r : requirements_) {
    const std::string* value = nullptr;
    if (labels.is_object()) {
      auto it = labels.find(r.key);
      if (it != labels.end() && it->is_string()) value = &it->get_ref<const std::string&>();
    }
    if (!r.Matches(value)) return false;
  }
  return true;
}

bool LabelSelector::Matches(
    const std::vector<std::pair<std::string, std::string>>& sorted_labels) const {
  if (nothing_) return false;
  for (const Requirement& r : requirements_) {
    auto it = std::lower_bound(sorted_labels.begin(), sorted_labels.end(), r.key,
                               [](const std::pair<std::string, std::string>& label,
                                  const std::string& key) { return label.first < key; });
    const std::string* value =
        it != sorted_labels.end() && it->first == r.key ? &it->second : nullptr;
    if (!r.Matches(value)) return false;
  }
  return true;
}

std::optional<std::pair<std::string, std::string>> LabelSelector::EqualityRequirement() const {
  for (const Requirement& r : requirements_) {
    bool equality =
        r.op == Operator::kEquals || r.op == Operator::kDoubleEquals || r.op == Operator::kIn;
    if (equality && r.values.size() == 1) return std::make_pair(r.key, r.values[0]);
  }
  return std::nullopt;
}

std::string LabelSelector::ToString() const {
  std::vector<std::string> parts;
  for (const Requirement& r : requirements_) parts.push_back(r.ToString());
  return Join(parts, ",");
}

// ---------------------------------------------------------------------------------------------
// FieldSelector.

Result<FieldSelector> FieldSelector::Parse(std::string_view text) {
  // Split on commas not escaped by a backslash.
  std::vector<std::string> parts;
  if (!text.empty()) {
    std::size_t start = 0;
    bool in_slash = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (in_slash) {
        in_slash = false;
      } else if (text[i] == '\\') {
        in_slash = true;
      } else if (text[i] == ',') {
        parts.emplace_back(text.substr(start, i - start));
        start = i + 1;
      }
    }
    parts.emplace_back(text.substr(start));
  }
  std::sort(parts.begin(), parts.end());

  FieldSelector selector;
  for (const std::string& part : parts) {
    if (part.empty()) continue;
    std::string_view lhs, op, rhs;
    if (!SplitFieldTerm(part, &lhs, &op, &rhs)) {
      return BadRequest("invalid selector: '" + std::string(text) + "'; can't understand '" + part +
                        "'");
    }
    Term term;
    term.field = std::string(lhs);
    term.equals = op != "!=";
    RETURN_IF_ERROR(UnescapeFieldValue(rhs, &term.value));
    selector.terms_.push_back(std::move(term));
  }
  return selector;
}

bool FieldSelector::Matches(const FieldLookup& lookup) const {
  std::string value;
  for (const Term& t : terms_) {
    value.clear();
    if (!lookup(t.field, &value)) return false;
    if ((value == t.value) != t.equals) return false;
  }
  return true;
}

Status FieldSelector::Validate(const std::function<bool(std::string_view field)>& supported) const {
  for (const Term& t : terms_) {
    if (!supported(t.field)) return BadRequest("field label not supported: " + t.field);
  }
  return Status::Ok();
}

std::vector<std::string> FieldSelector::fields() const {
  std::vector<std::string> out;
  for (const Term& t : terms_) {
    if (std::find(out.begin(), out.end(), t.field) == out.end()) out.push_back(t.field);
  }
  return out;
}

std::optional<std::string> FieldSelector::RequiresExactMatch(std::string_view field) const {
  for (const Term& t : terms_) {
    if (t.equals && t.field == field) return t.value;
  }
  return std::nullopt;
}

std::string FieldSelector::ToString() const {
  std::vector<std::string> parts;
  for (const Term& t : terms_) {
    parts.push_back(t.field + (t.equals ? "=" : "!=") + EscapeFieldValue(t.value));
  }
  return Join(parts, ",");
}

}  // namespace fulcrum::api
