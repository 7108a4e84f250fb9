// The compiled part of the frame codec, alone: the fuzz build compiles this rather than the
// whole raftkv::asio library (whose transport the fuzz targets do not use).
#include <raftkv/asio/impl/codec.ipp>
