#include "api/validation.h"

#include <gtest/gtest.h>

#include <string>

namespace fulcrum::api {
namespace {

std::string Dump(const FieldErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += "  " + e.field + " [" + e.type + "] " + e.detail + "\n";
  return out;
}

// Whether some error has this field and type and a detail containing `detail`.
bool Has(const FieldErrors& errors, const std::string& field, const std::string& type,
         const std::string& detail = "") {
  for (const auto& e : errors) {
    if (e.field == field && e.type == type && e.detail.find(detail) != std::string::npos) {
      return true;
    }
  }
  return false;
}

Json Obj(const char* text) { return Json::parse(text); }

TEST(NameTest, Dns1123SubdomainUsesKubernetesWording) {
  EXPECT_TRUE(IsDns1123Subdomain("example.com").empty());
  EXPECT_TRUE(IsDns1123Subdomain("a").empty());
  EXPECT_TRUE(IsDns1123Subdomain("web-1.ns").empty());
  auto errs = IsDns1123Subdomain("Foo");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  EXPECT_EQ(IsDns1123Subdomain("a..b").size(), 1u);
  EXPECT_EQ(IsDns1123Subdomain("-a").size(), 1u);
  EXPECT_EQ(IsDns1123Subdomain("").size(), 1u);
  auto long_errs = IsDns1123Subdomain(std::string(254, 'a'));
  ASSERT_EQ(long_errs.size(), 1u);
  EXPECT_EQ(long_errs[0], "must be no more than 253 characters");
}

TEST(NameTest, Dns1123Label) {
  EXPECT_TRUE(IsDns1123Label("kube-system").empty());
  EXPECT_TRUE(IsDns1123Label("123-abc").empty());
  auto dots = IsDns1123Label("a.b");
  ASSERT_EQ(dots.size(), 1u);
  EXPECT_EQ(dots[0], "must not contain dots");
  auto upper = IsDns1123Label("Web");
  ASSERT_EQ(upper.size(), 1u);
  EXPECT_EQ(upper[0],
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')");
  auto too_long = IsDns1123Label(std::string(64, 'a'));
  ASSERT_EQ(too_long.size(), 1u);
  EXPECT_EQ(too_long[0], "must be no more than 63 characters");
}

TEST(NameTest, Dns1035LabelMustStartWithALetter) {
  EXPECT_TRUE(IsDns1035Label("my-svc").empty());
  auto errs = IsDns1035Label("1svc");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')");
}

TEST(NameTest, QualifiedNames) {
  EXPECT_TRUE(IsQualifiedName("app").empty());
  EXPECT_TRUE(IsQualifiedName("app.kubernetes.io/name").empty());
  EXPECT_TRUE(IsQualifiedName("My_Name.1").empty());
  auto empty_prefix = IsQualifiedName("/name");
  ASSERT_EQ(empty_prefix.size(), 1u);
  EXPECT_EQ(empty_prefix[0], "prefix part must be non-empty");
  auto bad_prefix = IsQualifiedName("Example.com/name");
  ASSERT_EQ(bad_prefix.size(), 1u);
  EXPECT_EQ(bad_prefix[0].rfind("prefix part a lowercase RFC 1123 subdomain", 0), 0u);
  auto two_slashes = IsQualifiedName("a/b/c");
  ASSERT_EQ(two_slashes.size(), 1u);
  EXPECT_EQ(two_slashes[0].rfind("a qualified name must consist of", 0), 0u);
  auto bad_name = IsQualifiedName("-app");
  ASSERT_EQ(bad_name.size(), 1u);
  EXPECT_EQ(bad_name[0],
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
            "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
  auto empty_name = IsQualifiedName("example.com/");
  ASSERT_EQ(empty_name.size(), 2u) << "Kubernetes reports both the emptiness and the regex";
  EXPECT_EQ(empty_name[0], "name part must be non-empty");
  EXPECT_EQ(IsQualifiedName(std::string(64, 'a'))[0],
            "name part must be no more than 63 characters");
}

TEST(NameTest, LabelValues) {
  EXPECT_TRUE(IsValidLabelValue("").empty());
  EXPECT_TRUE(IsValidLabelValue("v1.2_beta-3").empty());
  auto errs = IsValidLabelValue("bad value");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0],
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
  EXPECT_EQ(IsValidLabelValue(std::string(64, 'a')).size(), 1u);
  EXPECT_EQ(IsValidLabelValue("a-").size(), 1u);
}

TEST(ValueTest, Ports) {
  EXPECT_TRUE(IsValidPortNum(1).empty());
  EXPECT_TRUE(IsValidPortNum(65535).empty());
  ASSERT_EQ(IsValidPortNum(0).size(), 1u);
  EXPECT_EQ(IsValidPortNum(65536)[0], "must be between 1 and 65535, inclusive");
  EXPECT_TRUE(IsValidPortName("http").empty());
  EXPECT_TRUE(IsValidPortName("web-8080").empty());
  EXPECT_EQ(IsValidPortName("8080")[0], "must contain at least one letter (a-z)");
  EXPECT_EQ(IsValidPortName("a--b")[0], "must not contain consecutive hyphens");
  EXPECT_EQ(IsValidPortName("-ab")[0], "must not begin or end with a hyphen");
  EXPECT_EQ(IsValidPortName("abcdefghijklmnop")[0], "must be no more than 15 characters");
  EXPECT_EQ(IsValidPortName("HTTP")[0],
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
}

TEST(ValueTest, ConfigKeysEnvNamesPercentages) {
  EXPECT_TRUE(IsConfigMapKey("app.properties").empty());
  EXPECT_TRUE(IsConfigMapKey("KEY_NAME-1").empty());
  EXPECT_EQ(IsConfigMapKey("a b").size(), 1u);
  EXPECT_EQ(IsConfigMapKey("..").back(), "must not be '..'");
  EXPECT_EQ(IsConfigMapKey("..a").back(), "must not start with '..'");
  EXPECT_TRUE(IsEnvVarName("MY_VAR").empty());
  EXPECT_TRUE(IsEnvVarName("1.relaxed-name").empty());
  EXPECT_EQ(IsEnvVarName("A=B").size(), 1u);
  EXPECT_EQ(IsEnvVarName("").size(), 1u);
  EXPECT_TRUE(IsValidPercent("25%").empty());
  EXPECT_EQ(IsValidPercent("25")[0],
            "a valid percent string must be a numeric string followed by an ending '%' (e.g. "
            "'1%',  or '93%', regex used for validation is '[0-9]+%')");
}

TEST(ValueTest, Addresses) {
  EXPECT_TRUE(IsIpv4Address("10.0.0.1"));
  EXPECT_FALSE(IsIpv4Address("10.0.0"));
  EXPECT_FALSE(IsIpv4Address("010.0.0.1"));
  EXPECT_FALSE(IsIpv4Address("fd00::1"));
  EXPECT_TRUE(IsIpv6Address("fd00::1"));
  EXPECT_FALSE(IsIpv6Address("10.0.0.1"));
  EXPECT_TRUE(IsCidr("10.244.0.0/16"));
  EXPECT_TRUE(IsCidr("fd00::/64"));
  EXPECT_FALSE(IsCidr("10.244.0.0/33"));
  EXPECT_FALSE(IsCidr("10.244.0.0"));
  EXPECT_FALSE(IsCidr("10.244.0.0/"));
}

TEST(FieldErrorTest, KubernetesWording) {
  FieldError r = Required("spec.containers");
  EXPECT_EQ(r.type, "FieldValueRequired");
  EXPECT_EQ(r.detail, "Required value");
  EXPECT_EQ(Required("x", "must specify a volume type").detail,
            "Required value: must specify a volume type");
  FieldError i = InvalidValue("metadata.name", Json("Foo"), "must be lowercase");
  EXPECT_EQ(i.type, "FieldValueInvalid");
  EXPECT_EQ(i.detail, "Invalid value: \"Foo\": must be lowercase");
  EXPECT_EQ(InvalidValue("spec.replicas", Json(-1), "must be greater than or equal to 0").detail,
            "Invalid value: -1: must be greater than or equal to 0");
  FieldError n =
      NotSupported("spec.restartPolicy", Json("Sometimes"), {"Always", "OnFailure", "Never"});
  EXPECT_EQ(n.type, "FieldValueNotSupported");
  EXPECT_EQ(n.detail,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", "
            "\"Never\"");
  FieldError f = Forbidden("spec", "pod updates may not change fields");
  EXPECT_EQ(f.type, "FieldValueForbidden");
  EXPECT_EQ(f.detail, "Forbidden: pod updates may not change fields");
  FieldError d = Duplicate("spec.containers[1].name", Json("web"));
  EXPECT_EQ(d.type, "FieldValueDuplicate");
  EXPECT_EQ(d.detail, "Duplicate value: \"web\"");
  FieldError t = TooLong("metadata.annotations", kTotalAnnotationSizeLimit);
  EXPECT_EQ(t.type, "FieldValueTooLong");
  EXPECT_EQ(t.detail, "Too long: may not be more than 262144 bytes");
  EXPECT_EQ(NotFound("x", Json("data")).detail, "Not found: \"data\"");
}

TEST(FieldErrorTest, FormatsValuesAsGoDoes) {
  EXPECT_EQ(FormatFieldValue(Json("a\"b\n")), "\"a\\\"b\\n\"");
  EXPECT_EQ(FormatFieldValue(Json(80)), "80");
  EXPECT_EQ(FormatFieldValue(Json(true)), "true");
  EXPECT_EQ(FormatFieldValue(Json()), "null");
  EXPECT_EQ(FormatFieldValue(Obj(R"({"b":"2","a":"1"})")),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}");
  EXPECT_EQ(FormatFieldValue(Obj(R"(["x","y"])")), "[]string{\"x\", \"y\"}");
  EXPECT_EQ(FormatFieldValue(Obj(R"({"a":1})")), "{\"a\":1}");
}

TEST(ObjectMetaTest, NameRequired) {
  FieldErrors errors;
  ValidateObjectMeta(Obj(R"({"metadata":{"namespace":"default"}})"), true,
                     NameValidation::kDnsSubdomain, errors);
  EXPECT_TRUE(
      Has(errors, "metadata.name", "FieldValueRequired", "name or generateName is required"))
      << Dump(errors);
}

TEST(ObjectMetaTest, InvalidNameHasKubernetesMessage) {
  FieldErrors errors;
  ValidateObjectMeta(Obj(R"({"metadata":{"name":"My_Pod","namespace":"default"}})"), true,
                     NameValidation::kDnsSubdomain, errors);
  ASSERT_EQ(errors.size(), 1u) << Dump(errors);
  EXPECT_EQ(errors[0].field, "metadata.name");
  EXPECT_EQ(errors[0].detail.rfind("Invalid value: \"My_Pod\": a lowercase RFC 1123 subdomain", 0),
            0u);
}

TEST(ObjectMetaTest, NamespaceRules) {
  FieldErrors errors;
  ValidateObjectMeta(Obj(R"({"metadata":{"name":"a"}})"), true, NameValidation::kDnsSubdomain,
                     errors);
  EXPECT_TRUE(Has(errors, "metadata.namespace", "FieldValueRequired")) << Dump(errors);
  errors.clear();
  ValidateObjectMeta(Obj(R"({"metadata":{"name":"a","namespace":"Bad"}})"), true,
                     NameValidation::kDnsSubdomain, errors);
  EXPECT_TRUE(Has(errors, "metadata.namespace", "FieldValueInvalid")) << Dump(errors);
  errors.clear();
  ValidateObjectMeta(Obj(R"({"metadata":{"name":"n1","namespace":"default"}})"), false,
                     NameValidation::kDnsSubdomain, errors);
  EXPECT_TRUE(Has(errors, "metadata.namespace", "FieldValueForbidden", "not allowed on this type"))
      << Dump(errors);
}

TEST(ObjectMetaTest, NameKinds) {
  FieldErrors errors;
  ValidateObjectMeta(Obj(R"({"metadata":{"name":"a.b"}})"), false, NameValidation::kDnsLabel,
                     errors);
  EXPECT_TRUE(Has(errors, "metadata.name", "FieldValueInvalid", "must not contain dots"));
  errors.clear();
  ValidateObjectMeta(Obj(R"({"metadata":{"name":"1svc","namespace":"d"}})"), true,
                     NameValidation::kDns1035Label, errors);
  EXPECT_TRUE(Has(errors, "metadata.name", "FieldValueInvalid", "DNS-1035 label"));
  errors.clear();
  ValidateObjectMeta(
      Obj(R"({"metadata":{"name":"web-7d4b9","generateName":"web-","namespace":"d"}})"), true,
      NameValidation::kDnsSubdomain, errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  ValidateObjectMeta(Obj(R"({"metadata":{"generateName":"Web-","namespace":"d"}})"), true,
                     NameValidation::kDnsSubdomain, errors);
  EXPECT_TRUE(Has(errors, "metadata.generateName", "FieldValueInvalid")) << Dump(errors);
}

TEST(ObjectMetaTest, LabelsAnnotationsFinalizersOwners) {
  FieldErrors errors;
  ValidateObjectMeta(Obj(R"({"metadata":{"name":"a","namespace":"d",
      "labels":{"app":"bad value","-x":"ok"},
      "annotations":{"Example.com/Note":"fine","bad key!":"x"},
      "finalizers":["example.com/cleanup","bad/fin/alizer"],
      "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u","controller":true},
                         {"apiVersion":"","kind":"","name":"","uid":"","controller":true}]}})"),
                     true, NameValidation::kDnsSubdomain, errors);
  EXPECT_TRUE(Has(errors, "metadata.labels", "FieldValueInvalid", "Invalid value: \"bad value\""))
      << Dump(errors);
  EXPECT_TRUE(
      Has(errors, "metadata.labels", "FieldValueInvalid", "Invalid value: \"-x\": name part"));
  EXPECT_TRUE(Has(errors, "metadata.annotations", "FieldValueInvalid", "\"bad key!\""));
  EXPECT_FALSE(Has(errors, "metadata.annotations", "FieldValueInvalid", "Example.com"))
      << "annotation keys are case-insensitive";
  EXPECT_TRUE(Has(errors, "metadata.finalizers", "FieldValueInvalid", "\"bad/fin/alizer\""));
  EXPECT_TRUE(Has(errors, "metadata.ownerReferences.apiVersion", "FieldValueInvalid",
                  "version must not be empty"));
  EXPECT_TRUE(
      Has(errors, "metadata.ownerReferences.uid", "FieldValueInvalid", "uid must not be empty"));
  EXPECT_TRUE(Has(errors, "metadata.ownerReferences", "FieldValueInvalid",
                  "Only one reference can have Controller set to true. Found \"true\" in "
                  "references for ReplicaSet/rs and /"));
}

TEST(ObjectMetaTest, AnnotationSizeLimit) {
  Json obj = Obj(R"({"metadata":{"name":"a","namespace":"d"}})");
  obj["metadata"]["annotations"]["big"] = std::string(kTotalAnnotationSizeLimit, 'x');
  FieldErrors errors;
  ValidateObjectMeta(obj, true, NameValidation::kDnsSubdomain, errors);
  EXPECT_TRUE(Has(errors, "metadata.annotations", "FieldValueTooLong",
                  "Too long: may not be more than 262144 bytes"))
      << Dump(errors);
}

TEST(ObjectMetaTest, UpdateKeepsIdentity) {
  Json old_obj = Obj(R"({"metadata":{"name":"a","namespace":"d","uid":"1",
                         "creationTimestamp":"2024-01-01T00:00:00Z"}})");
  Json renamed = Obj(R"({"metadata":{"name":"b","namespace":"d"}})");
  FieldErrors errors;
  ValidateObjectMetaUpdate(renamed, old_obj, errors);
  EXPECT_TRUE(
      Has(errors, "metadata.name", "FieldValueInvalid", "Invalid value: \"b\": field is immutable"))
      << Dump(errors);
  EXPECT_EQ(errors.size(), 1u) << "absent uid/creationTimestamp count as unchanged\n"
                               << Dump(errors);
  errors.clear();
  Json new_uid = Obj(R"({"metadata":{"name":"a","namespace":"d","uid":"2"}})");
  ValidateObjectMetaUpdate(new_uid, old_obj, errors);
  EXPECT_TRUE(Has(errors, "metadata.uid", "FieldValueInvalid", "field is immutable"));

  Json deleting = Obj(R"({"metadata":{"name":"a","namespace":"d",
      "deletionTimestamp":"2024-01-02T00:00:00Z","finalizers":["a.io/x"]}})");
  Json more = deleting;
  more["metadata"]["finalizers"].push_back("b.io/y");
  errors.clear();
  ValidateObjectMetaUpdate(more, deleting, errors);
  EXPECT_TRUE(Has(errors, "metadata.finalizers", "FieldValueForbidden",
                  "no new finalizers can be added if the object is being deleted, found new "
                  "finalizers []string{\"b.io/y\"}"))
      << Dump(errors);
}

