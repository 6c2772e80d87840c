#include "base/clock.h"

#include <gtest/gtest.h>

namespace fulcrum::base {
namespace {

TEST(Rfc3339Test, FormatsAndParsesRoundTrip) {
  WallTime t = std::chrono::system_clock::from_time_t(1795750231) + std::chrono::microseconds(42);
  EXPECT_EQ(FormatRfc3339(t), "2026-11-27T03:30:31Z");
  EXPECT_EQ(FormatRfc3339Micro(t), "2026-11-27T03:30:31.000042Z");
  WallTime parsed;
  ASSERT_TRUE(ParseRfc3339(FormatRfc3339Micro(t), &parsed));
  EXPECT_EQ(parsed, t);
}

TEST(Rfc3339Test, ParsesOffsetsAndRejectsGarbage) {
  WallTime a, b;
  ASSERT_TRUE(ParseRfc3339("2026-11-27T05:30:31+02:00", &a));
  ASSERT_TRUE(ParseRfc3339("2026-11-27T03:30:31Z", &b));
  EXPECT_EQ(a, b);
  EXPECT_FALSE(ParseRfc3339("yesterday", &a));
  EXPECT_FALSE(ParseRfc3339("2026-13-27T03:30:31Z", &a));
  EXPECT_FALSE(ParseRfc3339("2026-11-27T03:30:31", &a));
  EXPECT_FALSE(ParseRfc3339("2026-11-27T03:30:31Zjunk", &a));
}

TEST(FakeClockTest, MovesOnlyWhenTold) {
  FakeClock clock;
  WallTime start = clock.Now();
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(std::chrono::seconds(5));
  EXPECT_EQ(clock.Now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace fulcrum::base
