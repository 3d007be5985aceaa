#include "common/failure_class.h"

#include "common/enum_label.h"

namespace vantage {

namespace {
constexpr std::string_view kPrefix = "FAILURE_CLASS_";
}

std::string failure_class_name(v1::FailureClass c) { return enum_label(v1::FailureClass_Name(c), kPrefix); }

std::optional<v1::FailureClass> failure_class_from_name(std::string_view name) {
  const auto number = enum_from_label(v1::FailureClass_descriptor(), kPrefix, name);
  if (!number) return std::nullopt;
  return static_cast<v1::FailureClass>(*number);
}

}  // namespace vantage