TEST(QuantityTest, ParsesKubernetesSyntax) {
  struct Case {
    const char* text;
    int64_t milli;
  } cases[] = {
      {"100m", 100},
      {"1", 1000},
      {"0.5", 500},
      {"1e3", 1000000},
      {"1k", 1000000},
      {"1Ki", 1024000},
      {"1Gi", 1073741824000},
      {"+2", 2000},
      {"1.5", 1500},
      {".5", 500},
      {"5.", 5000},
      {"500u", 1},
      {"1E", 0 /* checked by Value() below */},
      {"2E-3", 2},
      {"1.0000001", 1001},
  };
  for (const auto& c : cases) {
    Quantity q;
    ASSERT_TRUE(ParseQuantity(std::string_view(c.text), &q)) << c.text;
    if (std::string(c.text) == "1E") {
      EXPECT_EQ(q.Value(), 1000000000000000000) << c.text;
    } else {
      EXPECT_EQ(q.MilliValue(), c.milli) << c.text;
    }
  }
  Quantity neg;
  ASSERT_TRUE(ParseQuantity(std::string_view("-1"), &neg));
  EXPECT_EQ(neg.Value(), -1);
}

TEST(QuantityTest, RejectsMalformed) {
  for (const char* bad :
       {"", "abc", "1ki", "1K", "1.2.3", "Gi", "1 Gi", "1e", "1e+", "--1", "1Gib", "."}) {
    Quantity q;
    EXPECT_FALSE(ParseQuantity(std::string_view(bad), &q)) << "'" << bad << "'";
  }
}

