#include "common/enum_label.h"

#include "common/text.h"

namespace vantage {

std::string enum_label(std::string_view value_name, std::string_view prefix) {
  if (value_name.starts_with(prefix)) value_name.remove_prefix(prefix.size());
  return ascii_lower(value_name);
}

std::string enum_label(const google::protobuf::EnumDescriptor* descriptor, int number, std::string_view prefix) {
  const auto* value = descriptor->FindValueByNumber(number);
  return value ? enum_label(value->name(), prefix) : "unspecified";
}

std::optional<int> enum_from_label(const google::protobuf::EnumDescriptor* descriptor, std::string_view prefix,
                                   std::string_view label) {
  for (int i = 0; i < descriptor->value_count(); ++i) {
    const auto* value = descriptor->value(i);
    if (value->number() != 0 && enum_label(value->name(), prefix) == label) return value->number();
  }
  return std::nullopt;
}

}  // namespace vantage
