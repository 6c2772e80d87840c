#include "api/yaml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace fulcrum::api {
namespace {

using base::Code;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Json Y(std::string_view text) {
  auto r = YamlToJson(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : Json("<error>");
}

std::string YamlError(std::string_view text) {
  auto r = YamlToJson(text);
  EXPECT_FALSE(r.ok()) << text << " gave " << base::DumpJson(*r);
  EXPECT_EQ(r.status().code(), Code::kBadRequest);
  return r.status().message();
}

TEST(YamlTest, KubernetesManifest) {
  Json pod = Y(R"(apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
  annotations:
    note: |
      line one
      line two
spec:
  containers:
  - name: nginx
    image: "nginx:1.25"
    ports:
    - containerPort: 80
      protocol: TCP
    args: ["-g", 'daemon off;']
    resources:
      limits: {cpu: 500m, memory: 128Mi}
  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  hostNetwork: false
)");
  EXPECT_EQ(pod, Json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app": "web"},
                 "annotations": {"note": "line one\nline two\n"}},
    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                             "ports": [{"containerPort": 80, "protocol": "TCP"}],
                             "args": ["-g", "daemon off;"],
                             "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}],
             "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
             "hostNetwork": false}})"));
}

TEST(YamlTest, Yaml11Booleans) {
  for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"}) {
    EXPECT_EQ(Y(std::string("v: ") + t)["v"], true) << t;
  }
  for (const char* f :
       {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"}) {
    EXPECT_EQ(Y(std::string("v: ") + f)["v"], false) << f;
  }
  EXPECT_EQ(Y("v: tRUE")["v"], "tRUE");
  EXPECT_EQ(Y("v: \"yes\"")["v"], "yes");
  EXPECT_EQ(Y("v: 'on'")["v"], "on");
}

TEST(YamlTest, Nulls) {
  EXPECT_EQ(Y("a: null\nb: ~\nc:\nd: Null\ne: NULL\nf: nULL"),
            Json::parse(R"({"a":null,"b":null,"c":null,"d":null,"e":null,"f":"nULL"})"));
  EXPECT_EQ(Y("a: 'null'")["a"], "null");
}

TEST(YamlTest, Numbers) {
  Json v = Y(R"(dec: 42
neg: -17
plus: +3
hex: 0x1F
oct: 0o17
oldoct: 017
bin: 0b101
under: 1_000_000
float: 1.5
lead: .5
exp: 1e3
negexp: -2.5E-3
intfloat: 3.0
big: 18446744073709551615
huge: 99999999999999999999
notnum: 1.2.3
version: 1.10
octbad: 09
port: "8080"
tagged: !!str 123
hexlike: 0xZZ
)");
  EXPECT_EQ(v["dec"], 42);
  EXPECT_TRUE(v["dec"].is_number_integer());
  EXPECT_EQ(v["neg"], -17);
  EXPECT_EQ(v["plus"], 3);
  EXPECT_EQ(v["hex"], 31);
  EXPECT_EQ(v["oct"], 15);
  EXPECT_EQ(v["oldoct"], 15);
  EXPECT_EQ(v["bin"], 5);
  EXPECT_EQ(v["under"], 1000000);
  EXPECT_EQ(v["float"], 1.5);
  EXPECT_EQ(v["lead"], 0.5);
  EXPECT_EQ(v["exp"], 1000);
  EXPECT_TRUE(v["exp"].is_number_integer());
  EXPECT_DOUBLE_EQ(v["negexp"].get<double>(), -0.0025);
  EXPECT_TRUE(v["intfloat"].is_number_integer());
  EXPECT_EQ(v["big"].get<std::uint64_t>(), 18446744073709551615ull);
  EXPECT_TRUE(v["huge"].is_number_float());
  EXPECT_EQ(v["notnum"], "1.2.3");
  EXPECT_EQ(v["version"], 1.1);  // YAML, not a string: a known trap
  EXPECT_EQ(v["octbad"], 9);     // not octal, but a YAML float
  EXPECT_EQ(v["port"], "8080");
  EXPECT_EQ(v["tagged"], "123");
  EXPECT_EQ(v["hexlike"], "0xZZ");
}

TEST(YamlTest, StringsThatLookSpecial) {
  Json v = Y(R"(date: 2001-12-14
time: 12:30:45
url: http://example.com:80/x
dash: -x
dot: .
colon: "a: b"
star: "*x"
merge: <<
)");
  EXPECT_EQ(v["date"], "2001-12-14");
  EXPECT_EQ(v["time"], "12:30:45");
  EXPECT_EQ(v["url"], "http://example.com:80/x");
  EXPECT_EQ(v["dash"], "-x");
  EXPECT_EQ(v["dot"], ".");
  EXPECT_EQ(v["colon"], "a: b");
  EXPECT_EQ(v["star"], "*x");
  EXPECT_EQ(v["merge"], "<<");
}

