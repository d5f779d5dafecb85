// Dockerfile parser: bytes -> AST, the same tree BuildKit's parser builds.
//
//   auto ast = dockerfile::parse(bytes, "Dockerfile");   // throws DockerfileError
//   for (const Node& ins : ast.root.children) {
//       ins.keyword();      // "run" (lower case); ins.value is the keyword as written
//       ins.flags;          // {"--mount=type=cache,target=/x"}
//       ins.args();         // argument strings, quotes kept as written ("next" chain)
//       ins.json;           // exec (JSON) form
//       ins.heredocs;       // bodies of <<EOF ... EOF
//       ins.start_line, ins.end_line;   // physical, 1-based, inclusive
//   }
//   std::string d = dump(ast.root);     // BuildKit's Node.Dump() text
//
// Only the parse happens here: unknown instructions are kept (as BuildKit does) and
// rejected when instructions are typed (instructions.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace strata::dockerfile {

struct Heredoc {
    std::string name;    // terminator, quotes removed
    std::string content; // body lines with their line endings, leading tabs kept
    bool expand = true;  // false when any part of the name was quoted
    bool chomp = false;  // <<- : strip leading tabs from body lines (at build time)
    unsigned fd = 0;     // the optional file descriptor before <<
};

struct Node {
    std::string value;          // keyword as written (instruction) or argument text
    std::vector<Node> next;     // argument nodes, in order (BuildKit's Next chain)
    std::vector<Node> children; // root: the instructions; ONBUILD's empty next node: the trigger
    std::vector<std::string> flags; // "--name=value" words, quotes removed
    std::vector<Heredoc> heredocs;
    std::string original; // the joined logical line, continuations removed
    bool json = false;    // arguments came from a JSON array
    int start_line = 0;   // physical lines, 1-based, inclusive
    int end_line = 0;
    int column = 1; // 1-based byte column of the keyword on start_line

    std::string keyword() const; // value in ASCII lower case
    std::vector<std::string> args() const;
};

struct Directive {
    std::string name; // lower case: syntax, escape or check
    std::string value;
    int line = 0;
};

struct Warning {
    std::string message;
    int line = 0;
};

struct ParseResult {
    Node root;
    char escape = '\\';
    std::vector<Directive> directives;
    std::vector<Warning> warnings;
    std::string file;               // as given to parse(), used in errors
    std::vector<std::string> lines; // physical lines without line endings (for errors)

    // The physical line (1-based), or "" when out of range.
    std::string_view line_text(int line) const;
};

inline constexpr std::size_t k_max_line_length = 65535;            // one physical line
inline constexpr std::size_t k_max_instruction_length = 16u << 20; // joined continuations

// Parses a whole Dockerfile. Errors name file:line:column.
ParseResult parse(std::string_view source, const std::string& file = "Dockerfile");

// BuildKit's Node.Dump(): one "(...)" per instruction, joined by '\n', no final newline.
std::string dump(const Node& node);

} // namespace strata::dockerfile
