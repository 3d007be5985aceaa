#pragma once
// What a prober's result must be whatever a site sent: every string field
// (at any depth) valid UTF-8 without NUL, and the message parses back after
// serialisation (proto3 refuses a `string` that is not UTF-8, and one such
// result stops a probe's delivery).

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>

#include <memory>
#include <string>
#include <vector>

#include "common/text.h"

namespace vantage::test_support {

// "edge.response.server" for each string field that is not valid UTF-8 or holds a NUL.
inline void collect_bad_text(const google::protobuf::Message& message, const std::string& prefix,
                             std::vector<std::string>* bad) {
  using google::protobuf::FieldDescriptor;
  const auto* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    const std::string path = prefix + field->name();
    const bool repeated = field->is_repeated();
    const int count = repeated ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING && field->type() == FieldDescriptor::TYPE_STRING) {
        const std::string text =
            repeated ? reflection->GetRepeatedString(message, field, i) : reflection->GetString(message, field);
        if (!is_valid_utf8(text) || text.find('\0') != std::string::npos) bad->push_back(path);
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const auto& child =
            repeated ? reflection->GetRepeatedMessage(message, field, i) : reflection->GetMessage(message, field);
        collect_bad_text(child, path + ".", bad);
      }
    }
  }
}

inline std::vector<std::string> bad_text_fields(const google::protobuf::Message& message) {
  std::vector<std::string> bad;
  collect_bad_text(message, "", &bad);
  return bad;
}

// True when `message` serialises and a fresh message of its type parses it back, equal.
inline bool reparses(const google::protobuf::Message& message) {
  std::string wire;
  if (!message.SerializeToString(&wire)) return false;
  std::unique_ptr<google::protobuf::Message> copy(message.New());
  return copy->ParseFromString(wire) && copy->SerializeAsString() == wire;
}

}  // namespace vantage::test_support
