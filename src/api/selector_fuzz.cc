// libFuzzer target for the labelSelector and fieldSelector query parameters.
// Not yet built: src/api/CMakeLists.txt needs
//   fulcrum_fuzz(selector_fuzz SRCS selector_fuzz.cc LIBS fulcrum_api)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "api/selector.h"

namespace {

using fulcrum::api::FieldSelector;
using fulcrum::api::LabelSelector;

std::vector<std::tuple<std::string, std::string, bool>> SortedTerms(const FieldSelector& s) {
  std::vector<std::tuple<std::string, std::string, bool>> terms;
  for (const auto& t : s.terms()) terms.emplace_back(t.field, t.value, t.equals);
  std::sort(terms.begin(), terms.end());
  return terms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  // The canonical form of a label selector parses back to itself.
  auto labels = LabelSelector::Parse(text);
  if (labels.ok()) {
    std::string canonical = labels->ToString();
    auto again = LabelSelector::Parse(canonical);
    if (!again.ok() || again->ToString() != canonical) __builtin_trap();
    std::vector<std::pair<std::string, std::string>> sorted = {{"a", "1"}, {"b", ""}};
    fulcrum::base::Json object = {{"a", "1"}, {"b", ""}};
    if (labels->Matches(sorted) != labels->Matches(object)) __builtin_trap();
  }

  // So does a field selector, up to the order of its terms.
  auto fields = FieldSelector::Parse(text);
  if (fields.ok()) {
    auto again = FieldSelector::Parse(fields->ToString());
    if (!again.ok() || SortedTerms(*again) != SortedTerms(*fields)) __builtin_trap();
  }
  return 0;
}
