#include "common/check_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "common/url.h"

namespace vantage {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds kDefaultInterval{60'000};
constexpr milliseconds kDefaultTimeout{10'000};
constexpr milliseconds kMinInterval{1'000};

// Where a node stands, for messages: "checks.yaml:12:7".
std::string where(std::string_view origin, const YAML::Node& node) {
  const auto mark = node.Mark();
  if (mark.line < 0) return std::string(origin);
  return fmt::format("{}:{}:{}", origin, mark.line + 1, mark.column + 1);
}

[[noreturn]] void fail(std::string_view origin, const YAML::Node& node, std::string_view what) {
  throw ConfigError(fmt::format("{}: {}", where(origin, node), what));
}

std::string scalar(std::string_view origin, const YAML::Node& node, std::string_view field) {
  if (!node.IsScalar()) fail(origin, node, fmt::format("{} must be a single value", field));
  return node.Scalar();
}

milliseconds duration_field(std::string_view origin, const YAML::Node& node,
                            std::string_view field) {
  auto text = scalar(origin, node, field);
  auto d = parse_duration(text);
  if (!d) {
    fail(origin, node, fmt::format("{}: \"{}\" is not a duration (use e.g. 500ms, 30s, 5m)", field, text));
  }
  return *d;
}

std::map<std::string, std::string> string_map(std::string_view origin, const YAML::Node& node,
                                              std::string_view field) {
  if (!node.IsMap()) fail(origin, node, fmt::format("{} must be a mapping of names to values", field));
  std::map<std::string, std::string> out;
  for (const auto& kv : node) {
    out[scalar(origin, kv.first, field)] = scalar(origin, kv.second, field);
  }
  return out;
}

std::vector<std::string> string_list(std::string_view origin, const YAML::Node& node,
                                     std::string_view field) {
  if (!node.IsSequence()) fail(origin, node, fmt::format("{} must be a list", field));
  std::vector<std::string> out;
  for (const auto& item : node) out.push_back(scalar(origin, item, field));
  return out;
}

void status_ranges(std::string_view origin, const YAML::Node& node, v1::Check& check) {
  if (!node.IsSequence()) {
    fail(origin, node, "expected_status must be a list of codes or ranges, e.g. [200, \"300-399\"]");
  }
  for (const auto& item : node) {
    auto text = scalar(origin, item, "expected_status");
    unsigned lo = 0, hi = 0;
    auto dash = text.find('-');
    auto number = [](std::string_view s, unsigned* v) {
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
      return ec == std::errc() && end == s.data() + s.size();
    };
    bool ok = dash == std::string::npos
                  ? number(text, &lo) && (hi = lo, true)
                  : number(std::string_view(text).substr(0, dash), &lo) &&
                        number(std::string_view(text).substr(dash + 1), &hi);
    if (!ok || lo < 100 || hi > 599 || lo > hi) {
      fail(origin, item, fmt::format("expected_status: \"{}\" is not a status code or range from 100 to 599", text));
    }
    auto* range = check.add_expected_status();
    range->set_min(lo);
    range->set_max(hi);
  }
}

void reject_unknown_keys(std::string_view origin, const YAML::Node& node,
                         const std::set<std::string>& known, std::string_view what) {
  for (const auto& kv : node) {
    auto key = kv.first.Scalar();
    if (!known.contains(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(origin, kv.first, fmt::format("unknown field \"{}\" in {} (known: {})", key, what, list));
    }
  }
}

// correlation: {confirm_consecutive: 3, stale_after: 5m, ...} (correlation.md).
// Keys left out keep what is already set (from the defaults block), else the
// coordinator's defaults.
void correlation_block(std::string_view origin, const YAML::Node& node, v1::CorrelationSettings& out) {
  static const std::set<std::string> kKeys{"confirm_consecutive", "resolve_consecutive", "stale_after",
                                           "global_quorum",       "reopen_within",       "recurring_min",
                                           "recurring_window",    "recheck_min_interval"};
  if (!node.IsMap()) {
    std::string list;
    for (const auto& k : kKeys) list += (list.empty() ? "" : ", ") + k;
    fail(origin, node, fmt::format("correlation must be a mapping ({})", list));
  }
  reject_unknown_keys(origin, node, kKeys, "correlation");
  auto count = [&](const char* key, auto set) {
    const auto value = node[key];
    if (!value) return;
    const auto text = scalar(origin, value, fmt::format("correlation.{}", key));
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n == 0) {
      fail(origin, value, fmt::format("correlation.{}: \"{}\" is not a whole number of at least 1", key, text));
    }
    set(n);
  };
  auto duration = [&](const char* key, auto field) {
    const auto value = node[key];
    if (!value) return;
    const auto d = duration_field(origin, value, fmt::format("correlation.{}", key));
    // Zero would read as "unset" and silently mean the default.
    if (d <= milliseconds(0)) fail(origin, value, fmt::format("correlation.{} must be longer than 0", key));
    *field() = to_duration(d);
  };
  count("confirm_consecutive", [&](uint32_t n) { out.set_confirm_consecutive(n); });
  count("resolve_consecutive", [&](uint32_t n) { out.set_resolve_consecutive(n); });
  count("global_quorum", [&](uint32_t n) { out.set_global_quorum(n); });
  count("recurring_min", [&](uint32_t n) { out.set_recurring_min(n); });
  duration("stale_after", [&] { return out.mutable_stale_after(); });
  duration("reopen_within", [&] { return out.mutable_reopen_within(); });
  duration("recurring_window", [&] { return out.mutable_recurring_window(); });
  duration("recheck_min_interval", [&] { return out.mutable_recheck_min_interval(); });
}

v1::Check parse_check(std::string_view origin, const YAML::Node& node,
                      const YAML::Node& defaults) {
  if (!node.IsMap()) fail(origin, node, "each entry of checks must be a mapping");
  reject_unknown_keys(origin, node,
                      {"name", "url", "method", "interval", "timeout", "expected_status",
                       "regions", "headers", "labels", "origin", "follow_up_json",
                       "follow_up_trace", "correlation"},
                      "a check");
  v1::Check check;
  check.set_source(v1::CHECK_SOURCE_FILE);
  // A field of the check, else of the defaults block.
  auto field = [&](const char* key) -> std::optional<YAML::Node> {
    if (node[key]) return node[key];
    if (defaults && defaults[key]) return defaults[key];
    return std::nullopt;
  };
  if (!node["name"]) fail(origin, node, "a check needs a name");
  check.set_name(scalar(origin, node["name"], "name"));
  if (!node["url"]) fail(origin, node, fmt::format("check \"{}\" needs a url", check.name()));
  check.set_url(scalar(origin, node["url"], "url"));
  if (auto n = field("method")) check.set_method(scalar(origin, *n, "method"));
  if (auto n = field("interval")) *check.mutable_interval() = to_duration(duration_field(origin, *n, "interval"));
  if (auto n = field("timeout")) *check.mutable_timeout() = to_duration(duration_field(origin, *n, "timeout"));
  if (auto n = field("expected_status")) status_ranges(origin, *n, check);
  if (auto n = field("regions")) {
    for (auto& r : string_list(origin, *n, "regions")) check.add_regions(r);
  }
  if (auto n = field("headers")) {
    for (auto& [k, v] : string_map(origin, *n, "headers")) (*check.mutable_headers())[k] = v;
  }
  if (auto n = node["labels"]) {
    for (auto& [k, v] : string_map(origin, n, "labels")) (*check.mutable_labels())[k] = v;
  }
  if (auto n = node["origin"]) {
    if (!n.IsMap()) fail(origin, n, "origin must be a mapping (address, host, sni, scheme, interval)");
    reject_unknown_keys(origin, n, {"address", "host", "sni", "scheme", "interval"}, "origin");
    auto* o = check.mutable_origin();
    if (!n["address"]) fail(origin, n, "origin needs an address (IP or host, with an optional :port)");
    o->set_address(scalar(origin, n["address"], "origin.address"));
    if (n["host"]) o->set_host(scalar(origin, n["host"], "origin.host"));
    if (n["sni"]) o->set_sni(scalar(origin, n["sni"], "origin.sni"));
    if (n["scheme"]) o->set_scheme(scalar(origin, n["scheme"], "origin.scheme"));
    if (n["interval"]) *o->mutable_interval() = to_duration(duration_field(origin, n["interval"], "origin.interval"));
  }
  if (defaults && defaults["correlation"]) correlation_block(origin, defaults["correlation"], *check.mutable_correlation());
  if (auto n = node["correlation"]) correlation_block(origin, n, *check.mutable_correlation());
  for (const char* flag : {"follow_up_json", "follow_up_trace"}) {
    if (auto n = field(flag)) {
      auto text = scalar(origin, *n, flag);
      if (text != "true" && text != "false") fail(origin, *n, fmt::format("{} must be true or false", flag));
      (std::string_view(flag) == "follow_up_json" ? check.set_follow_up_json(text == "true")
                                                  : check.set_follow_up_trace(text == "true"));
    }
  }
  if (auto problem = normalize_check(check); !problem.empty()) {
    fail(origin, node, fmt::format("check \"{}\": {}", check.name(), problem));
  }
  return check;
}

}  // namespace

std::optional<milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  milliseconds total{0};
  while (!text.empty()) {
    long long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || value < 0) return std::nullopt;
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    long long unit_ms = 0;
    if (text.starts_with("ms")) {
      unit_ms = 1;
      text.remove_prefix(2);
    } else if (text.starts_with("s")) {
      unit_ms = 1000;
      text.remove_prefix(1);
    } else if (text.starts_with("m")) {
      unit_ms = 60'000;
      text.remove_prefix(1);
    } else if (text.starts_with("h")) {
      unit_ms = 3'600'000;
      text.remove_prefix(1);
    } else {
      return std::nullopt;  // a unit is required: "30" is ambiguous
    }
    total += milliseconds(value * unit_ms);
  }
  return total;
}

milliseconds to_millis(const google::protobuf::Duration& d) {
  return milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

google::protobuf::Duration to_duration(milliseconds ms) {
  google::protobuf::Duration d;
  d.set_seconds(ms.count() / 1000);
  d.set_nanos(static_cast<int32_t>((ms.count() % 1000) * 1'000'000));
  return d;
}

std::string normalize_check(v1::Check& check) {
  static const std::regex kName("[a-z0-9][a-z0-9-]{0,62}");
  if (!std::regex_match(check.name(), kName)) {
    return fmt::format("name \"{}\" must be 1 to 63 lower-case letters, digits or '-', starting with a letter or digit",
                       check.name());
  }
  std::string url_error;
  if (!parse_url(check.url(), &url_error)) return fmt::format("url \"{}\": {}", check.url(), url_error);
  if (check.method().empty()) check.set_method("GET");
  static const std::set<std::string> kMethods{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
  if (!kMethods.contains(check.method())) {
    return fmt::format("method \"{}\" is not one of GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH", check.method());
  }
  if (!check.has_interval()) *check.mutable_interval() = to_duration(kDefaultInterval);
  if (!check.has_timeout()) {
    *check.mutable_timeout() = to_duration(std::min(kDefaultTimeout, to_millis(check.interval())));
  }
  const auto interval = to_millis(check.interval());
  const auto timeout = to_millis(check.timeout());
  if (interval < kMinInterval) return fmt::format("interval {}ms is below the minimum of 1s", interval.count());
  if (timeout <= milliseconds(0)) return "timeout must be positive";
  if (timeout > interval) {
    return fmt::format("timeout {}ms is longer than the interval {}ms", timeout.count(), interval.count());
  }
  if (check.expected_status_size() == 0) {
    auto* range = check.add_expected_status();
    range->set_min(200);
    range->set_max(399);
  }
  for (const auto& region : check.regions()) {
    if (region.empty()) return "regions must not contain an empty name";
  }
  if (check.has_origin() && !check.origin().address().empty()) {
    std::string hp_error;
    if (!parse_host_port(check.origin().address(), 1, &hp_error)) {
      return fmt::format("origin.address \"{}\": {}", check.origin().address(), hp_error);
    }
    const auto& scheme = check.origin().scheme();
    if (!scheme.empty() && scheme != "http" && scheme != "https") {
      return fmt::format("origin.scheme \"{}\" is not http or https", scheme);
    }
  }
  return {};
}

std::vector<v1::Check> parse_checks_yaml(std::string_view text, std::string_view origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}:{}: not valid YAML: {}", origin, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
  }
  if (!root || root.IsNull()) throw ConfigError(fmt::format("{}: the file is empty (expected a 'checks:' list)", origin));
  if (!root.IsMap()) fail(origin, root, "expected a mapping with a 'checks:' list at the top");
  reject_unknown_keys(origin, root, {"defaults", "checks"}, "the top level");
  YAML::Node defaults = root["defaults"];
  if (defaults) {
    if (!defaults.IsMap()) fail(origin, defaults, "defaults must be a mapping");
    reject_unknown_keys(origin, defaults,
                        {"method", "interval", "timeout", "expected_status", "regions", "headers",
                         "follow_up_json", "follow_up_trace", "correlation"},
                        "defaults");
  }
  auto list = root["checks"];
  if (!list) fail(origin, root, "missing 'checks:' list");
  if (!list.IsSequence()) fail(origin, list, "checks must be a list");
  std::vector<v1::Check> checks;
  std::set<std::string> names;
  for (const auto& node : list) {
    auto check = parse_check(origin, node, defaults);
    if (!names.insert(check.name()).second) {
      fail(origin, node, fmt::format("check name \"{}\" is used twice", check.name()));
    }
    checks.push_back(std::move(check));
  }
  return checks;
}

std::vector<v1::Check> load_checks_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("{}: cannot read the checks file: {}", path, std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return parse_checks_yaml(text.str(), path);
}

}  // namespace vantage
