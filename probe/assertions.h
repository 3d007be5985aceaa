#pragma once
// A check's assertions (Check.assertions, types.proto Assertion): RE2
// patterns over the body read and over a named header's values, each
// optionally negated. The classifier judges them on a response that is
// otherwise fine (classifier.h classify_response); this file compiles and
// matches. Pure apart from the pattern cache: no sockets, no clock, nothing
// thrown.
//
// What each kind of assertion looks at (diagnosis.md section 3):
// - body: the body as read, de-chunked, at most the cap (Check.body_limit_bytes
//   when set and lower than the probe's own limit, else the probe's). A body
//   longer than the cap is judged on its first bytes only; the reason then
//   says so, and Response.body_truncated_by_cap is set.
// - header: every field line of that name (any case), each value on its own
//   (as sent, not joined with ", ": a Set-Cookie value may hold a comma). The
//   assertion holds when some value matches; negated, when none does. An
//   absent header fails a plain assertion ("header X absent") and holds a
//   negated one (no value matches).
// A pattern matches anywhere in its text (RE2::PartialMatch; anchor with ^ and
// $ for a whole match), with RE2's default syntax (UTF-8, case-sensitive;
// (?i) for any case).

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace re2 {
class RE2;
}

namespace vantage::probe {

// A check's assertions compiled, in the check's order. The patterns are
// shared by every plan whose check has the same pattern text: compiled once,
// not per attempt.
struct CompiledAssertions {
  std::vector<std::shared_ptr<const re2::RE2>> patterns;
  // Why the check's assertions cannot be judged ("assertion 1: pattern ...
  // does not compile: ..."), or empty. Validation refuses such a check; one
  // that reaches the probe anyway (an older coordinator) is invalid_check and
  // nothing is sent.
  std::string invalid;
};

// The compiled assertions of `check`; null when it has none (a plain check
// allocates nothing). Thread-safe.
std::shared_ptr<const CompiledAssertions> compile_assertions(const v1::Check& check);

// What the assertions look at: views into the leg's parser.
struct AssertedResponse {
  std::string_view body;     // as read, at most the cap
  bool body_capped = false;  // the body went on past the cap
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;  // as sent, in order
};

// The first of `check`'s assertions that does not hold (index, the
// assertion, a reason for a person), or nullopt when all hold. `compiled` is
// compile_assertions(check) with an empty `invalid`.
std::optional<v1::AssertionFailure> first_failed_assertion(const v1::Check& check, const CompiledAssertions& compiled,
                                                           const AssertedResponse& response);

}  // namespace vantage::probe
