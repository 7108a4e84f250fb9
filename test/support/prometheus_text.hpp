#ifndef RAFTKV_TEST_SUPPORT_PROMETHEUS_TEXT_HPP
#define RAFTKV_TEST_SUPPORT_PROMETHEUS_TEXT_HPP

// A strict reader of the Prometheus text exposition format, version 0.0.4, for tests: it
// parses every line and records each departure from the format as an error, so a test can
// require none and then look samples up.
//
// Checked: every line ends with "\n"; "# HELP name text" escapes only "\\" and "\n"; at
// most one HELP and exactly one TYPE per family, before its samples, with a known type;
// a family's lines are not split by another's; metric and label names are valid, label
// values quoted with only "\\", "\"" and "\n" escapes, no label twice in a sample, no
// sample twice; values parse as floats (NaN, +Inf, -Inf included) and counters are not
// negative; a histogram's samples are name_bucket (with "le"), name_sum and name_count,
// each series' buckets in increasing order of "le" with counts that never decrease, the
// last le="+Inf" and equal to name_count.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace raftkv::test {

struct prometheus_text {
    /// Family name -> type.
    std::map<std::string, std::string> types;
    /// series_key() -> value.
    std::map<std::string, double> samples;
    /// One line per departure from the format, with its line number.
    std::vector<std::string> errors;

    /// The canonical key of a sample: name{label="value",...} with labels sorted by name
    /// (values unescaped); just the name when it has no labels.
    static std::string series_key(std::string_view name,
                                  std::vector<std::pair<std::string, std::string>> labels)
    {
        std::sort(labels.begin(), labels.end());
        std::string key(name);
        for (std::size_t k = 0; k < labels.size(); ++k)
            key += (k == 0 ? "{" : ",") + labels[k].first + "=\"" + labels[k].second + "\"";
        if (!labels.empty())
            key += "}";
        return key;
    }

    std::optional<double> find(std::string_view name,
                               std::vector<std::pair<std::string, std::string>> labels = {}) const
    {
        const auto it = samples.find(series_key(name, std::move(labels)));
        return it == samples.end() ? std::nullopt : std::optional<double>(it->second);
    }

    /// The value, or 0 when the series is absent (a counter not incremented yet).
    double value(std::string_view name, std::vector<std::pair<std::string, std::string>> labels = {}) const
    {
        return find(name, std::move(labels)).value_or(0);
    }

    /// Every sample of family `name` (its own name, or name_bucket/_sum/_count).
    std::vector<std::pair<std::string, double>> family(std::string_view name) const
    {
        std::vector<std::pair<std::string, double>> out;
        for (const auto& [key, v] : samples) {
            const std::string_view k = key;
            const std::string_view base = k.substr(0, k.find('{'));
            if (base == name || base == std::string(name) + "_bucket" || base == std::string(name) + "_sum" ||
                base == std::string(name) + "_count")
                out.emplace_back(key, v);
        }
        return out;
    }
};