TEST(QuantityTest, JsonNumbersAndExactComparison) {
  Quantity a, b, c;
  ASSERT_TRUE(ParseQuantity(Json("500m"), &a));
  ASSERT_TRUE(ParseQuantity(Json(0.5), &b));
  ASSERT_TRUE(ParseQuantity(Json(1), &c));
  EXPECT_EQ(a, b);
  EXPECT_LT(a, c);
  Quantity mi, m;
  ASSERT_TRUE(ParseQuantity(Json("1024Mi"), &mi));
  ASSERT_TRUE(ParseQuantity(Json("1Gi"), &m));
  EXPECT_EQ(mi, m);
  EXPECT_FALSE(ParseQuantity(Json(true), &a));
  EXPECT_EQ(Quantity{}.Value(), 0);
  Quantity tiny;
  ASSERT_TRUE(ParseQuantity(Json("1n"), &tiny));
  EXPECT_EQ(tiny.Value(), 1) << "Value() rounds up";
  EXPECT_EQ(tiny.MilliValue(), 1);
}

TEST(QuantityTest, Validation) {
  FieldErrors errors;
  ValidateNonnegativeQuantity(Json("1Gi"), "x", errors);
  EXPECT_TRUE(errors.empty());
  ValidateNonnegativeQuantity(Json("lots"), "spec.containers[0].resources.limits[cpu]", errors);
  EXPECT_TRUE(Has(errors, "spec.containers[0].resources.limits[cpu]", "FieldValueInvalid",
                  "quantities must match the regular expression"))
      << Dump(errors);
  errors.clear();
  ValidateNonnegativeQuantity(Json("-1"), "q", errors);
  EXPECT_TRUE(Has(errors, "q", "FieldValueInvalid",
                  "Invalid value: \"-1\": must be greater than or equal to 0"));
}

