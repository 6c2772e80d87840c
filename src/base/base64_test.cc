#include "base/base64.h"

#include <gtest/gtest.h>

namespace fulcrum::base {
namespace {

TEST(Base64Test, RoundTripsEveryPaddingLength) {
  const std::string cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar",
                               std::string("\0\xff", 2)};
  for (const std::string& s : cases) {
    std::string decoded;
    std::size_t bad = 0;
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &decoded, &bad)) << s;
    EXPECT_EQ(decoded, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
}

TEST(Base64Test, RejectsMalformedInputWithItsOffset) {
  std::string out;
  std::size_t bad = 0;
  EXPECT_FALSE(Base64Decode("Zm9v*mFy", &out, &bad));
  EXPECT_EQ(bad, 4u);
  EXPECT_FALSE(Base64Decode("Zm9", &out, &bad));
  EXPECT_FALSE(Base64Decode("=Zm9", &out, &bad));
}

}  // namespace
}  // namespace fulcrum::base
