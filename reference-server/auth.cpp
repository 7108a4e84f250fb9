#include "auth.hpp"

#include "config.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace raftkv::server {

namespace {

constexpr std::size_t min_token_chars = 16;
constexpr std::size_t max_token_chars = 256;
constexpr std::size_t max_name_chars = 64;

using digest = std::array<unsigned char, 32>;

digest sha256(std::string_view text)
{
    digest d{};
    if (!SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data()))
        throw std::runtime_error("SHA-256 failed");
    return d;
}

digest hmac_sha256(const digest& key, std::string_view text)
{
    digest d{};
    unsigned int n = 0;
    // A failure must not leave a digest of zeros that anyone could match.
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data(), &n) ||
        n != d.size())
        throw std::runtime_error("HMAC-SHA-256 failed");
    return d;
}

std::string hex(const digest& d)
{
    constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    out.reserve(2 * d.size());
    for (const unsigned char b : d)
        out.append(1, digits[b >> 4]).append(1, digits[b & 0xf]);
    return out;
}

bool equal_in_constant_time(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// RFC 6750's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool is_b64token(std::string_view t)
{
    const std::size_t padding = t.size() - std::min(t.size(), t.find_last_not_of('=') + 1);
    const std::string_view body = t.substr(0, t.size() - padding);
    return !body.empty() && std::all_of(body.begin(), body.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
    });
}

bool is_name(std::string_view n)
{
    return n.size() <= max_name_chars &&
           std::all_of(n.begin(), n.end(), [](char c) { return c > ' ' && c < 127; });
}

/// The blank-separated fields of a line, up to a field starting with '#'.
std::vector<std::string_view> fields_of(std::string_view line)
{
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    for (;;) {
        i = line.find_first_not_of(" \t", i);
        if (i == std::string_view::npos || line[i] == '#')
            return fields;
        const std::size_t end = std::min(line.find_first_of(" \t", i), line.size());
        fields.push_back(line.substr(i, end - i));
        i = end;
    }
}

/// Why `fields` (a line that is not blank) is not a token line, or "" if it is one.
std::string check_line(const std::vector<std::string_view>& fields)
{
    if (fields.size() < 2)
        return "expected '<token> <read|write> [name]'";
    if (fields.size() > 3)
        return "expected '<token> <read|write> [name]', found " + std::to_string(fields.size()) + " fields";
    const std::string_view token = fields[0];
    if (!is_b64token(token))
        return "the token has a character outside letters, digits and - . _ ~ + / (and trailing =)";
    if (token.size() < min_token_chars || token.size() > max_token_chars)
        return "the token is " + std::to_string(token.size()) + " characters; it must be " +
               std::to_string(min_token_chars) + " to " + std::to_string(max_token_chars);
    if (fields[1] != "read" && fields[1] != "write")
        return "the access must be 'read' or 'write'";
    if (fields.size() == 3 && !is_name(fields[2]))
        return "the name must be at most " + std::to_string(max_name_chars) + " printable characters";
    return {};
}

} // namespace

std::optional<std::vector<auth_token>> parse_auth_tokens(std::string_view text, std::string_view where,
                                                         std::string& error)
{
    std::vector<auth_token> tokens;
    std::vector<std::size_t> lines; // the line of each token, for a repeated one
    std::size_t number = 0;
    for (std::size_t start = 0; start < text.size();) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++number;
        if (line.ends_with('\r'))
            line.remove_suffix(1);
        const std::vector<std::string_view> fields = fields_of(line);
        if (fields.empty())
            continue;
        const std::string at = std::string(where) + ": line " + std::to_string(number) + ": ";
        if (std::string why = check_line(fields); !why.empty()) {
            error = at + why;
            return std::nullopt;
        }
        for (std::size_t k = 0; k < tokens.size(); ++k) {
            if (tokens[k].token == fields[0]) {
                error = at + "the token of line " + std::to_string(lines[k]) + " again";
                return std::nullopt;
            }
        }
        tokens.push_back({std::string(fields[0]), fields[1] == "write" ? access::write : access::read,
                          fields.size() == 3 ? std::string(fields[2]) : std::string()});
        lines.push_back(number);
    }
    if (tokens.empty()) {
        error = std::string(where) + ": no tokens (every request but the health checks would be refused)";
        return std::nullopt;
    }
    return tokens;
}

std::optional<std::vector<auth_token>> read_auth_tokens(const std::filesystem::path& file, std::string& error)
{
    const std::string where = file.string();
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) {
        error = "cannot read auth tokens file '" + where + "': it is a directory";
        return std::nullopt;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        error = "cannot read auth tokens file '" + where + "': " + std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream contents;
    contents << in.rdbuf();
    if (in.bad()) {
        error = "cannot read auth tokens file '" + where + "': read error";
        return std::nullopt;
    }
    return parse_auth_tokens(contents.str(), where, error);
}

std::optional<std::string_view> bearer_token(std::string_view authorization)
{
    constexpr std::string_view scheme = "bearer";
    if (authorization.size() <= scheme.size() || authorization[scheme.size()] != ' ')
        return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if ((authorization[i] | 0x20) != scheme[i])
            return std::nullopt;
    std::string_view token = authorization.substr(scheme.size());
    token.remove_prefix(std::min(token.find_first_not_of(' '), token.size()));
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
    if (token.empty() || token.find_first_of(" \t") != std::string_view::npos)
        return std::nullopt;
    return token;
}

authorizer::authorizer(const std::vector<auth_token>& tokens)
{
    entries_.reserve(tokens.size());
    for (const auth_token& t : tokens)
        entries_.push_back({sha256(t.token), t.access, t.name});
}

auth_decision authorizer::check(std::string_view authorization, bool write) const
{
    const std::optional<std::string_view> token = bearer_token(authorization);
    if (!token)
        return {};
    const digest presented = sha256(*token);
    const entry* found = nullptr;
    // Every entry is compared, whichever matches: the time taken does not say which did.
    for (const entry& e : entries_) {
        const bool same = CRYPTO_memcmp(presented.data(), e.digest.data(), presented.size()) == 0;
        found = same ? &e : found;
    }
    if (!found)
        return {};
    if (write && found->access != access::write)
        return {auth_decision::outcome::forbidden, found->name};
    return {auth_decision::outcome::allowed, found->name};
}

forwarding_key derive_forwarding_key(std::uint64_t cluster_id, const std::vector<auth_token>& tokens)
{
    std::vector<std::string_view> sorted;
    for (const auth_token& t : tokens)
        sorted.push_back(t.token);
    std::sort(sorted.begin(), sorted.end());
    std::string material = "raftkv forwarding key 1\n" + std::to_string(cluster_id) + "\n";
    for (const std::string_view t : sorted)
        material.append(t).append("\n");
    return sha256(material);
}

std::string forward_marker(const forwarding_key& key, node_id from, std::string_view method,
                           std::string_view target)
{
    const std::string id = std::to_string(from);
    std::string text = id;
    text.append("\n").append(method).append("\n").append(target);
    return id + " " + hex(hmac_sha256(key, text));
}

std::optional<node_id> verify_forward_marker(const forwarding_key& key, std::string_view marker,
                                             std::string_view method, std::string_view target)
{
    const std::size_t space = marker.find(' ');
    if (space == std::string_view::npos)
        return std::nullopt;
    const std::optional<node_id> from = parse_node_id(marker.substr(0, space));
    if (!from)
        return std::nullopt;
    if (!equal_in_constant_time(forward_marker(key, *from, method, target), marker))
        return std::nullopt;
    return from;
}

} // namespace raftkv::server
