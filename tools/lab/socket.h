#pragma once
// Socket endings and writes shared by the lab's origin and edge: how a
// connection ends (FIN or RST) is what the lab is about.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace vantage::lab {

// Opens `acceptor` on address:port (0: any free port) and returns the port.
inline uint16_t listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address, uint16_t port) {
  boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address(address), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(boost::asio::ip::tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen();
  return acceptor.local_endpoint().port();
}

// Orderly close: FIN (the request was read in full, so no unread bytes turn
// the close into a reset).
inline void close_fin(boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code ec;
  socket.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

// Abortive close: SO_LINGER 0, then close sends a RST.
inline void close_rst(boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code ec;
  socket.set_option(boost::asio::socket_base::linger(true, 0), ec);
  socket.close(ec);
}

// False when the peer has gone.
inline boost::asio::awaitable<bool> write_all(boost::asio::ip::tcp::socket& socket, std::string_view bytes) {
  boost::system::error_code ec;
  co_await boost::asio::async_write(socket, boost::asio::buffer(bytes.data(), bytes.size()),
                                    boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  co_return !ec;
}

}  // namespace vantage::lab
