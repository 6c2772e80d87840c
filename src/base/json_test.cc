#include "base/json.h"

#include <gtest/gtest.h>

namespace fulcrum::base {
namespace {

TEST(ParseJsonTest, ParsesValidDocuments) {
  Json j;
  ASSERT_TRUE(ParseJson(R"({"a":{"b":"c"}})", &j).ok());
  EXPECT_EQ(StringAt(j, {"a", "b"}), "c");
  EXPECT_EQ(StringAt(j, {"a", "x"}), "");
  EXPECT_EQ(FindPath(j, {"a", "b", "c"}), nullptr);
}

TEST(ParseJsonTest, RejectsMalformedWithPosition) {
  Json j = 7;
  Status s = ParseJson(R"({"a": })", &j);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("invalid JSON"), std::string::npos);
  EXPECT_NE(s.message().find("column"), std::string::npos) << s.message();
  EXPECT_EQ(j, 7) << "a failed parse leaves the output unchanged";
}

TEST(ParseJsonTest, NumberTooLargeForADoubleIsBadRequestNotACrash) {
  Json j;
  Status s = ParseJson("[1e400]", &j);
  EXPECT_EQ(s.code(), Code::kBadRequest) << s.ToString();
}

TEST(ParseJsonTest, RejectsHostileNesting) {
  std::string deep(100000, '[');
  Json j;
  Status s = ParseJson(deep, &j);
  EXPECT_EQ(s.code(), Code::kBadRequest);
  EXPECT_NE(s.message().find("nesting"), std::string::npos);
  // Brackets inside strings do not count.
  EXPECT_TRUE(ParseJson("\"" + deep + "\"", &j).ok());
}

TEST(ParseJsonTest, ReportsDuplicateKeys) {
  Json j;
  std::vector<std::string> dups;
  ASSERT_TRUE(ParseJson(R"({"a":{"b":1,"b":2},"c":[{"d":1},{"d":2}],"a2":1})", &j, &dups).ok());
  EXPECT_EQ(dups, std::vector<std::string>{"b"});
  EXPECT_EQ(j["a"]["b"], 2);
}

TEST(ParseJsonTest, KeyCountingIsNotFooledByStrings) {
  Json j;
  std::vector<std::string> dups;
  // Colons and quotes inside strings, whitespace before a colon, keys of nested arrays.
  ASSERT_TRUE(ParseJson(R"({"k\"x" : "v:1", "s":"a\\", "t" :[{"u":"w"}], "e":{}})", &j, &dups)
                  .ok());
  EXPECT_TRUE(dups.empty());
  ASSERT_TRUE(ParseJson(R"({"x":[{"y":1,"y" : "z:"}], "k\"":1, "k\"":2})", &j, &dups).ok());
  EXPECT_EQ(dups, (std::vector<std::string>{"y", "k\""}));
}

TEST(DumpJsonTest, ReplacesInvalidUtf8) {
  Json j = std::string("a\xff" "b");
  EXPECT_NO_THROW(DumpJson(j));
}

}  // namespace
}  // namespace fulcrum::base
