#pragma once

#include <string>

namespace fulcrum::base {

// A random RFC 4122 version 4 UUID ("3f1c...-4...-[89ab]..."), from a CSPRNG. Thread-safe.
std::string NewUuid();
// `n` random bytes as 2n lower-case hex digits, from a CSPRNG. Thread-safe.
std::string RandomHex(int n);
// `n` random characters from [a-z0-9] minus vowels, as Kubernetes' generateName suffixes.
std::string RandomSuffix(int n);

}  // namespace fulcrum::base
