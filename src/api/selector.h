#pragma once

// Kubernetes label selectors (k8s.io/apimachinery/pkg/labels, metav1.LabelSelector) and field
// selectors (k8s.io/apimachinery/pkg/fields).
//
// Selectors are immutable values once built: every const method is safe to call from any
// number of threads at once.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/json.h"
#include "base/status.h"

namespace fulcrum::api {

using base::Json;
using base::Result;
using base::Status;

// Kubernetes' label syntax. Each returns the problems with the input in Kubernetes' words
// (validation.IsQualifiedName / IsValidLabelValue), or nothing when it is valid. A key is an
// optional DNS-subdomain prefix and "/", then a name of at most 63 characters of [-A-Za-z0-9_.]
// that starts and ends with an alphanumeric; a value is empty or such a name.
std::vector<std::string> LabelKeyErrors(std::string_view key);
std::vector<std::string> LabelValueErrors(std::string_view value);

// A conjunction of label requirements. The default-constructed selector matches everything.
class LabelSelector {
 public:
  enum class Operator {
    kEquals,        // key=value
    kDoubleEquals,  // key==value
    kNotEquals,     // key!=value (also matches objects without the label)
    kIn,            // key in (a,b)
    kNotIn,         // key notin (a,b) (also matches objects without the label)
    kExists,        // key
    kDoesNotExist,  // !key
    kGreaterThan,   // key>5 (the label must be an integer)
    kLessThan,      // key<5
  };

  struct Requirement {
    std::string key;
    Operator op = Operator::kExists;
    std::vector<std::string> values;  // sorted and unique; one value for =, ==, !=, >, <
    long long number = 0;             // the integer of > and <

    // Whether a label set where `key` has `value` (nullptr: the label is absent) satisfies this.
    bool Matches(const std::string* value) const;
    // Kubernetes' canonical text: "a=b", "!a", "a in (x,y)", ...
    std::string ToString() const;
  };

  LabelSelector() = default;

  // A selector that matches no object: what a null metav1.LabelSelector means.
  static LabelSelector Nothing();

  // Parses the string form of the labelSelector query parameter, e.g.
  // "app=web,tier!=db, env in (prod, staging),!canary,version>3". Whitespace around tokens is
  // ignored; "" matches everything. Fails with BadRequest and Kubernetes' message, e.g.
  //   unable to parse requirement: values[0][app]: Invalid value: "-x": a valid label must be ...
  //   found 'b', expected: ',' or 'end of string'
  static Result<LabelSelector> Parse(std::string_view text);

  // Converts a metav1.LabelSelector object ({"matchLabels": {...}, "matchExpressions":
  // [{"key", "operator": In|NotIn|Exists|DoesNotExist, "values"}]}). null gives Nothing(), and
  // {} matches everything. Fails with BadRequest when the shape, an operator, a key or a value
  // is invalid.
  static Result<LabelSelector> FromJson(const Json& selector);

  // `labels` is a metadata.labels object; null or a missing object means no labels. Labels whose
  // values are not strings are treated as absent.
  bool Matches(const Json& labels) const;
  // The same on labels kept as (key, value) pairs sorted by key with unique keys, as the watch
  // cache stores them; no allocation.
  bool Matches(const std::vector<std::pair<std::string, std::string>>& sorted_labels) const;

  // True when the selector places no requirement (matches every object).
  bool Empty() const { return !nothing_ && requirements_.empty(); }
  bool MatchesNothing() const { return nothing_; }

  // One key=value pair every matching object must carry (from =, == or a single-value "in"),
  // usable for an index lookup before Matches() checks the rest; nullopt when there is none.
  std::optional<std::pair<std::string, std::string>> EqualityRequirement() const;

  // Requirements sorted by key.
  const std::vector<Requirement>& requirements() const { return requirements_; }

  // Kubernetes' canonical string form, which Parse() accepts back.
  std::string ToString() const;

 private:
  std::vector<Requirement> requirements_;
  bool nothing_ = false;
};

// A conjunction of field terms "field=value", "field==value" or "field!=value", as sent in the
// fieldSelector query parameter. Field names are not checked against a kind here: the server
// calls Validate() with the fields the kind supports.
class FieldSelector {
 public:
  struct Term {
    std::string field;
    std::string value;   // unescaped
    bool equals = true;  // false for !=
  };

  // Looks up `field` of one object, storing its value in *value. Returns false when the kind does
  // not support selecting on `field`.
  using FieldLookup = std::function<bool(std::string_view field, std::string* value)>;

  FieldSelector() = default;  // matches everything

  // Parses "a=b,c!=d,e==f". In values, "\," "\=" and "\\" stand for , = and \ (fields.EscapeValue).
  // Whitespace is not trimmed. Fails with BadRequest: "invalid selector: 'x'; can't understand
  // 'x'", or "invalid field selector: invalid escape sequence: \q".
  static Result<FieldSelector> Parse(std::string_view text);

  // Whether every term holds for the object `lookup` describes. A term on a field `lookup` does
  // not support makes the object not match; call Validate() first to reject such selectors.
  bool Matches(const FieldLookup& lookup) const;

  // BadRequest "field label not supported: <field>" for the first term on a field for which
  // `supported` returns false; OK otherwise.
  Status Validate(const std::function<bool(std::string_view field)>& supported) const;

  // The distinct fields the terms use, in term order.
  std::vector<std::string> fields() const;

  // The value `field` must equal for an object to match ("metadata.name=x" -> "x"), if a term
  // requires one; for index lookups.
  std::optional<std::string> RequiresExactMatch(std::string_view field) const;

  bool Empty() const { return terms_.empty(); }
  const std::vector<Term>& terms() const { return terms_; }

  // Canonical form, values escaped, terms sorted: what Parse() accepts back.
  std::string ToString() const;

 private:
  std::vector<Term> terms_;
};

}  // namespace fulcrum::api
