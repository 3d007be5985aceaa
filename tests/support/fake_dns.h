#pragma once
// A DNS server for tests, on 127.0.0.1, UDP and TCP on the same port: every
// A query gets the configured IPv4 addresses (any name), every AAAA query the
// configured IPv6 addresses, every other query an empty NOERROR answer. With `truncate_udp`, a UDP answer carries only the
// question with the TC bit set, and the full answer comes over TCP, the way a
// real server answers a name with more records than fit in 512 bytes.

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace vantage::test_support {

class FakeDns {
 public:
  FakeDns(std::vector<std::string> v4, bool truncate_udp, std::vector<std::string> v6 = {})
      : truncate_udp_(truncate_udp) {
    for (const auto& text : v4) v4_.push_back(boost::asio::ip::make_address_v4(text).to_bytes());
    for (const auto& text : v6) v6_.push_back(boost::asio::ip::make_address_v6(text).to_bytes());
    namespace ip = boost::asio::ip;
    const auto loopback = ip::make_address("127.0.0.1");
    // UDP first, then TCP on the same port number (taken again if TCP cannot have it).
    for (int tries = 0; !tcp_; ++tries) {
      udp_.emplace(io_, ip::udp::endpoint(loopback, 0));
      try {
        tcp_.emplace(io_, ip::tcp::endpoint(loopback, udp_->local_endpoint().port()));
      } catch (const std::exception&) {
        if (tries == 20) throw;
      }
    }
    receive();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeDns() {
    io_.stop();
    thread_.join();
  }
  // For resolve_host's `servers` and TargetRules::dns_servers.
  std::string servers() const { return "127.0.0.1:" + std::to_string(udp_->local_endpoint().port()); }
  int udp_queries() const { return udp_queries_; }
  int tcp_queries() const { return tcp_queries_; }

 private:
  // The answer to `query` (a whole DNS message), or nothing for junk.
  std::optional<std::string> answer(const std::string& query, bool truncated) const {
    if (query.size() < 12 + 5) return std::nullopt;
    size_t end = 12;  // the question's name: labels up to the root
    while (end < query.size() && query[end] != 0) end += 1 + static_cast<unsigned char>(query[end]);
    end += 1 + 4;  // root label, type, class
    if (end > query.size()) return std::nullopt;
    const bool type_a = query[end - 4] == 0 && query[end - 3] == 1;
    const bool type_aaaa = query[end - 4] == 0 && query[end - 3] == 28;
    const size_t count = truncated ? 0 : type_a ? v4_.size() : type_aaaa ? v6_.size() : 0;
    std::string out = query.substr(0, 2);  // id
    out.push_back(static_cast<char>(0x84 | (truncated ? 0x02 : 0) | (query[2] & 0x01)));  // QR AA [TC] RD
    out.push_back(static_cast<char>(0x80));                                               // RA, NOERROR
    out += std::string("\0\1", 2);                                                         // one question
    out.push_back(static_cast<char>(count >> 8));
    out.push_back(static_cast<char>(count & 0xff));
    out += std::string(4, '\0');  // no authority, no additional
    out += query.substr(12, end - 12);
    for (size_t i = 0; i < count; ++i) {
      if (type_a) {
        out += std::string("\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4", 12);  // the question's name, A, IN, TTL 60, 4 bytes
        out.append(reinterpret_cast<const char*>(v4_[i].data()), 4);
      } else {
        out += std::string("\xc0\x0c\0\x1c\0\1\0\0\0\x3c\0\x10", 12);  // AAAA, IN, TTL 60, 16 bytes
        out.append(reinterpret_cast<const char*>(v6_[i].data()), 16);
      }
    }
    return out;
  }

  void receive() {
    udp_->async_receive_from(boost::asio::buffer(datagram_), peer_, [this](boost::system::error_code ec, size_t n) {
      if (ec) return;
      ++udp_queries_;
      if (auto reply = answer(std::string(datagram_.data(), n), truncate_udp_)) {
        boost::system::error_code ignored;
        udp_->send_to(boost::asio::buffer(*reply), peer_, 0, ignored);
      }
      receive();
    });
  }

  void accept() {
    tcp_->async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket socket) {
      if (ec) return;
      serve(std::make_shared<boost::asio::ip::tcp::socket>(std::move(socket)));
      accept();
    });
  }

  // Queries over TCP: a two-byte length, then the message; as many as come.
  void serve(std::shared_ptr<boost::asio::ip::tcp::socket> socket) {
    auto length = std::make_shared<std::array<unsigned char, 2>>();
    boost::asio::async_read(*socket, boost::asio::buffer(*length), [this, socket, length](boost::system::error_code ec,
                                                                                          size_t) {
      if (ec) return;
      auto query = std::make_shared<std::string>(((*length)[0] << 8) | (*length)[1], '\0');
      boost::asio::async_read(*socket, boost::asio::buffer(*query), [this, socket, query](boost::system::error_code ec,
                                                                                          size_t) {
        if (ec) return;
        ++tcp_queries_;
        auto reply = answer(*query, false);
        if (!reply) return;
        std::string framed{static_cast<char>(reply->size() >> 8), static_cast<char>(reply->size() & 0xff)};
        framed += *reply;
        boost::system::error_code ignored;
        boost::asio::write(*socket, boost::asio::buffer(framed), ignored);
        serve(socket);
      });
    });
  }

  const bool truncate_udp_;
  std::vector<boost::asio::ip::address_v4::bytes_type> v4_;
  std::vector<boost::asio::ip::address_v6::bytes_type> v6_;
  boost::asio::io_context io_;
  std::optional<boost::asio::ip::udp::socket> udp_;
  std::optional<boost::asio::ip::tcp::acceptor> tcp_;
  boost::asio::ip::udp::endpoint peer_;
  std::array<char, 2048> datagram_{};
  std::atomic<int> udp_queries_{0}, tcp_queries_{0};
  std::thread thread_;
};

}  // namespace vantage::test_support