TEST(SelectorTest, MatchesAndFormats) {
  Json sel = Obj(R"({"matchLabels":{"app":"web"},
      "matchExpressions":[{"key":"tier","operator":"In","values":["b","a"]},
                          {"key":"canary","operator":"DoesNotExist"},
                          {"key":"env","operator":"NotIn","values":["prod"]},
                          {"key":"team","operator":"Exists"}]})");
  EXPECT_TRUE(LabelSelectorMatches(sel, Obj(R"({"app":"web","tier":"a","team":"x"})")));
  EXPECT_FALSE(LabelSelectorMatches(sel, Obj(R"({"app":"web","tier":"c","team":"x"})")));
  EXPECT_FALSE(
      LabelSelectorMatches(sel, Obj(R"({"app":"web","tier":"a","team":"x","canary":"1"})")));
  EXPECT_FALSE(
      LabelSelectorMatches(sel, Obj(R"({"app":"web","tier":"a","team":"x","env":"prod"})")));
  EXPECT_FALSE(LabelSelectorMatches(sel, Obj(R"({"app":"web","tier":"a"})")));
  EXPECT_EQ(FormatLabelSelector(sel), "app=web,!canary,env notin (prod),team,tier in (a,b)");
  EXPECT_TRUE(LabelSelectorMatches(Obj("{}"), Obj(R"({"x":"y"})"))) << "empty matches all";
  EXPECT_FALSE(LabelSelectorMatches(Json(), Obj(R"({"x":"y"})"))) << "null matches nothing";
  EXPECT_EQ(FormatLabelSelector(Obj("{}")), "");
  EXPECT_EQ(FormatLabelSelector(Obj(R"({"matchExpressions":[{"key":"a","operator":"Bad"}]})")),
            "<error>");
  EXPECT_EQ(FormatLabels(Obj(R"({"b":"2","a":"1"})")), "a=1,b=2");
  EXPECT_EQ(FormatLabels(Json()), "<none>");
}

