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

// A socket c-ares asks to be watched, and for what.
struct Watched {
  ares_socket_t socket;
  bool read, write;
};

std::vector<Watched> watched_sockets(ares_channel channel) {
  ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
  const int bits = ares_getsock(channel, sockets, ARES_GETSOCK_MAXNUM);
  std::vector<Watched> watched;
  for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
    const bool read = ARES_GETSOCK_READABLE(bits, i), write = ARES_GETSOCK_WRITABLE(bits, i);
    if (read || write) watched.push_back({sockets[i], read, write});
  }
  return watched;
}

// c-ares's next timeout, at most `left`.
std::chrono::microseconds next_timeout(ares_channel channel, std::chrono::microseconds left) {
  timeval max_wait{};
  max_wait.tv_sec = static_cast<time_t>(left.count() / 1'000'000);
  max_wait.tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000);
  timeval wait{};
  timeval* chosen = ares_timeout(channel, &max_wait, &wait);
  return std::chrono::seconds(chosen->tv_sec) + std::chrono::microseconds(chosen->tv_usec);
}

// One turn of c-ares's event loop: waits for a watched socket to turn ready
// (or for c-ares's next timeout, at most `left`), then lets c-ares process.
// c-ares's sockets: UDP, and TCP when an answer came back truncated (TC) or
// was too long for UDP. A TCP socket first wants to be writable (its connect,
// then the query), so every socket is watched for what c-ares asks of it,
// read and write; watching only one readable socket left a TCP retry waiting
// forever.
asio::awaitable<void> process_once(ares_channel channel, const std::shared_ptr<asio::steady_timer>& timer,
                                   std::chrono::microseconds left) {
  const auto executor = co_await asio::this_coro::executor;
  const auto watched = watched_sockets(channel);
  timer->expires_after(next_timeout(channel, left));
  // Which sockets turned ready; shared with the wait handlers, which may
  // run (cancelled) after this turn of the loop.
  struct Ready {
    std::vector<bool> read, write;
    bool any = false;
  };
  auto ready = std::make_shared<Ready>();
  ready->read.resize(watched.size());
  ready->write.resize(watched.size());
  std::vector<std::unique_ptr<asio::posix::stream_descriptor>> descriptors;
  for (size_t i = 0; i < watched.size(); ++i) {
    // Borrowed: released below, c-ares owns the socket.
    auto& descriptor = *descriptors.emplace_back(std::make_unique<asio::posix::stream_descriptor>(executor, watched[i].socket));
    auto on_ready = [ready, i, timer](bool write) {
      return [ready, i, write, timer](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: the loop has moved on
        (write ? ready->write : ready->read)[i] = true;
        if (!ready->any) timer->cancel();
        ready->any = true;
      };
    };
    if (watched[i].read) descriptor.async_wait(asio::posix::descriptor_base::wait_read, on_ready(false));
    if (watched[i].write) descriptor.async_wait(asio::posix::descriptor_base::wait_write, on_ready(true));
  }
  boost::system::error_code ignored;
  co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  // Releasing a descriptor ends its pending waits (operation_aborted)
  // without closing the socket.
  for (auto& descriptor : descriptors) descriptor->release();
  bool processed = false;
  for (size_t i = 0; i < watched.size(); ++i) {
    if (!ready->read[i] && !ready->write[i]) continue;
    processed = true;
    ares_process_fd(channel, ready->read[i] ? watched[i].socket : ARES_SOCKET_BAD,
                    ready->write[i] ? watched[i].socket : ARES_SOCKET_BAD);
  }
  if (!processed) ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
}

}  // namespace

asio::awaitable<DnsAnswer> resolve_host(const std::string& host, std::chrono::milliseconds timeout,
                                        const std::string& servers) {
  boost::system::error_code literal_error;
  auto literal = asio::ip::make_address(host, literal_error);
  if (!literal_error) co_return DnsAnswer{{literal}, {}, false};

  init_library();
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

  // Shared with the wait handlers, which may complete after this coroutine.
  const auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
  while (!query->done) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      query->answer.timed_out = true;
      query->answer.error = "timed out";
      break;
    }
    co_await process_once(channel.channel, timer, std::chrono::duration_cast<std::chrono::microseconds>(deadline - now));
  }
  DnsAnswer answer = std::move(query->answer);
  co_return answer;
}

std::string refused_target(const asio::ip::address& address, bool literal, bool allow_loopback) {
  auto judged = address;
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    judged = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  const bool unspecified = judged.is_v4() ? (judged.to_v4().to_uint() >> 24) == 0 : judged.is_unspecified();
  if (unspecified) return address.to_string() + " is an unspecified address: a connection to it reaches the probe's own host";
  if (literal) return {};
  if (judged.is_loopback() && !allow_loopback) {
    return address.to_string() +
           " is a loopback address (the probe's own host): this probe does not allow loopback targets";
  }
  const bool link_local = judged.is_v4() ? (judged.to_v4().to_uint() >> 16) == 0xA9FE : judged.to_v6().is_link_local();
  if (link_local) return address.to_string() + " is a link-local address (e.g. a cloud metadata service)";
  return {};
}

}  // namespace vantage::probe