TEST(YamlTest, KeysBecomeStrings) {
  EXPECT_EQ(Y("1: a\ntrue: b\non: c\n1.5: d\nnull_key: e\n0x10: f"),
            Json::parse(R"({"1":"a","true":"c","1.5":"d","null_key":"e","16":"f"})"));
  EXPECT_THAT(YamlError("~: x"), HasSubstr("unsupported map key: null"));
  EXPECT_THAT(YamlError("? [a, b]\n: x"), HasSubstr("unsupported map key: a sequence"));
  EXPECT_THAT(YamlError("{a: 1}: x"), HasSubstr("unsupported map key: a mapping"));
}

TEST(YamlTest, DuplicateKeysLastWins) { EXPECT_EQ(Y("a: 1\na: 2"), Json::parse(R"({"a":2})")); }

TEST(YamlTest, AnchorsAliasesAndMergeKeys) {
  Json v = Y(R"(base: &base
  image: nginx
  pullPolicy: Always
list: &l [1, 2]
copy: *l
first:
  <<: *base
  image: redis
second:
  image: busybox
  <<: [*base, {extra: 1, image: ignored}]
)");
  EXPECT_EQ(v["copy"], Json::parse("[1,2]"));
  EXPECT_EQ(v["first"], Json::parse(R"({"image":"redis","pullPolicy":"Always"})"));
  EXPECT_EQ(v["second"], Json::parse(R"({"image":"busybox","pullPolicy":"Always","extra":1})"));
  EXPECT_THAT(YamlError("a: &x 1\nb:\n  <<: *x"), HasSubstr("map merge requires map"));
  EXPECT_THAT(YamlError("a: *nope"), HasSubstr("anchor"));
  EXPECT_THAT(YamlError("a: &x [1, *x]"), HasSubstr("anchor"));
}

TEST(YamlTest, QuotedMergeKeyIsAPlainKey) { EXPECT_EQ(Y("'<<': 1"), Json::parse(R"({"<<":1})")); }

TEST(YamlTest, BillionLaughsIsRefused) {
  std::string text =
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  std::string prev = "a";
  for (char c = 'b'; c <= 'j'; ++c) {
    std::string name(1, c);
    text += name + ": &" + name + " [";
    for (int i = 0; i < 9; ++i) text += (i ? ",*" : "*") + prev;
    text += "]\n";
    prev = name;
  }
  EXPECT_THAT(YamlError(text), HasSubstr("excessive aliasing"));
}

TEST(YamlTest, ModestAliasingIsFine) {
  std::string text = "base: &b {a: 1, b: 2}\n";
  for (int i = 0; i < 100; ++i) text += "k" + std::to_string(i) + ": *b\n";
  Json v = Y(text);
  EXPECT_EQ(v.size(), 101u);
  EXPECT_EQ(v["k99"]["b"], 2);
}

TEST(YamlTest, NestingDepthIsBounded) {
  std::string ok(base::kMaxJsonDepth, '[');
  ok += std::string(base::kMaxJsonDepth, ']');
  EXPECT_TRUE(YamlToJson(ok).ok());
  std::string deep(base::kMaxJsonDepth + 1, '[');
  deep += std::string(base::kMaxJsonDepth + 1, ']');
  EXPECT_THAT(YamlError(deep), HasSubstr("nesting deeper than 256 levels"));
  // Much deeper than yaml-cpp's own recursion guard, unterminated.
  EXPECT_THAT(YamlError(std::string(100000, '[')), HasSubstr("nesting deeper"));
  std::string block;
  for (int i = 0; i < 300; ++i) block += std::string(i, ' ') + "a:\n";
  EXPECT_THAT(YamlError(block), HasSubstr("nesting deeper"));
  // An alias can deepen a document too.
  std::string aliased = "a: &a " + std::string(200, '[') + std::string(200, ']') + "\nb:";
  for (int i = 0; i < 60; ++i) aliased += " [";
  aliased += "*a";
  for (int i = 0; i < 60; ++i) aliased += "]";
  EXPECT_THAT(YamlError(aliased), HasSubstr("nesting deeper"));
}

TEST(YamlTest, SyntaxErrorsCarryLineAndColumn) {
  EXPECT_EQ(YamlError("a: [1\nb: 2"), "yaml: line 2, column 2: end of sequence flow not found");
  EXPECT_THAT(YamlError("a: b: c"), StartsWith("yaml: line 1, column 5: "));
  EXPECT_THAT(YamlError("a:\n  - 1\n  b: 2"), StartsWith("yaml: line 3"));
}

