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

BOOST_AUTO_TEST_CASE(meta_round_trips_with_its_own_op)
{
    const std::string meta = raftkv::encode_meta("node.2.http", "127.0.0.1:8082");
    BOOST_TEST(meta[0] == 'M');
    auto c = raftkv::decode_kv_command(meta);
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::meta));
    BOOST_TEST(c->key == "node.2.http");
    BOOST_TEST(c->value == "127.0.0.1:8082");
}

BOOST_AUTO_TEST_CASE(meta_with_empty_value_is_valid)
{
    auto c = raftkv::decode_kv_command(raftkv::encode_meta("name", ""));
    BOOST_REQUIRE(c);
    BOOST_TEST((c->op == raftkv::kv_command_op::meta));
    BOOST_TEST(c->value.empty());
}

BOOST_AUTO_TEST_CASE(meta_and_put_of_same_key_differ_only_in_op)
{
    const std::string put = raftkv::encode_put("k", "v");
    const std::string meta = raftkv::encode_meta("k", "v");
    BOOST_TEST(put.substr(1) == meta.substr(1));
    BOOST_TEST(put[0] != meta[0]);
}

BOOST_AUTO_TEST_CASE(malformed_commands_are_rejected)
{
    BOOST_TEST(!raftkv::decode_kv_command(""));
    BOOST_TEST(!raftkv::decode_kv_command("P\0\0"));
    BOOST_TEST(!raftkv::decode_kv_command(std::string("X\0\0\0\1k", 6)));
    BOOST_TEST(!raftkv::decode_kv_command(std::string("P\0\0\0\x09k", 6))); // key longer than data
    BOOST_TEST(!raftkv::decode_kv_command(std::string("D\0\0\0\1kv", 7)));  // delete with a value
    BOOST_TEST(!raftkv::decode_kv_command(std::string("M\0\0\0\x09k", 6))); // name longer than data
    BOOST_TEST(!raftkv::decode_kv_command(std::string("m\0\0\0\1k", 6)));   // ops are case-sensitive
}
