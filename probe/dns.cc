#include "probe/dns.h"

#include <ares.h>
#include <netinet/in.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <mutex>
#include <optional>

namespace vantage::probe {

namespace asio = boost::asio;

namespace {

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

struct Query {
  bool done = false;
  DnsAnswer answer;
};

void on_answer(void* arg, int status, int /*timeouts*/, struct ares_addrinfo* result) {
  auto* query = static_cast<Query*>(arg);
  query->done = true;
  if (status != ARES_SUCCESS) {
    query->answer.error = ares_strerror(status);
    query->answer.timed_out = status == ARES_ETIMEOUT;
  } else {
    std::vector<asio::ip::address> v6;
    for (auto* node = result->nodes; node; node = node->ai_next) {
      if (node->ai_family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(node->ai_addr);
        query->answer.addresses.push_back(asio::ip::address_v4(ntohl(sin->sin_addr.s_addr)));
      } else if (node->ai_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(node->ai_addr);
        asio::ip::address_v6::bytes_type bytes;
        std::copy(std::begin(sin6->sin6_addr.s6_addr), std::end(sin6->sin6_addr.s6_addr), bytes.begin());
        v6.push_back(asio::ip::address_v6(bytes));
      }
    }
    query->answer.addresses.insert(query->answer.addresses.end(), v6.begin(), v6.end());
    if (query->answer.addresses.empty()) query->answer.error = "no addresses";
  }
  if (result) ares_freeaddrinfo(result);
}

struct Channel {
  ares_channel channel = nullptr;
  ~Channel() {
    if (channel) ares_destroy(channel);  // fails a pending query: on_answer runs, harmlessly
  }
};

}  // namespace

asio::awaitable<DnsAnswer> resolve_host(const std::string& host, std::chrono::milliseconds timeout,
                                        const std::string& servers) {
  boost::system::error_code literal_error;
  auto literal = asio::ip::make_address(host, literal_error);
  if (!literal_error) co_return DnsAnswer{{literal}, {}, false};

  init_library();
  auto executor = co_await asio::this_coro::executor;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto query = std::make_shared<Query>();
  Channel channel;
  ares_options options{};
  options.timeout = static_cast<int>(std::max<long long>(timeout.count() / 2, 1));
  options.tries = 2;
  if (ares_init_options(&channel.channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) {
    co_return DnsAnswer{{}, "cannot initialise the resolver (c-ares)", false};
  }
  if (!servers.empty() && ares_set_servers_ports_csv(channel.channel, servers.c_str()) != ARES_SUCCESS) {
    co_return DnsAnswer{{}, "bad resolver address list: " + servers, false};
  }
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  ares_getaddrinfo(channel.channel, host.c_str(), nullptr, &hints, on_answer, query.get());

  asio::steady_timer timer(executor);
  while (!query->done) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      query->answer.timed_out = true;
      query->answer.error = "timed out";
      break;
    }
    ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(channel.channel, sockets, ARES_GETSOCK_MAXNUM);
    ares_socket_t readable = ARES_SOCKET_BAD;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      if (ARES_GETSOCK_READABLE(bits, i)) {
        readable = sockets[i];
        break;
      }
    }
    // Wake on the socket turning readable, or on c-ares's next timeout.
    timeval max_wait{};
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
    max_wait.tv_sec = static_cast<time_t>(left.count() / 1'000'000);
    max_wait.tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000);
    timeval wait{};
    timeval* chosen = ares_timeout(channel.channel, &max_wait, &wait);
    timer.expires_after(std::chrono::seconds(chosen->tv_sec) + std::chrono::microseconds(chosen->tv_usec));
    auto ready = std::make_shared<bool>(false);
    std::optional<asio::posix::stream_descriptor> descriptor;
    if (readable != ARES_SOCKET_BAD) {
      descriptor.emplace(executor, readable);  // borrowed: released below, c-ares owns it
      descriptor->async_wait(asio::posix::descriptor_base::wait_read,
                             [ready, &timer](const boost::system::error_code& ec) {
                               if (ec) return;
                               *ready = true;
                               timer.cancel();
                             });
    }
    boost::system::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (descriptor) {
      descriptor->cancel(ignored);
      // Let the cancelled wait complete before the descriptor goes.
      timer.expires_after(std::chrono::seconds(0));
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      descriptor->release();
    }
    ares_process_fd(channel.channel, *ready ? readable : ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  }
  DnsAnswer answer = std::move(query->answer);
  co_return answer;
}

}  // namespace vantage::probe
