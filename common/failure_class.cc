#include "common/failure_class.h"

#include <algorithm>
#include <cctype>

namespace vantage {

namespace {
constexpr std::string_view kPrefix = "FAILURE_CLASS_";
}

std::string failure_class_name(v1::FailureClass c) {
  std::string name = v1::FailureClass_Name(c);
  if (name.rfind(kPrefix, 0) == 0) name.erase(0, kPrefix.size());
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return name;
}

std::optional<v1::FailureClass> failure_class_from_name(std::string_view name) {
  std::string upper(kPrefix);
  for (char ch : name) upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
  v1::FailureClass c;
  if (!v1::FailureClass_Parse(upper, &c) || c == v1::FAILURE_CLASS_UNSPECIFIED) return std::nullopt;
  return c;
}

}  // namespace vantage