namespace detail_prometheus {

inline bool is_name_start(char c, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
inline bool is_name_char(char c, bool colon)
{
    return is_name_start(c, colon) || (c >= '0' && c <= '9');
}
inline bool valid_name(std::string_view s, bool colon)
{
    if (s.empty() || !is_name_start(s[0], colon))
        return false;
    return std::all_of(s.begin(), s.end(), [&](char c) { return is_name_char(c, colon); });
}

inline std::optional<double> parse_float(std::string_view s)
{
    if (s == "NaN")
        return std::nan("");
    if (s == "+Inf" || s == "Inf")
        return HUGE_VAL;
    if (s == "-Inf")
        return -HUGE_VAL;
    if (s.empty())
        return std::nullopt;
    std::string_view digits = s;
    if (digits.front() == '+')
        digits.remove_prefix(1);
    double v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc{} || end != digits.data() + digits.size())
        return std::nullopt;
    return v;
}

struct sample_line {
    std::string name;
    std::vector<std::pair<std::string, std::string>> labels;
    double value = 0;
};

// Parses `line` as a sample; the error, if any, in `why`.
inline std::optional<sample_line> parse_sample(std::string_view line, std::string& why)
{
    sample_line s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
        ++i;
    s.name = std::string(line.substr(0, i));
    if (!valid_name(s.name, true)) {
        why = "bad metric name '" + s.name + "'";
        return std::nullopt;
    }
    std::set<std::string> seen;
    if (i < line.size() && line[i] == '{') {
        ++i;
        for (;;) {
            if (i < line.size() && line[i] == '}') {
                ++i;
                break;
            }
            const std::size_t eq = line.find('=', i);
            if (eq == std::string_view::npos) {
                why = "unterminated label set";
                return std::nullopt;
            }
            std::string label(line.substr(i, eq - i));
            if (!valid_name(label, false) || label.starts_with("__")) {
                why = "bad label name '" + label + "'";
                return std::nullopt;
            }
            if (!seen.insert(label).second) {
                why = "label '" + label + "' twice";
                return std::nullopt;
            }
            i = eq + 1;
            if (i >= line.size() || line[i] != '"') {
                why = "label value of '" + label + "' not quoted";
                return std::nullopt;
            }
            ++i;
            std::string value;
            bool closed = false;
            while (i < line.size()) {
                const char c = line[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c != '\\') {
                    value += c;
                    continue;
                }
                if (i >= line.size()) {
                    break;
                }
                const char e = line[i++];
                if (e == '\\')
                    value += '\\';
                else if (e == '"')
                    value += '"';
                else if (e == 'n')
                    value += '\n';
                else {
                    why = std::string("bad escape \\") + e + " in label value";
                    return std::nullopt;
                }
            }
            if (!closed) {
                why = "unterminated label value";
                return std::nullopt;
            }
            s.labels.emplace_back(std::move(label), std::move(value));
            if (i < line.size() && line[i] == ',')
                ++i;
            else if (i >= line.size() || line[i] != '}') {
                why = "expected ',' or '}' after a label";
                return std::nullopt;
            }
        }
    }
    if (i >= line.size() || line[i] != ' ') {
        why = "no space before the value";
        return std::nullopt;
    }
    ++i;
    std::string_view rest = line.substr(i);
    const std::size_t space = rest.find(' ');
    const std::string_view value = rest.substr(0, space);
    const std::optional<double> v = parse_float(value);
    if (!v) {
        why = "bad value '" + std::string(value) + "'";
        return std::nullopt;
    }
    s.value = *v;
    if (space != std::string_view::npos) {
        const std::string_view ts = rest.substr(space + 1);
        long long t = 0;
        const auto [end, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), t);
        if (ec != std::errc{} || end != ts.data() + ts.size()) {
            why = "bad timestamp '" + std::string(ts) + "'";
            return std::nullopt;
        }
    }
    return s;
}

// The family a sample of `name` belongs to, given the families typed so far.
inline std::string family_of(const std::string& name, const std::map<std::string, std::string>& types)
{
    for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (name.size() > suffix.size() && name.ends_with(suffix)) {
            const std::string base = name.substr(0, name.size() - suffix.size());
            const auto it = types.find(base);
            if (it != types.end() && (it->second == "histogram" || it->second == "summary"))
                return base;
        }
    }
    return name;
}

} // namespace detail_prometheus

