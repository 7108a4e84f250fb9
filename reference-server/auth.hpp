#ifndef RAFTKV_SERVER_AUTH_HPP
#define RAFTKV_SERVER_AUTH_HPP

// Who may use raftkv-server's HTTP API, and which requests came from another member.
//
// Bearer tokens (--auth-tokens FILE): a text file, one token per line,
//
//     # comments and blank lines are ignored
//     <token> <read|write> [name]
//
// A token is 16 to 256 characters of the RFC 6750 token alphabet (letters, digits and
// - . _ ~ + / and trailing =); the name, which 403 messages show, is up to 64
// printable characters without spaces. A read token may use the routes that change
// nothing (GET), a write token every route. Every member of a cluster reads the same file:
// a follower checks the token, and a request it forwards carries the client's
// Authorization header to the leader, which checks it again.
//
// Forwarding marker: a request one member forwards to another carries
// "X-Raftkv-Forwarded: <id> <mac>", where the MAC (HMAC-SHA-256) covers the forwarding
// node's id, the method and the target, under a key every member derives alike from the
// cluster id and the tokens (derive_forwarding_key()). A marker that does not verify is ignored.
// docs/security.md says what that does and does not protect against.
//
//     std::string error;
//     auto tokens = read_auth_tokens("/etc/raftkv/tokens", error);   // error names the line
//     authorizer who{*tokens};
//     auth_decision d = who.check(req["Authorization"], /*write=*/true);

#include <raftkv/types.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::server {

enum class access { read, write };

/// One line of a tokens file.
struct auth_token {
    std::string token;
    server::access access = access::read;
    /// Empty when the line names none.
    std::string name;

    friend bool operator==(const auth_token&, const auth_token&) = default;
};

/// Parses the text of a tokens file. On a bad line (an unknown access level, a token
/// outside the alphabet or too short, a repeated token, a stray field) returns nothing
/// and sets `error` to "<where>: line N: <why>"; a file without any token is an error too.
/// `error` never contains a token.
std::optional<std::vector<auth_token>> parse_auth_tokens(std::string_view text, std::string_view where,
                                                         std::string& error);

/// Reads and parses the tokens file `file`; `error` as parse_auth_tokens(), or says why the
/// file cannot be read.
std::optional<std::vector<auth_token>> read_auth_tokens(const std::filesystem::path& file,
                                                        std::string& error);

/// The outcome of checking a request's Authorization header.
struct auth_decision {
    enum class outcome {
        /// The token may make the request.
        allowed,
        /// No Authorization header, not "Bearer <token>", or an unknown token: 401.
        unauthenticated,
        /// A read token on a request that changes state: 403.
        forbidden,
    };
    outcome result = outcome::unauthenticated;
    /// The token's name (may be empty) when it is known.
    std::string name;
};

/** Checks bearer tokens against a tokens file.

    Keeps SHA-256 digests of the tokens, not the tokens, and compares a presented token's
    digest with every one of them in constant time, so neither how much of a token matched
    nor which line it is on shows in the time taken.

    @par Thread Safety
    Immutable after construction: check() may be called from any thread.
*/
class authorizer {
public:
    explicit authorizer(const std::vector<auth_token>& tokens);

    /// Decides on a request whose Authorization header is `authorization` (empty when
    /// absent) and that changes state when `write`.
    auth_decision check(std::string_view authorization, bool write) const;

private:
    struct entry {
        std::array<unsigned char, 32> digest;
        server::access access;
        std::string name;
    };
    std::vector<entry> entries_;
};

/// The token of "Bearer <token>" (the scheme in any case, then one or more spaces), or
/// nothing when `authorization` is not of that form.
std::optional<std::string_view> bearer_token(std::string_view authorization);

/// The key of the forwarding marker: HMAC-SHA-256 keyed with the cluster id and, when
/// given, every token (in any order), so every member reading the same tokens file derives
/// the same key.
using forwarding_key = std::array<unsigned char, 32>;
forwarding_key derive_forwarding_key(std::uint64_t cluster_id, const std::vector<auth_token>& tokens);

/// The value of the forwarding marker that node `from` sets on a request.
std::string forward_marker(const forwarding_key& key, node_id from, std::string_view method,
                           std::string_view target);

/// The forwarding node's id if `marker` is what forward_marker() makes for this method and
/// target under `key`; nothing otherwise (a forged marker, or one made under another key).
std::optional<node_id> verify_forward_marker(const forwarding_key& key, std::string_view marker,
                                             std::string_view method, std::string_view target);

} // namespace raftkv::server

#endif