TEST(SelectorTest, Validation) {
  FieldErrors errors;
  ValidateLabelSelector(Obj(R"({"matchLabels":{"app":"-bad"},
      "matchExpressions":[{"key":"a","operator":"In"},
                          {"key":"b","operator":"Exists","values":["x"]},
                          {"key":"c","operator":"Near","values":["x"]}]})"),
                        "spec.selector", errors);
  EXPECT_TRUE(Has(errors, "spec.selector.matchLabels", "FieldValueInvalid")) << Dump(errors);
  EXPECT_TRUE(Has(errors, "spec.selector.matchExpressions[0].values", "FieldValueRequired",
                  "must be specified when `operator` is 'In' or 'NotIn'"));
  EXPECT_TRUE(Has(errors, "spec.selector.matchExpressions[1].values", "FieldValueForbidden"));
  EXPECT_TRUE(Has(errors, "spec.selector.matchExpressions[2].operator", "FieldValueInvalid",
                  "Invalid value: \"Near\": not a valid selector operator"));
}

TEST(SmallValidatorTest, PortsProtocolsIntegers) {
  FieldErrors errors;
  Json zero = 0, big = 70000, text = "80", udp = "UDP", icmp = "ICMP";
  ValidatePortNumber(&zero, "p", true, errors);
  EXPECT_TRUE(Has(errors, "p", "FieldValueRequired"));
  ValidatePortNumber(&big, "p2", true, errors);
  EXPECT_TRUE(Has(errors, "p2", "FieldValueInvalid",
                  "Invalid value: 70000: must be between 1 and 65535, inclusive"));
  ValidatePortNumber(&text, "p3", true, errors);
  EXPECT_TRUE(Has(errors, "p3", "FieldValueInvalid", "must be an integer"));
  ValidateProtocol(&udp, "proto", errors);
  EXPECT_FALSE(Has(errors, "proto", "FieldValueNotSupported"));
  ValidateProtocol(&icmp, "proto", errors);
  EXPECT_TRUE(Has(errors, "proto", "FieldValueNotSupported",
                  "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""));
  Json minus = -3;
  ValidateNonnegativeInt(&minus, "spec.replicas", errors);
  EXPECT_TRUE(Has(errors, "spec.replicas", "FieldValueInvalid",
                  "Invalid value: -3: must be greater than or equal to 0"));
}

}  // namespace
}  // namespace fulcrum::api
