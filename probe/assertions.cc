#include "probe/assertions.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "common/text.h"

namespace vantage::probe {

namespace {

// Bounds of what a reason quotes (bytes, valid UTF-8 after safe_text): the
// pattern is the user's (at most 1 KiB, check_config.h), a value the site's.
constexpr size_t kPatternShown = 256;
constexpr size_t kValueShown = 128;

// Compiled patterns by their text, for every check of the probe. Bounded:
// when full it starts again (plans still holding a pattern keep it alive),
// so a coordinator that keeps changing patterns costs compiles, not memory.
class PatternCache {
 public:
  std::shared_ptr<const re2::RE2> get(const std::string& pattern) {
    std::lock_guard lock(mutex_);
    if (auto it = compiled_.find(pattern); it != compiled_.end()) return it->second;
    if (compiled_.size() >= kMaxPatterns) compiled_.clear();
    re2::RE2::Options options;
    options.set_log_errors(false);  // a bad pattern is the result's invalid_check, not a line on stderr
    auto re = std::make_shared<const re2::RE2>(pattern, options);
    compiled_.emplace(pattern, re);  // one that does not compile too: its error is kept, not recompiled
    return re;
  }

 private:
  static constexpr size_t kMaxPatterns = 1024;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const re2::RE2>> compiled_;
};

PatternCache& pattern_cache() {
  static PatternCache cache;
  return cache;
}

// Why assertion `index` cannot be judged, or empty (named as the checks
// file's fields are, check_config.h).
std::string assertion_problem(const v1::Assertion& a, int index, const re2::RE2& re) {
  const auto field = fmt::format("assertions[{}]", index);
  if (a.target() != v1::Assertion::TARGET_BODY && a.target() != v1::Assertion::TARGET_HEADER) {
    return field + ".target: must be body or header";
  }
  if (a.target() == v1::Assertion::TARGET_HEADER && a.header_name().empty()) return field + ".header_name: is empty";
  if (!re.ok()) {
    return fmt::format("{}.pattern \"{}\": does not compile: {}", field, safe_text(a.pattern(), kPatternShown),
                       re.error());
  }
  return {};
}

std::string quoted(std::string_view text, size_t max_bytes) { return "\"" + safe_text(text, max_bytes) + "\""; }

// Why a body assertion failed, or nullopt when it holds.
std::optional<std::string> body_failure(const v1::Assertion& a, const re2::RE2& re, const AssertedResponse& response) {
  const bool matched = re2::RE2::PartialMatch(response.body, re);
  if (matched != a.negate()) return std::nullopt;
  const auto bytes = response.body.size();
  const auto read = response.body_capped
                        ? fmt::format("only the first {} bytes read: the body is longer than the cap", bytes)
                        : fmt::format("{} bytes read", bytes);
  return fmt::format("body {} {}{} ({})", matched ? "matches" : "does not match", quoted(a.pattern(), kPatternShown),
                     matched ? ", which it must not" : "", read);
}

// Why a header assertion failed, or nullopt when it holds: some value
// matches (negated: none does).
std::optional<std::string> header_failure(const v1::Assertion& a, const re2::RE2& re,
                                          const AssertedResponse& response) {
  const auto name = safe_text(a.header_name(), kPatternShown);
  const std::string* first = nullptr;
  const std::string* matching = nullptr;
  size_t values = 0;
  if (response.headers != nullptr) {
    for (const auto& [field, value] : *response.headers) {
      if (!iequals_ascii(field, a.header_name())) continue;
      ++values;
      if (first == nullptr) first = &value;
      if (re2::RE2::PartialMatch(value, re)) {
        matching = &value;
        break;
      }
    }
  }
  const auto pattern = quoted(a.pattern(), kPatternShown);
  if (a.negate()) {
    if (matching == nullptr) return std::nullopt;
    return fmt::format("header {} {} matches {}, which it must not", name, quoted(*matching, kValueShown), pattern);
  }
  if (matching != nullptr) return std::nullopt;
  if (values == 0) return fmt::format("header {} absent", name);
  if (values == 1) return fmt::format("header {} {} does not match {}", name, quoted(*first, kValueShown), pattern);
  return fmt::format("none of the {} values of header {} matches {} (the first: {})", values, name, pattern,
                     quoted(*first, kValueShown));
}

}  // namespace

std::shared_ptr<const CompiledAssertions> compile_assertions(const v1::Check& check) {
  if (check.assertions_size() == 0) return nullptr;
  auto out = std::make_shared<CompiledAssertions>();
  out->patterns.reserve(static_cast<size_t>(check.assertions_size()));
  for (int i = 0; i < check.assertions_size(); ++i) {
    const auto& assertion = check.assertions(i);
    out->patterns.push_back(pattern_cache().get(assertion.pattern()));
    if (out->invalid.empty()) out->invalid = assertion_problem(assertion, i, *out->patterns.back());
  }
  return out;
}

std::optional<v1::AssertionFailure> first_failed_assertion(const v1::Check& check, const CompiledAssertions& compiled,
                                                           const AssertedResponse& response) {
  const auto count = std::min(static_cast<size_t>(check.assertions_size()), compiled.patterns.size());
  for (size_t i = 0; i < count; ++i) {
    const auto& assertion = check.assertions(static_cast<int>(i));
    const auto& re = *compiled.patterns[i];
    if (!re.ok()) continue;  // never judged: such a plan is invalid and sends nothing
    auto reason = assertion.target() == v1::Assertion::TARGET_HEADER ? header_failure(assertion, re, response)
                                                                     : body_failure(assertion, re, response);
    if (!reason) continue;
    v1::AssertionFailure failure;
    failure.set_index(static_cast<uint32_t>(i));
    *failure.mutable_assertion() = assertion;
    failure.set_reason(std::move(*reason));
    return failure;
  }
  return std::nullopt;
}

}  // namespace vantage::probe
