// The code the documentation shows is code the tests build and run. A page marks a block
// with `<!-- snippet: test/docs/FILE#NAME -->` on the line before its opening fence; the
// block must be, line for line, the region of FILE between `// snippet: NAME` and
// `// end snippet` (less the region's common indentation). Every region must be shown
// somewhere, and every marker must name a region.

#define BOOST_TEST_MODULE docs_snippets
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::filesystem::path source_dir = RAFTKV_SOURCE_DIR;

std::vector<std::string> read_lines(const std::filesystem::path& file)
{
    std::ifstream in(file);
    BOOST_TEST_REQUIRE(in.good(), "cannot read " << file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

std::string joined(const std::vector<std::string>& lines)
{
    std::string out;
    for (const std::string& line : lines)
        out += line + "\n";
    return out;
}

/// The regions of `file` ("name" → its lines, less their common indentation).
std::map<std::string, std::vector<std::string>> regions_of(const std::filesystem::path& file)
{
    std::map<std::string, std::vector<std::string>> out;
    const std::vector<std::string> lines = read_lines(file);
    for (std::size_t k = 0; k < lines.size(); ++k) {
        const std::size_t at = lines[k].find_first_not_of(' ');
        if (at == std::string::npos || lines[k].compare(at, 12, "// snippet: ") != 0)
            continue;
        const std::string name = lines[k].substr(at + 12);
        std::vector<std::string> region;
        std::size_t end = k + 1;
        const auto is_end = [](const std::string& line) {
            const std::size_t first = line.find_first_not_of(' ');
            return first != std::string::npos &&
                   line.compare(first, std::string::npos, "// end snippet") == 0;
        };
        for (; end < lines.size() && !is_end(lines[end]); ++end)
            region.push_back(lines[end]);
        BOOST_TEST_REQUIRE(end < lines.size(), file << ": region " << name << " has no end");
        std::size_t indent = std::string::npos;
        for (const std::string& line : region)
            if (!line.empty())
                indent = std::min(indent, line.find_first_not_of(' '));
        for (std::string& line : region)
            line = line.empty() ? line : line.substr(indent);
        BOOST_TEST_REQUIRE(out.emplace(name, std::move(region)).second,
                           file << ": region " << name << " twice");
        k = end;
    }
    return out;
}

struct marker {
    std::filesystem::path page;
    std::size_t line; ///< 1-based, of the marker
    std::string file, name;
    std::vector<std::string> block;
};

/// Every marked block of the Markdown page `page`.
std::vector<marker> markers_of(const std::filesystem::path& page)
{
    std::vector<marker> out;
    const std::vector<std::string> lines = read_lines(page);
    const std::string open = "<!-- snippet: ";
    for (std::size_t k = 0; k < lines.size(); ++k) {
        if (!lines[k].starts_with(open))
            continue;
        const std::string target = lines[k].substr(open.size(), lines[k].rfind(" -->") - open.size());
        const std::size_t hash = target.find('#');
        marker m{page,
                 k + 1,
                 target.substr(0, hash),
                 hash == std::string::npos ? "" : target.substr(hash + 1),
                 {}};
        BOOST_TEST_REQUIRE((k + 1 < lines.size() && lines[k + 1].starts_with("```")),
                           page << ":" << k + 1 << ": no code block right after the marker");
        std::size_t end = k + 2;
        for (; end < lines.size() && lines[end] != "```"; ++end)
            m.block.push_back(lines[end]);
        BOOST_TEST_REQUIRE(end < lines.size(), page << ":" << k + 1 << ": the code block does not end");
        out.push_back(std::move(m));
        k = end;
    }
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(the_code_the_pages_show_is_the_code_the_tests_run)
{
    std::vector<std::filesystem::path> pages{source_dir / "README.md"};
    for (const auto& item : std::filesystem::recursive_directory_iterator(source_dir / "docs"))
        if (item.path().extension() == ".md")
            pages.push_back(item.path());

    std::set<std::pair<std::string, std::string>> shown;
    for (const std::filesystem::path& page : pages) {
        for (const marker& m : markers_of(page)) {
            const std::filesystem::path file = source_dir / m.file;
            BOOST_TEST_REQUIRE(std::filesystem::exists(file),
                               m.page << ":" << m.line << ": no file " << m.file);
            const auto regions = regions_of(file);
            const auto region = regions.find(m.name);
            BOOST_TEST_REQUIRE((region != regions.end()),
                               m.page << ":" << m.line << ": " << m.file << " has no region " << m.name);
            BOOST_TEST(joined(m.block) == joined(region->second),
                       m.page << ":" << m.line << " shows other code than " << m.file << "#" << m.name
                              << "; the region is:\n"
                              << joined(region->second));
            shown.emplace(m.file, m.name);
        }
    }
    // Every region of the files here is on some page.
    for (const auto& item : std::filesystem::directory_iterator(source_dir / "test" / "docs")) {
        const std::string file = std::filesystem::relative(item.path(), source_dir).generic_string();
        for (const auto& [name, lines] : regions_of(item.path()))
            BOOST_TEST(shown.contains({file, name}), file << "#" << name << " is shown on no page");
    }
    BOOST_TEST(shown.size() >= 4u);
}
