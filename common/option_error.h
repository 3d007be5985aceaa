#pragma once
// An option that cannot be used, thrown by library code at start-up. The
// library knows its options by their names in its options struct
// ("tls_cert_file"), not by the command-line flags that set them: what() says
// what is wrong in the library's terms, and each main() maps option() to its
// flag. (Flag names appear only in the main.cc files.)

#include <stdexcept>
#include <string>

namespace vantage {

class OptionError : public std::runtime_error {
 public:
  OptionError(std::string option, const std::string& message)
      : std::runtime_error(message), option_(std::move(option)) {}
  // The option's name in its options struct, e.g. "spool.directory".
  const std::string& option() const { return option_; }

 private:
  std::string option_;
};

}  // namespace vantage
