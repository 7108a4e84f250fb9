#ifndef RAFTKV_ASIO_SRC_IPP
#define RAFTKV_ASIO_SRC_IPP

// The compiled part of raftkv::asio: include this file in exactly one translation unit.
// The raftkv::asio CMake target does that for you (it generates that one-line source in
// the build tree); a project that does not use our CMake compiles a .cpp of its own that
// includes it, and links Boost.Serialization.
//
// Compiling these once keeps Boost.Serialization's archive templates, the heavy part, out
// of every other translation unit: users see only codec.hpp and tcp_transport.hpp. It is
// an .ipp, like the files it gathers, because it defines non-inline functions: including
// it in two translation units of one program is an ODR violation.

#include <raftkv/asio/impl/codec.ipp>
#include <raftkv/asio/impl/tcp_transport.ipp>

#endif
