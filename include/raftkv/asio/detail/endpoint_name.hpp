#ifndef RAFTKV_ASIO_DETAIL_ENDPOINT_NAME_HPP
#define RAFTKV_ASIO_DETAIL_ENDPOINT_NAME_HPP

// "127.0.0.1:7001" or "[::1]:7001", for log lines.

#include <boost/asio/ip/tcp.hpp>

#include <string>

namespace raftkv::asio::detail {

inline std::string endpoint_name(const boost::asio::ip::tcp::endpoint& ep)
{
    const std::string address = ep.address().to_string();
    const std::string port = std::to_string(ep.port());
    return ep.address().is_v6() ? "[" + address + "]:" + port : address + ":" + port;
}

} // namespace raftkv::asio::detail

#endif