TEST(YamlTest, RejectsBadText) {
  EXPECT_THAT(YamlError(std::string("a: \x01", 4)), HasSubstr("control characters"));
  EXPECT_THAT(YamlError(std::string("a: b\0c", 6)), HasSubstr("control characters"));
  EXPECT_THAT(YamlError("a: \xff"), HasSubstr("UTF-8"));
  EXPECT_THAT(YamlError("a: \xc0\x80"), HasSubstr("invalid Unicode"));
  EXPECT_EQ(Y("a: h\xc3\xa9llo \xe2\x9c\x93")["a"], "h\xc3\xa9llo \xe2\x9c\x93");
  EXPECT_EQ(Y("\xef\xbb\xbf"
              "a: 1")["a"],
            1);
}

TEST(YamlTest, EscapesMustBeValidUnicode) {
  EXPECT_EQ(Y(R"(a: "\u00e9\x41\t")")["a"],
            "\xc3\xa9"
            "A\t");
  EXPECT_THAT(YamlError(R"(a: "\ud800")"), StartsWith("yaml: line 1, column 11: invalid unicode"));
  EXPECT_THAT(YamlError(R"(a: "\U00110000")"), StartsWith("yaml: line 1"));
}

TEST(YamlTest, NonFiniteValuesAreRefused) {
  EXPECT_THAT(YamlError("a: .inf"), HasSubstr("+Inf"));
  EXPECT_THAT(YamlError("a: [-.Inf]"), HasSubstr("-Inf"));
  EXPECT_THAT(YamlError("a: .NaN"), HasSubstr("NaN"));
  EXPECT_EQ(Y(".inf: x"), Json::parse(R"({".inf":"x"})"));
}

TEST(YamlTest, ExplicitTags) {
  EXPECT_EQ(Y("a: !!int \"12\"")["a"], 12);
  EXPECT_EQ(Y("a: !!float 1")["a"], 1);
  EXPECT_EQ(Y("a: !!bool yes")["a"], true);
  EXPECT_EQ(Y("a: !custom 12")["a"], "12");
  EXPECT_THAT(YamlError("a: !!int abc"), HasSubstr("cannot decode !!str `abc` as a !!int"));
}

TEST(YamlTest, EmptyAndScalarDocuments) {
  EXPECT_TRUE(Y("").is_null());
  EXPECT_TRUE(Y("# only a comment\n").is_null());
  EXPECT_EQ(Y("hello"), "hello");
  EXPECT_EQ(Y("- 1\n- two"), Json::parse(R"([1,"two"])"));
  EXPECT_EQ(Y(R"({"json": [1, 2.5, "x", true, null]})"),
            Json::parse(R"({"json": [1, 2.5, "x", true, null]})"));
}

TEST(YamlTest, FirstDocumentOnly) { EXPECT_EQ(Y("a: 1\n---\nb: 2\n"), Json::parse(R"({"a":1})")); }

TEST(YamlDocumentsTest, MultiDocumentStream) {
  auto r = YamlDocumentsToJson(R"(---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
# nothing here
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: demo}
data:
  enabled: "true"
...
---
null
---
- just
- a list
)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0]["kind"], "Namespace");
  EXPECT_EQ((*r)[1]["data"]["enabled"], "true");
  EXPECT_EQ((*r)[2], Json::parse(R"(["just","a list"])"));
}

TEST(YamlDocumentsTest, ErrorInALaterDocument) {
  auto r = YamlDocumentsToJson("a: 1\n---\nb: [\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), StartsWith("yaml: line "));
  auto empty = YamlDocumentsToJson("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// yaml-cpp 0.7 reports empty documents forever at a stray ",": found by yaml_fuzz.
TEST(YamlDocumentsTest, StrayCommaDoesNotLoopForever) {
  for (const char* text : {",", "---\na: 0\n---\n, 0x1f\n", "- a\n,"}) {
    auto r = YamlDocumentsToJson(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_THAT(r.status().message(), HasSubstr("did not find expected node content"));
  }
}

TEST(YamlDocumentsTest, AliasBudgetIsSharedByTheStream) {
  std::string big = "x: &x [";
  for (int i = 0; i < 1000; ++i) big += std::string(i ? "," : "") + "\"aaaaaaaaaaaaaaaaaaaa\"";
  big += "]\n";
  std::string stream;
  for (int d = 0; d < 40; ++d) {
    stream += "---\n" + big;
    for (int i = 0; i < 10; ++i) stream += "y" + std::to_string(i) + ": *x\n";
  }
  auto r = YamlDocumentsToJson(stream);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("excessive aliasing"));
}

}  // namespace
}  // namespace fulcrum::api