inline prometheus_text parse_prometheus_text(std::string_view text)
{
    using namespace detail_prometheus;
    prometheus_text out;
    std::set<std::string> helped;
    std::set<std::string> finished; // families whose lines ended
    std::set<std::string> sampled;  // families with a sample
    std::string current;            // the family whose lines are being read
    // Histogram series (family + labels without le) -> (le, count) in order, sum, count.
    struct series {
        std::vector<std::pair<double, double>> buckets;
        std::optional<double> sum, count;
        int line = 0;
    };
    std::map<std::string, series> histograms;

    if (!text.empty() && text.back() != '\n')
        out.errors.push_back("the text does not end with a newline");
    int number = 0;
    const auto error = [&](const std::string& what) {
        out.errors.push_back("line " + std::to_string(number) + ": " + what);
    };
    const auto enter = [&](const std::string& family) {
        if (family == current)
            return;
        if (finished.count(family))
            error("family " + family + " continues after another family's lines");
        if (!current.empty())
            finished.insert(current);
        current = family;
    };
    std::size_t pos = 0;
    while (pos < text.size()) {
        ++number;
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line.empty())
            continue;
        if (line.front() == '#') {
            const bool help = line.starts_with("# HELP ");
            const bool type = line.starts_with("# TYPE ");
            if (!help && !type)
                continue; // a plain comment
            const std::string_view rest = line.substr(7);
            const std::size_t space = rest.find(' ');
            const std::string name(rest.substr(0, space));
            if (!valid_name(name, true)) {
                error("bad metric name '" + name + "' in a " + (help ? "HELP" : "TYPE") + " line");
                continue;
            }
            const std::string_view arg = space == std::string_view::npos ? "" : rest.substr(space + 1);
            enter(name);
            if (help) {
                if (!helped.insert(name).second)
                    error("a second HELP for " + name);
                for (std::size_t k = 0; k < arg.size(); ++k)
                    if (arg[k] == '\\' && (k + 1 >= arg.size() || (arg[k + 1] != '\\' && arg[k + 1] != 'n')))
                        error("bad escape in the HELP of " + name);
                    else if (arg[k] == '\\')
                        ++k;
                continue;
            }
            if (arg != "counter" && arg != "gauge" && arg != "histogram" && arg != "summary" &&
                arg != "untyped")
                error("unknown type '" + std::string(arg) + "' for " + name);
            if (out.types.count(name))
                error("a second TYPE for " + name);
            if (sampled.count(name))
                error("the TYPE of " + name + " after its samples");
            out.types[name] = std::string(arg);
            continue;
        }
        std::string why;
        std::optional<sample_line> s = parse_sample(line, why);
        if (!s) {
            error(why + ": " + std::string(line));
            continue;
        }
        const std::string family = family_of(s->name, out.types);
        enter(family);
        sampled.insert(family);
        const auto type = out.types.find(family);
        if (type == out.types.end())
            error("a sample of " + family + " without a TYPE");
        const std::string key = prometheus_text::series_key(s->name, s->labels);
        if (!out.samples.emplace(key, s->value).second)
            error("sample " + key + " twice");
        if (type == out.types.end())
            continue;
        if (type->second == "counter" && !(s->value >= 0))
            error("counter " + key + " is negative or NaN");
        if (type->second != "histogram")
            continue;
        if (s->name == family) {
            error("histogram sample " + key + " without a _bucket, _sum or _count suffix");
            continue;
        }
        std::optional<double> le;
        auto labels = s->labels;
        if (const auto it =
                std::find_if(labels.begin(), labels.end(), [](auto& l) { return l.first == "le"; });
            it != labels.end()) {
            le = parse_float(it->second);
            if (!le)
                error("bad le '" + it->second + "' in " + key);
            labels.erase(it);
        }
        series& h = histograms[prometheus_text::series_key(family, labels)];
        h.line = number;
        if (s->name.ends_with("_bucket")) {
            if (!le) {
                error("bucket without le: " + key);
                continue;
            }
            if (!h.buckets.empty() && !(*le > h.buckets.back().first))
                error("bucket le not increasing: " + key);
            if (!h.buckets.empty() && s->value < h.buckets.back().second)
                error("bucket count decreasing (not cumulative): " + key);
            h.buckets.emplace_back(*le, s->value);
        } else if (s->name.ends_with("_sum")) {
            h.sum = s->value;
        } else {
            h.count = s->value;
        }
    }
    for (const auto& [name, h] : histograms) {
        const std::string where = "histogram " + name + ": ";
        if (h.buckets.empty() || !std::isinf(h.buckets.back().first))
            out.errors.push_back(where + "no le=\"+Inf\" bucket last");
        if (!h.count)
            out.errors.push_back(where + "no _count");
        if (!h.sum)
            out.errors.push_back(where + "no _sum");
        if (!h.buckets.empty() && h.count && h.buckets.back().second != *h.count)
            out.errors.push_back(where + "the +Inf bucket differs from _count");
    }
    return out;
}

} // namespace raftkv::test

#endif
