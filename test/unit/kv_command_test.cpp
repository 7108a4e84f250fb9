#include <raftkv/kv_command.hpp>

#define BOOST_TEST_MODULE kv_command
#include <boost/test/unit_test.hpp>

#include <string>

BOOST_AUTO_TEST_CASE(put_and_delete_round_trip_with_binary_keys_and_values)
{
    const std::string key("k\0ey", 4);
    const std::string value("v\0\xff", 3);
    const std::string put = raftkv::encode_put(key, value);
    auto c = raftkv::decode_kv_command(put);
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::put));
    BOOST_TEST(c->key == key);
    BOOST_TEST(c->value == value);
    const std::string del = raftkv::encode_del(key);
    c = raftkv::decode_kv_command(del);
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::del));
    BOOST_TEST(c->key == key);
    BOOST_TEST(c->value.empty());
}

BOOST_AUTO_TEST_CASE(empty_value_is_a_valid_put)
{
    auto c = raftkv::decode_kv_command(raftkv::encode_put("k", ""));
    BOOST_REQUIRE(c);
    BOOST_TEST(c->value.empty());
}

BOOST_AUTO_TEST_CASE(malformed_commands_are_rejected)
{
    BOOST_TEST(!raftkv::decode_kv_command(""));
    BOOST_TEST(!raftkv::decode_kv_command("P\0\0"));
    BOOST_TEST(!raftkv::decode_kv_command(std::string("X\0\0\0\1k", 6)));
    BOOST_TEST(!raftkv::decode_kv_command(std::string("P\0\0\0\x09k", 6))); // key longer than data
    BOOST_TEST(!raftkv::decode_kv_command(std::string("D\0\0\0\1kv", 7))); // delete with a value
}
