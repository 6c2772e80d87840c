#include "api/selector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

namespace fulcrum::api {
namespace {

using base::Code;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Op = LabelSelector::Operator;
using Labels = std::vector<std::pair<std::string, std::string>>;

LabelSelector MustParse(std::string_view text) {
  auto r = LabelSelector::Parse(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : LabelSelector::Nothing();
}

std::string ParseError(std::string_view text) {
  auto r = LabelSelector::Parse(text);
  EXPECT_FALSE(r.ok()) << text << " parsed as " << r->ToString();
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
  return r.status().message();
}

// Both Matches() overloads must agree.
bool Matches(const LabelSelector& s, const std::map<std::string, std::string>& labels) {
  Json object = Json::object();
  Labels sorted;
  for (const auto& [k, v] : labels) {
    object[k] = v;
    sorted.emplace_back(k, v);
  }
  bool a = s.Matches(object);
  bool b = s.Matches(sorted);
  EXPECT_EQ(a, b) << s.ToString();
  return a;
}

TEST(LabelSelectorTest, ParsesEveryOperator) {
  LabelSelector s = MustParse("a=1,b==2,c!=3,d in (x, y),e notin (z),f,!g,h>5,i<10");
  ASSERT_EQ(s.requirements().size(), 9u);
  EXPECT_EQ(s.requirements()[0].op, Op::kEquals);
  EXPECT_EQ(s.requirements()[1].op, Op::kDoubleEquals);
  EXPECT_EQ(s.requirements()[2].op, Op::kNotEquals);
  EXPECT_EQ(s.requirements()[3].op, Op::kIn);
  EXPECT_THAT(s.requirements()[3].values, ElementsAre("x", "y"));
  EXPECT_EQ(s.requirements()[4].op, Op::kNotIn);
  EXPECT_EQ(s.requirements()[5].op, Op::kExists);
  EXPECT_EQ(s.requirements()[6].op, Op::kDoesNotExist);
  EXPECT_EQ(s.requirements()[7].op, Op::kGreaterThan);
  EXPECT_EQ(s.requirements()[7].number, 5);
  EXPECT_EQ(s.requirements()[8].op, Op::kLessThan);
  EXPECT_EQ(s.ToString(), "a=1,b==2,c!=3,d in (x,y),e notin (z),f,!g,h>5,i<10");
}

TEST(LabelSelectorTest, ToleratesWhitespaceAndSortsByKey) {
  LabelSelector s = MustParse("  tier in ( web ,api ) ,  app = nginx , ! canary  ");
  EXPECT_EQ(s.ToString(), "app=nginx,!canary,tier in (api,web)");
  EXPECT_EQ(MustParse(s.ToString()).ToString(), s.ToString());
}

TEST(LabelSelectorTest, EmptyMatchesEverything) {
  LabelSelector s = MustParse("");
  EXPECT_TRUE(s.Empty());
  EXPECT_TRUE(Matches(s, {}));
  EXPECT_TRUE(Matches(s, {{"a", "b"}}));
  EXPECT_TRUE(MustParse("   ").Empty());
  EXPECT_TRUE(LabelSelector().Empty());
  EXPECT_FALSE(LabelSelector::Nothing().Empty());
  EXPECT_FALSE(LabelSelector::Nothing().Matches(Json::object()));
}

TEST(LabelSelectorTest, Matching) {
  EXPECT_TRUE(Matches(MustParse("app=web"), {{"app", "web"}, {"x", "y"}}));
  EXPECT_FALSE(Matches(MustParse("app=web"), {{"app", "db"}}));
  EXPECT_FALSE(Matches(MustParse("app=web"), {}));
  EXPECT_TRUE(Matches(MustParse("app!=web"), {}));
  EXPECT_TRUE(Matches(MustParse("app!=web"), {{"app", "db"}}));
  EXPECT_FALSE(Matches(MustParse("app!=web"), {{"app", "web"}}));
  EXPECT_TRUE(Matches(MustParse("env in (prod,staging)"), {{"env", "staging"}}));
  EXPECT_FALSE(Matches(MustParse("env in (prod,staging)"), {{"env", "dev"}}));
  EXPECT_FALSE(Matches(MustParse("env in (prod)"), {}));
  EXPECT_TRUE(Matches(MustParse("env notin (prod)"), {}));
  EXPECT_FALSE(Matches(MustParse("env notin (prod)"), {{"env", "prod"}}));
  EXPECT_TRUE(Matches(MustParse("env"), {{"env", ""}}));
  EXPECT_FALSE(Matches(MustParse("env"), {}));
  EXPECT_TRUE(Matches(MustParse("!env"), {{"other", "x"}}));
  EXPECT_FALSE(Matches(MustParse("!env"), {{"env", "x"}}));
  EXPECT_TRUE(Matches(MustParse("gen>5"), {{"gen", "6"}}));
  EXPECT_FALSE(Matches(MustParse("gen>5"), {{"gen", "5"}}));
  EXPECT_FALSE(Matches(MustParse("gen>5"), {{"gen", "six"}}));
  EXPECT_FALSE(Matches(MustParse("gen>5"), {}));
  EXPECT_TRUE(Matches(MustParse("gen<5"), {{"gen", "-1"}}));
  EXPECT_TRUE(Matches(MustParse("a=1,b=2"), {{"a", "1"}, {"b", "2"}, {"c", "3"}}));
  EXPECT_FALSE(Matches(MustParse("a=1,b=2"), {{"a", "1"}, {"b", "3"}}));
  EXPECT_TRUE(Matches(MustParse("a="), {{"a", ""}}));
  EXPECT_TRUE(Matches(MustParse("a in ()"), {{"a", ""}}));
}

TEST(LabelSelectorTest, KeywordsAreValuesInValueContext) {
  EXPECT_TRUE(Matches(MustParse("a=in"), {{"a", "in"}}));
  EXPECT_TRUE(Matches(MustParse("in=notin"), {{"in", "notin"}}));
  EXPECT_TRUE(Matches(MustParse("a in (in,notin)"), {{"a", "notin"}}));
}

TEST(LabelSelectorTest, EmptyValuesInSets) {
  EXPECT_THAT(MustParse("a in (,b)").requirements()[0].values, ElementsAre("", "b"));
  EXPECT_THAT(MustParse("a in (b,)").requirements()[0].values, ElementsAre("", "b"));
  EXPECT_THAT(MustParse("a in (b,,c)").requirements()[0].values, ElementsAre("", "b", "c"));
}

TEST(LabelSelectorTest, PrefixedKeys) {
  LabelSelector s = MustParse("app.kubernetes.io/name=web,example.com/tier");
  EXPECT_TRUE(Matches(s, {{"app.kubernetes.io/name", "web"}, {"example.com/tier", "x"}}));
}

TEST(LabelSelectorTest, SyntaxErrorsUseKubernetesMessages) {
  EXPECT_EQ(ParseError("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
  EXPECT_EQ(ParseError("a=b c"), "found 'c', expected: ',' or 'end of string'");
  EXPECT_EQ(ParseError("a=b,"), "found '', expected: identifier after ','");
  EXPECT_EQ(ParseError(",a"), "found ',', expected: !, identifier, or 'end of string'");
  EXPECT_EQ(ParseError("a in x"), "unable to parse requirement: found 'x' expected: '('");
  EXPECT_EQ(ParseError("a in (x"), "unable to parse requirement: found '', expected: ',' or ')'");
  EXPECT_EQ(ParseError("a in (x y)"),
            "unable to parse requirement: found 'y', expected: ',' or ')'");
  EXPECT_EQ(ParseError("a=(b)"), "unable to parse requirement: found '(', expected: identifier");
  EXPECT_EQ(ParseError("=b"), "found '=', expected: !, identifier, or 'end of string'");
  EXPECT_EQ(ParseError("!a=b"), "found '=', expected: ',' or 'end of string'");
  EXPECT_EQ(ParseError("!=b"), "found '!=', expected: !, identifier, or 'end of string'");
}

TEST(LabelSelectorTest, KeyAndValueValidation) {
  EXPECT_EQ(ParseError("a=-x"),
            "unable to parse requirement: values[0][a]: Invalid value: \"-x\": a valid label must "
            "be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
            "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
  EXPECT_EQ(ParseError("-a=x"),
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of "
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
  EXPECT_THAT(ParseError("Example.com/a=x"), HasSubstr("prefix part a lowercase RFC 1123"));
  EXPECT_THAT(ParseError("/a"), HasSubstr("prefix part must be non-empty"));
  EXPECT_THAT(ParseError("a/b/c"), HasSubstr("a qualified name must consist of"));
  EXPECT_THAT(ParseError(std::string(64, 'k')), HasSubstr("name part must be no more than 63"));
  EXPECT_THAT(ParseError("a=" + std::string(64, 'v')), HasSubstr("must be no more than 63"));
  EXPECT_THAT(ParseError("a>b"),
              HasSubstr("for 'Gt', 'Lt' operators, the value must be an integer"));
  MustParse("a=" + std::string(63, 'v'));
  MustParse(std::string(253, 'p').substr(0, 200) + "/" + std::string(63, 'k'));
}

TEST(LabelSyntaxTest, KeyAndValueErrors) {
  EXPECT_TRUE(LabelKeyErrors("app").empty());
  EXPECT_TRUE(LabelKeyErrors("app.kubernetes.io/part-of").empty());
  EXPECT_TRUE(LabelKeyErrors("A_b.C-9").empty());
  EXPECT_FALSE(LabelKeyErrors("").empty());
  EXPECT_FALSE(LabelKeyErrors("a_").empty());
  EXPECT_FALSE(LabelKeyErrors("UPPER.com/x").empty());
  EXPECT_FALSE(LabelKeyErrors("a..b-.com/x").empty());
  EXPECT_EQ(LabelKeyErrors("x/").size(), 2u);  // empty name: both the length and the regex
  EXPECT_TRUE(LabelValueErrors("").empty());
  EXPECT_TRUE(LabelValueErrors("v1.2_3-x").empty());
  EXPECT_FALSE(LabelValueErrors("a b").empty());
  EXPECT_FALSE(LabelValueErrors("a/b").empty());
  EXPECT_FALSE(LabelValueErrors("é").empty());
}

TEST(LabelSelectorTest, FromJson) {
  auto r = LabelSelector::FromJson(Json::parse(R"({
      "matchLabels": {"app": "web"},
      "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe", "be"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "zone", "operator": "Exists"}]})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ToString(), "app=web,!canary,env notin (dev),tier in (be,fe),zone");
  EXPECT_TRUE(Matches(*r, {{"app", "web"}, {"tier", "fe"}, {"zone", "a"}}));
  EXPECT_FALSE(Matches(*r, {{"app", "web"}, {"tier", "fe"}, {"zone", "a"}, {"canary", "1"}}));
  EXPECT_FALSE(Matches(*r, {{"app", "web"}, {"tier", "fe"}}));

  auto everything = LabelSelector::FromJson(Json::object());
  ASSERT_TRUE(everything.ok());
  EXPECT_TRUE(everything->Empty());
  auto nothing = LabelSelector::FromJson(nullptr);
  ASSERT_TRUE(nothing.ok());
  EXPECT_TRUE(nothing->MatchesNothing());
  EXPECT_FALSE(Matches(*nothing, {}));
}

TEST(LabelSelectorTest, FromJsonErrors) {
  auto error = [](const char* text) {
    auto r = LabelSelector::FromJson(Json::parse(text));
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Code::kBadRequest);
    return r.status().message();
  };
  EXPECT_EQ(error(R"({"matchExpressions":[{"key":"a","operator":"Gt","values":["1"]}]})"),
            "\"Gt\" is not a valid label selector operator");
  EXPECT_EQ(error(R"({"matchExpressions":[{"key":"a","operator":"In","values":[]}]})"),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be "
            "empty");
  EXPECT_EQ(error(R"({"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]})"),
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does "
            "not exist");
  EXPECT_THAT(error(R"({"matchLabels":{"a b":"x"}})"), HasSubstr("key: Invalid value: \"a b\""));
  EXPECT_THAT(error(R"({"matchLabels":{"a":"x y"}})"),
              HasSubstr("values[0][a]: Invalid value: \"x y\""));
  EXPECT_THAT(error(R"({"matchLabels":{"a":1}})"), HasSubstr("must be a string"));
  EXPECT_THAT(error(R"([1])"), HasSubstr("must be an object"));
}

TEST(LabelSelectorTest, EqualityRequirement) {
  EXPECT_EQ(MustParse("a!=1,b=2").EqualityRequirement(),
            std::make_pair(std::string("b"), std::string("2")));
  EXPECT_EQ(MustParse("x in (1)").EqualityRequirement(),
            std::make_pair(std::string("x"), std::string("1")));
  EXPECT_FALSE(MustParse("x in (1,2),y").EqualityRequirement().has_value());
  EXPECT_FALSE(MustParse("").EqualityRequirement().has_value());
}

TEST(LabelSelectorTest, NonStringLabelValuesAreAbsent) {
  LabelSelector s = MustParse("a");
  EXPECT_FALSE(s.Matches(Json::parse(R"({"a":1})")));
  EXPECT_FALSE(s.Matches(Json()));
  EXPECT_TRUE(MustParse("!a").Matches(Json()));
}

// ---------------------------------------------------------------------------------------------
// FieldSelector.

bool FieldMatches(const FieldSelector& s, const std::map<std::string, std::string>& fields) {
  return s.Matches([&](std::string_view field, std::string* value) {
    auto it = fields.find(std::string(field));
    if (it == fields.end()) return false;
    *value = it->second;
    return true;
  });
}

FieldSelector MustParseFields(std::string_view text) {
  auto r = FieldSelector::Parse(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : FieldSelector();
}

TEST(FieldSelectorTest, ParseAndMatch) {
  FieldSelector s = MustParseFields("spec.nodeName=node-1,status.phase!=Failed,metadata.name==p");
  ASSERT_EQ(s.terms().size(), 3u);
  // Terms are sorted like Kubernetes sorts them.
  EXPECT_EQ(s.ToString(), "metadata.name=p,spec.nodeName=node-1,status.phase!=Failed");
  std::map<std::string, std::string> pod = {
      {"metadata.name", "p"}, {"spec.nodeName", "node-1"}, {"status.phase", "Running"}};
  EXPECT_TRUE(FieldMatches(s, pod));
  pod["status.phase"] = "Failed";
  EXPECT_FALSE(FieldMatches(s, pod));
  EXPECT_THAT(s.fields(), ElementsAre("metadata.name", "spec.nodeName", "status.phase"));
  EXPECT_EQ(s.RequiresExactMatch("spec.nodeName"), "node-1");
  EXPECT_FALSE(s.RequiresExactMatch("status.phase").has_value());
}

TEST(FieldSelectorTest, EmptyAndEmptyValues) {
  EXPECT_TRUE(MustParseFields("").Empty());
  EXPECT_TRUE(MustParseFields(",").Empty());
  EXPECT_TRUE(FieldMatches(MustParseFields(""), {}));
  FieldSelector s = MustParseFields("spec.nodeName=");
  EXPECT_TRUE(FieldMatches(s, {{"spec.nodeName", ""}}));
  EXPECT_FALSE(FieldMatches(s, {{"spec.nodeName", "n"}}));
}

TEST(FieldSelectorTest, UnsupportedFieldsNeverMatchAndFailValidation) {
  FieldSelector s = MustParseFields("metadata.name=a,spec.foo=b");
  EXPECT_FALSE(FieldMatches(s, {{"metadata.name", "a"}}));
  Status v = s.Validate([](std::string_view f) { return f == "metadata.name"; });
  EXPECT_EQ(v.code(), Code::kBadRequest);
  EXPECT_EQ(v.message(), "field label not supported: spec.foo");
  EXPECT_TRUE(s.Validate([](std::string_view) { return true; }).ok());
}

TEST(FieldSelectorTest, Escaping) {
  FieldSelector s = MustParseFields(R"(metadata.name=a\,b\=c\\d)");
  ASSERT_EQ(s.terms().size(), 1u);
  EXPECT_EQ(s.terms()[0].value, R"(a,b=c\d)");
  EXPECT_EQ(s.ToString(), R"(metadata.name=a\,b\=c\\d)");
}

TEST(FieldSelectorTest, Errors) {
  auto error = [](std::string_view text) {
    auto r = FieldSelector::Parse(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Code::kBadRequest);
    return r.status().message();
  };
  EXPECT_EQ(error("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand "
            "'metadata.name'");
  EXPECT_EQ(error("a=b,c"), "invalid selector: 'a=b,c'; can't understand 'c'");
  EXPECT_EQ(error("a=b=c"), "invalid field selector: unescaped character in value: =");
  EXPECT_EQ(error(R"(a=b\q)"), R"(invalid field selector: invalid escape sequence: \q)");
  EXPECT_EQ(error(R"(a=b\)"), R"(invalid field selector: invalid escape sequence: \)");
}

TEST(FieldSelectorTest, OperatorPrecedence) {
  // The first operator wins; "!=" and "==" are checked before "=" at the same position.
  FieldSelector s = MustParseFields("a!=b");
  EXPECT_FALSE(s.terms()[0].equals);
  EXPECT_EQ(s.terms()[0].value, "b");
  s = MustParseFields("a==b");
  EXPECT_TRUE(s.terms()[0].equals);
  EXPECT_EQ(s.terms()[0].value, "b");
  s = MustParseFields("a!b=c");
  EXPECT_EQ(s.terms()[0].field, "a!b");
}

}  // namespace
}  // namespace fulcrum::api
