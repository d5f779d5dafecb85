// Go text/template, as `docker ... --format` takes it, over JSON values.
//
// The syntax is Go's: actions in {{ }}, trim markers {{- -}}, comments
// {{/* */}}, field chains (.Config.Env), variables ($, $x := ..., $x = ...),
// pipelines (a | b), parenthesised pipelines, if / else if / else, range
// (with $i, $v :=, else, break, continue), with, and Go's built-in functions
// (and, or, not, len, index, slice, print, printf, println, eq, ne, lt, le,
// gt, ge, html, urlquery) plus Docker's (json, split, join, title, lower,
// upper, pad, truncate). Values print as Go's fmt prints them (%v): maps
// as map[k:v] with sorted keys, slices as [a b], a missing value as
// <no value>, nested nulls as <nil>.
//
// Formatter renders a list of rows as Docker's formatter does: "table" or
// "table TEMPLATE" (a header row, then every row, through Go's tabwriter with
// Docker's settings), "json" (one JSON object per line) or a raw TEMPLATE
// (one line per row); `\t` and `\n` in the format are a tab and a newline.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli {

using TemplateValue = nlohmann::ordered_json;

class Template {
public:
    // strict_fields: a field a row's object lacks is an error, as for
    // Docker's typed contexts (images, history); otherwise it is
    // <no value>, as for inspect's documents.
    // Throws UsageError("template parsing error: ...") on bad syntax.
    static Template parse(std::string_view text, bool strict_fields = false);

    // Throws Error("template: ...: executing ...") when evaluation fails.
    std::string execute(const TemplateValue& data) const;

    struct Tree;

private:
    std::shared_ptr<const Tree> m_tree;
    bool m_strict = false;
};

// A value as Go's fmt.Sprint prints it ("%v").
std::string go_sprint(const TemplateValue& v);

// Go's text/tabwriter over `text` with flags 0 and padding character ' ':
// cells end at a tab, a column block's width is the widest cell + padding
// (at least minwidth), widths count UTF-8 characters, the last cell of a
// line is not padded, and a line without tabs ends the column blocks.
std::string tabwrite(std::string_view text, std::size_t minwidth = 10, std::size_t padding = 3);

// Docker's formatter for a command's rows.
struct TableFormat {
    std::string default_table; // "table {{.Repository}}\t{{.Tag}}..." (for "" and "table")
    TemplateValue headers;     // field name -> column header ("ID" -> "IMAGE ID")
};

// Renders rows as `format` says (see above) and returns the text.
std::string format_rows(std::string_view format, const TableFormat& table,
                        const std::vector<TemplateValue>& rows);

// `docker network inspect`'s and `docker volume inspect`'s output: each
// document find() returns for a name, through the template when format is
// one (neither "" nor "json"), else all of them as one indented JSON array;
// then "No such WHAT: NAME" on stderr for each name it did not find.
// Returns false when some name was not found.
bool print_inspected(std::string_view format, const std::vector<std::string>& names,
                     std::string_view what,
                     const std::function<std::optional<TemplateValue>(const std::string&)>& find);

} // namespace strata::cli
