#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace vantage::testing {

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env) {
  char templ[] = "/tmp/vantage-test-proc-XXXXXX";
  int fd = mkstemp(templ);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  log_path_ = templ;
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    // Signals blocked by the test runner would stay blocked in the child.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());  // a bare name is looked up in PATH (prometheus, node...)
    _exit(127);
  }
  close(fd);
}

Process::~Process() {
  if (!exit_code_) {
    signal(SIGKILL);
    wait(std::chrono::seconds(5));
  }
  unlink(log_path_.c_str());
}

void Process::signal(int sig) {
  if (!exit_code_) kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string Process::output() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) const {
  return eventually([&] { return output().find(text) != std::string::npos; }, timeout);
}

RunResult run_command(std::vector<std::string> argv, std::map<std::string, std::string> env,
                      std::chrono::milliseconds timeout) {
  Process p(std::move(argv), std::move(env));
  auto code = p.wait(timeout);
  return {code.value_or(-1), p.output()};
}

int64_t number_after(const std::string& output, const std::string& key) {
  auto at = output.rfind(key);
  if (at == std::string::npos) return -1;
  return std::atoll(output.c_str() + at + key.size());
}

std::string http_get(int port, const std::string& path) {
  namespace asio = boost::asio;
  try {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    std::string response;
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(response), ec);
    auto body = response.find("\r\n\r\n");
    return body == std::string::npos ? std::string() : response.substr(body + 4);
  } catch (const std::exception&) {
    return {};
  }
}

std::optional<double> metric_value(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(series + " ")) return std::strtod(line.c_str() + series.size() + 1, nullptr);
  }
  return std::nullopt;
}

}  // namespace vantage::testing
