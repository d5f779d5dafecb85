#include "builder/dockerfile/parser.hpp"

#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/shell.hpp"
#include "util/text.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <optional>

namespace strata::dockerfile {

std::string Node::keyword() const {
    std::string out = value;
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

std::vector<std::string> Node::args() const {
    std::vector<std::string> out;
    out.reserve(next.size());
    for (const Node& n : next) {
        out.push_back(n.value);
    }
    return out;
}

std::string_view ParseResult::line_text(int line) const {
    if (line < 1 || static_cast<std::size_t>(line) > lines.size()) {
        return {};
    }
    return lines[static_cast<std::size_t>(line) - 1];
}

namespace {

// BuildKit scans flags and HEALTHCHECK's type byte by byte and tests each byte with
// unicode.IsSpace, so the bytes 0x85 and 0xA0 inside a UTF-8 sequence split words and
// non-ASCII flag values get mangled. strata deliberately tests ASCII whitespace only
// there, which keeps non-ASCII flag values intact; no BuildKit test depends on it.
bool is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// [\t\v\f\r ] as in BuildKit's reWhitespace.
bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

std::vector<std::string> split_ws(std::string_view s, std::size_t max_parts = 0) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (true) {
        std::size_t j = i;
        while (j < s.size() && !is_ws(s[j])) {
            ++j;
        }
        if (max_parts != 0 && out.size() + 1 == max_parts) {
            out.emplace_back(s.substr(i));
            return out;
        }
        out.emplace_back(s.substr(i, j - i));
        if (j >= s.size()) {
            return out;
        }
        while (j < s.size() && is_ws(s[j])) {
            ++j;
        }
        i = j;
    }
}

struct ArgError {
    std::string message;
};

Node leaf(std::string v) {
    Node n;
    n.value = std::move(v);
    return n;
}

// BuildKit's parseWords (ENV, LABEL, ARG): quotes and escapes are kept.
std::vector<std::string> parse_words(std::string_view rest, char esc) {
    enum { in_spaces, in_word, in_quote } phase = in_spaces;
    std::vector<std::string> words;
    std::string word;
    char32_t quote = 0;
    bool blank_ok = false;
    std::size_t pos = 0;
    while (true) {
        if (pos >= rest.size()) {
            if (phase != in_spaces && (blank_ok || !word.empty())) {
                words.push_back(std::move(word));
            }
            break;
        }
        text::Rune r = text::decode(rest, pos);
        char32_t ch = r.valid ? r.cp : 0xFFFD;
        std::string_view raw = rest.substr(pos, r.len);
        std::size_t width = r.len;
        if (phase == in_spaces) {
            if (text::is_space(ch)) {
                pos += width;
                continue;
            }
            phase = in_word;
        }
        if (phase == in_word) {
            if (text::is_space(ch)) {
                phase = in_spaces;
                if (blank_ok || !word.empty()) {
                    words.push_back(std::move(word));
                }
                word.clear();
                blank_ok = false;
                pos += width;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = in_quote;
            }
            if (ch == static_cast<unsigned char>(esc)) {
                if (pos + width == rest.size()) {
                    pos += width;
                    continue; // an escape at the end of the text is dropped
                }
                word += raw;
                pos += width;
                r = text::decode(rest, pos);
                raw = rest.substr(pos, r.len);
                width = r.len;
            }
            word += raw;
            pos += width;
            continue;
        }
        // in_quote
        if (ch == quote) {
            phase = in_word;
        }
        if (ch == static_cast<unsigned char>(esc) && quote != '\'') {
            if (pos + width == rest.size()) {
                phase = in_word;
                pos += width;
                continue;
            }
            word += raw;
            pos += width;
            r = text::decode(rest, pos);
            raw = rest.substr(pos, r.len);
            width = r.len;
        }
        word += raw;
        pos += width;
    }
    return words;
}

// JSON form: nullopt when the text is not a JSON array (fall back to shell form).
std::optional<std::vector<Node>> parse_json(std::string_view rest) {
    rest = text::trim_left_space(rest);
    if (rest.empty() || rest[0] != '[') {
        return std::nullopt;
    }
    nlohmann::json j = nlohmann::json::parse(rest.begin(), rest.end(), nullptr, false);
    if (j.is_discarded() || !j.is_array()) {
        return std::nullopt;
    }
    std::vector<Node> out;
    for (const auto& e : j) {
        if (!e.is_string()) {
            throw ArgError{"dockerfile: not a JSON array of strings: " + std::string(rest)};
        }
        out.push_back(leaf(e.get<std::string>()));
    }
    return out;
}

struct Args {
    std::vector<Node> next;
    bool json = false;
};

Args parse_strings_ws(std::string_view rest) {
    Args a;
    if (rest.empty()) {
        return a;
    }
    for (auto& s : split_ws(rest)) {
        a.next.push_back(leaf(std::move(s)));
    }
    return a;
}

Args parse_maybe_json(std::string_view rest) {
    Args a;
    if (rest.empty()) {
        return a;
    }
    if (auto j = parse_json(rest)) {
        a.next = std::move(*j);
        a.json = true;
        return a;
    }
    a.next.push_back(leaf(std::string(rest)));
    return a;
}

Args parse_maybe_json_to_list(std::string_view rest) {
    if (auto j = parse_json(rest)) {
        Args a;
        a.next = std::move(*j);
        a.json = true;
        return a;
    }
    return parse_strings_ws(rest);
}

Args parse_string(std::string_view rest) {
    Args a;
    if (!rest.empty()) {
        a.next.push_back(leaf(std::string(rest)));
    }
    return a;
}

Args parse_name_val(std::string_view rest, const char* key, char esc) {
    Args a;
    const std::vector<std::string> words = parse_words(rest, esc);
    if (words.empty()) {
        return a;
    }
    if (words[0].find('=') == std::string::npos) {
        auto parts = split_ws(rest, 2);
        if (parts.size() < 2) {
            throw ArgError{std::string(key) + " must have two arguments"};
        }
        a.next.push_back(leaf(parts[0]));
        a.next.push_back(leaf(parts[1]));
        a.next.push_back(leaf(""));
        return a;
    }
    for (const auto& w : words) {
        const auto eq = w.find('=');
        if (eq == std::string::npos) {
            throw ArgError{
                fmt::format("Syntax error - can't find = in {}. Must be of the form: name=value",
                            text::go_quote(w))};
        }
        a.next.push_back(leaf(w.substr(0, eq)));
        a.next.push_back(leaf(w.substr(eq + 1)));
        a.next.push_back(leaf("="));
    }
    return a;
}

Args parse_name_or_name_val(std::string_view rest, char esc) {
    Args a;
    for (auto& w : parse_words(rest, esc)) {
        a.next.push_back(leaf(std::move(w)));
    }
    return a;
}

Args parse_health(std::string_view rest) {
    Args a;
    std::size_t sep = 0;
    while (sep < rest.size() && !is_ascii_space(rest[sep])) {
        ++sep;
    }
    std::size_t nxt = sep;
    while (nxt < rest.size() && is_ascii_space(rest[nxt])) {
        ++nxt;
    }
    if (sep == 0) {
        return a;
    }
    Args cmd = parse_maybe_json(rest.substr(nxt));
    a.next.push_back(leaf(std::string(rest.substr(0, sep))));
    for (auto& n : cmd.next) {
        a.next.push_back(std::move(n));
    }
    a.json = cmd.json;
    return a;
}

// BuildKit's extractBuilderFlags.
std::pair<std::string_view, std::vector<std::string>> extract_flags(std::string_view line,
                                                                    char esc) {
    enum { in_spaces, in_word, in_quote } phase = in_spaces;
    std::vector<std::string> words;
    std::string word;
    char quote = 0;
    bool blank_ok = false;
    for (std::size_t pos = 0; pos <= line.size(); ++pos) {
        char ch = pos < line.size() ? line[pos] : '\0';
        if (phase == in_spaces) {
            if (pos == line.size()) {
                break;
            }
            if (is_ascii_space(ch)) {
                continue;
            }
            if (ch != '-' || pos + 1 == line.size() || line[pos + 1] != '-') {
                return {line.substr(pos), words};
            }
            phase = in_word;
        }
        if (pos == line.size()) {
            if (word != "--" && (blank_ok || !word.empty())) {
                words.push_back(word);
            }
            break;
        }
        if (phase == in_word) {
            if (is_ascii_space(ch)) {
                phase = in_spaces;
                if (word == "--") {
                    return {line.substr(pos), words};
                }
                if (blank_ok || !word.empty()) {
                    words.push_back(word);
                }
                word.clear();
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = in_quote;
                continue;
            }
            if (ch == esc) {
                if (pos + 1 == line.size()) {
                    continue;
                }
                ++pos;
                ch = line[pos];
            }
            word += ch;
            continue;
        }
        // in_quote
        if (ch == quote) {
            phase = in_word;
            continue;
        }
        if (ch == esc) {
            if (pos + 1 == line.size()) {
                phase = in_word;
                continue;
            }
            ++pos;
            ch = line[pos];
        }
        word += ch;
    }
    return {std::string_view(), words};
}

Node node_from_line(std::string_view line, char esc) {
    const std::string_view trimmed = text::trim_space(line);
    std::size_t k = 0;
    while (k < trimmed.size() && !is_ws(trimmed[k])) {
        ++k;
    }
    Node node;
    node.value = std::string(trimmed.substr(0, k));
    node.original = std::string(line);
    std::string_view rest;
    if (k < trimmed.size()) {
        std::size_t r = k;
        while (r < trimmed.size() && is_ws(trimmed[r])) {
            ++r;
        }
        auto [args, flags] = extract_flags(trimmed.substr(r), esc);
        rest = text::trim_space(args);
        node.flags = std::move(flags);
    }
    const std::string kw = node.keyword();
    Args a;
    if (kw == "add" || kw == "copy" || kw == "volume") {
        a = parse_maybe_json_to_list(rest);
    } else if (kw == "run" || kw == "cmd" || kw == "entrypoint" || kw == "shell") {
        a = parse_maybe_json(rest);
    } else if (kw == "from" || kw == "expose") {
        a = parse_strings_ws(rest);
    } else if (kw == "maintainer" || kw == "user" || kw == "workdir" || kw == "stopsignal") {
        a = parse_string(rest);
    } else if (kw == "env") {
        a = parse_name_val(rest, "ENV", esc);
    } else if (kw == "label") {
        a = parse_name_val(rest, "LABEL", esc);
    } else if (kw == "arg") {
        a = parse_name_or_name_val(rest, esc);
    } else if (kw == "healthcheck") {
        a = parse_health(rest);
    } else if (kw == "onbuild") {
        if (!rest.empty()) {
            Node wrapper;
            wrapper.children.push_back(node_from_line(rest, esc));
            a.next.push_back(std::move(wrapper));
        }
    } else {
        a.next.push_back(Node{}); // unknown instruction: kept, rejected later
    }
    node.next = std::move(a.next);
    node.json = a.json;
    return node;
}

bool can_contain_heredoc(const Node& n) {
    const Node* node = &n;
    if (node->keyword() == "onbuild" && !node->next.empty() && !node->next[0].children.empty()) {
        node = &node->next[0].children[0];
    }
    const std::string kw = node->keyword();
    if (kw != "run" && kw != "copy" && kw != "add") {
        return false;
    }
    return !node->json;
}

// BuildKit's ParseHeredoc for one shell word.
std::optional<Heredoc> parse_heredoc_word(const std::string& src) {
    // ^(\d*)<<(-?)\s*([^<]*)$
    std::size_t i = 0;
    while (i < src.size() && src[i] >= '0' && src[i] <= '9') {
        ++i;
    }
    const std::size_t digits = i;
    if (src.compare(i, 2, "<<") != 0) {
        return std::nullopt;
    }
    i += 2;
    bool chomp = false;
    if (i < src.size() && src[i] == '-') {
        chomp = true;
        ++i;
    }
    while (i < src.size() && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\f' ||
                              src[i] == '\r')) {
        ++i;
    }
    const std::string rest = src.substr(i);
    if (rest.find('<') != std::string::npos || rest.empty()) {
        return std::nullopt;
    }
    unsigned fd = 0;
    for (std::size_t d = 0; d < digits && d < 9; ++d) {
        fd = fd * 10 + static_cast<unsigned>(src[d] - '0');
    }
    ShellExpander::Options o;
    o.skip_unset = true;
    const EnvLookup none;
    auto words = ShellExpander(o).words(rest, none);
    if (words.size() != 1) {
        return std::nullopt;
    }
    o.raw_quotes = true;
    auto raw = ShellExpander(o).words(rest, none);
    if (raw.size() != words.size()) {
        throw ExpansionError("internal lexing of heredoc produced inconsistent results: " + rest);
    }
    auto quotes = [](const std::string& s) {
        std::size_t n = 0;
        for (char c : s) {
            n += (c == '\'' || c == '"') ? 1 : 0;
        }
        return n;
    };
    Heredoc h;
    h.name = words[0];
    h.expand = quotes(words[0]) == quotes(raw[0]);
    h.chomp = chomp;
    h.fd = fd;
    return h;
}

std::vector<Heredoc> heredocs_from_line(std::string_view line) {
    ShellExpander::Options o;
    o.raw_quotes = true;
    o.raw_escapes = true;
    o.skip_unset = true;
    std::vector<std::string> words;
    try {
        words = ShellExpander(o).words(line, EnvLookup());
    } catch (const ExpansionError&) {
        return {}; // BuildKit ignores a failed line-level split: no heredocs
    }
    std::vector<Heredoc> out;
    for (const auto& w : words) {
        if (auto h = parse_heredoc_word(w)) {
            out.push_back(std::move(*h));
        }
    }
    return out;
}

std::string_view trim_newline(std::string_view s) {
    while (!s.empty() && (s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_comment(std::string_view line) {
    line = text::trim_left_space(line);
    return !line.empty() && line[0] == '#';
}

// Parser directive line: ^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$
std::optional<std::pair<std::string, std::string>> match_directive(std::string_view line) {
    if (line.empty() || line[0] != '#') {
        return std::nullopt;
    }
    std::size_t i = 1;
    auto blank = [&](char c) { return c == ' ' || c == '\t'; };
    while (i < line.size() && blank(line[i])) {
        ++i;
    }
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (i >= line.size() || !alpha(line[i])) {
        return std::nullopt;
    }
    const std::size_t ns = i;
    while (i < line.size() && (alpha(line[i]) || (line[i] >= '0' && line[i] <= '9'))) {
        ++i;
    }
    std::string name(line.substr(ns, i - ns));
    while (i < line.size() && blank(line[i])) {
        ++i;
    }
    if (i >= line.size() || line[i] != '=') {
        return std::nullopt;
    }
    ++i;
    while (i < line.size() && blank(line[i])) {
        ++i;
    }
    std::size_t end = line.size();
    while (end > i && blank(line[end - 1])) {
        --end;
    }
    if (end <= i) {
        return std::nullopt;
    }
    for (char& c : name) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return std::make_pair(name, std::string(line.substr(i, end - i)));
}

class Parser {
public:
    Parser(std::string_view src, const std::string& file) : m_src(src) { m_res.file = file; }

    ParseResult run() {
        split_lines();
        validate();
        for (const auto& l : m_phys) {
            m_res.lines.emplace_back(trim_newline(l));
        }
        std::size_t i = 0;
        while (i < m_phys.size()) {
            parse_instruction(i);
        }
        if (m_res.root.children.empty()) {
            fail(1, 1, "file with no instructions", "");
        }
        m_res.root.start_line = m_res.root.children.front().start_line;
        m_res.root.end_line = m_res.root.children.back().end_line;
        return std::move(m_res);
    }

private:
    [[noreturn]] void fail(int line, int column, const std::string& msg, std::string_view text) {
        throw DockerfileError(m_res.file, line, column, msg, std::string(text));
    }

    void split_lines() {
        std::string_view s = m_src;
        if (s.starts_with("\xEF\xBB\xBF")) {
            s.remove_prefix(3);
            m_bom = 3;
        }
        std::size_t b = 0;
        while (b < s.size()) {
            std::size_t e = s.find('\n', b);
            e = e == std::string_view::npos ? s.size() : e + 1;
            m_phys.push_back(s.substr(b, e - b));
            b = e;
        }
    }

    void validate() {
        for (std::size_t n = 0; n < m_phys.size(); ++n) {
            std::string_view l = trim_newline(m_phys[n]);
            const int line = static_cast<int>(n + 1);
            if (l.size() > k_max_line_length) {
                fail(line, static_cast<int>(k_max_line_length + 1),
                     fmt::format("dockerfile line greater than max allowed size of {}",
                                 k_max_line_length),
                     l.substr(0, 80));
            }
            // Bytes that are not UTF-8 pass, as in BuildKit (a Latin-1
            // comment, a RUN that echoes one); the shell expansion reads each
            // as U+FFFD, as Go's does. A NUL byte is refused.
            const std::size_t bad = m_phys[n].find('\0');
            if (bad != std::string_view::npos) {
                std::string shown;
                for (char c : l.substr(0, 120)) {
                    const auto u = static_cast<unsigned char>(c);
                    shown += (u == 0 || u >= 0x80) ? '?' : c;
                }
                fail(line, static_cast<int>(bad + 1), "NUL byte in Dockerfile", shown);
            }
        }
    }

    // Directive scanning runs on every line until the first non-directive line.
    void directive(std::string_view line, int lineno) {
        if (m_directives_done) {
            return;
        }
        auto d = match_directive(line);
        if (!d || (d->first != "syntax" && d->first != "escape" && d->first != "check")) {
            m_directives_done = true;
            return;
        }
        for (const auto& seen : m_res.directives) {
            if (seen.name == d->first) {
                fail(lineno, 1, fmt::format("only one {} parser directive can be used", d->first),
                     line);
            }
        }
        if (d->first == "escape") {
            if (d->second != "`" && d->second != "\\") {
                fail(lineno, 1,
                     fmt::format("invalid escape token '{}' does not match ` or \\", d->second),
                     line);
            }
            m_res.escape = d->second[0];
        }
        m_res.directives.push_back({d->first, d->second, lineno});
    }

    // Returns the line without the continuation escape and whether it continues.
    std::pair<std::string_view, bool> continuation(std::string_view line) const {
        std::string_view t = line;
        while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) {
            t.remove_suffix(1);
        }
        if (!t.empty() && t.back() == m_res.escape &&
            (t.size() == 1 || t[t.size() - 2] != m_res.escape)) {
            return {t.substr(0, t.size() - 1), true};
        }
        return {line, false};
    }

    void parse_instruction(std::size_t& i) {
        std::string_view raw = trim_newline(m_phys[i]);
        const int start = static_cast<int>(i + 1);
        ++i;
        std::string_view lead = text::trim_left_space(raw);
        directive(lead, start);
        if (is_comment(lead)) {
            return;
        }
        const int column = static_cast<int>(raw.size() - lead.size()) + 1 +
                           (start == 1 ? static_cast<int>(m_bom) : 0);
        auto [first, cont] = continuation(lead);
        if (!cont && first.empty()) {
            return;
        }
        std::string line(first);
        bool empty_cont = false;
        while (cont && i < m_phys.size()) {
            std::string_view l = trim_newline(m_phys[i]);
            ++i;
            if (is_comment(l)) {
                continue;
            }
            if (text::trim_left_space(l).empty()) {
                empty_cont = true;
                continue;
            }
            auto [part, more] = continuation(l);
            line += part;
            cont = more;
            if (line.size() > k_max_instruction_length) {
                fail(start, column,
                     fmt::format("instruction is longer than {} bytes after joining its "
                                 "continuation lines",
                                 k_max_instruction_length),
                     lead);
            }
        }
        if (empty_cont) {
            m_res.warnings.push_back(
                {"Empty continuation line found in instruction; empty continuation lines will "
                 "become errors in a future release",
                 start});
        }
        if (text::trim_space(line).empty()) {
            return;
        }
        Node node;
        try {
            node = node_from_line(line, m_res.escape);
        } catch (const ArgError& e) {
            fail(start, column, e.message, lead);
        }
        node.column = column;
        node.start_line = start;
        if (can_contain_heredoc(node) && line.find("<<") != std::string::npos) {
            std::vector<Heredoc> docs;
            try {
                docs = heredocs_from_line(line);
            } catch (const ExpansionError& e) {
                fail(start, column, std::string("invalid heredoc: ") + e.what(), lead);
            }
            for (auto& h : docs) {
                bool terminated = false;
                while (i < m_phys.size()) {
                    std::string_view body = m_phys[i];
                    ++i;
                    std::string_view term = trim_newline(body);
                    if (h.chomp) {
                        while (!term.empty() && term.front() == '\t') {
                            term.remove_prefix(1);
                        }
                    }
                    if (term == h.name) {
                        terminated = true;
                        break;
                    }
                    h.content += body;
                }
                if (!terminated) {
                    fail(start, column, fmt::format("unterminated heredoc {}", h.name), lead);
                }
                node.heredocs.push_back(std::move(h));
            }
        }
        node.end_line = static_cast<int>(i);
        m_res.root.children.push_back(std::move(node));
    }

    std::string_view m_src;
    std::size_t m_bom = 0;
    std::vector<std::string_view> m_phys;
    bool m_directives_done = false;
    ParseResult m_res;
};

void dump_into(const Node& node, std::string& out) {
    std::string str = node.keyword();
    if (!node.flags.empty()) {
        str += " [";
        for (std::size_t i = 0; i < node.flags.size(); ++i) {
            if (i != 0) {
                str += ' ';
            }
            str += text::go_quote(node.flags[i]);
        }
        str += ']';
    }
    for (const Node& c : node.children) {
        str += '(';
        dump_into(c, str);
        str += ")\n";
    }
    for (const Node& n : node.next) {
        str += ' ';
        if (!n.children.empty()) {
            dump_into(n, str);
        } else {
            str += text::go_quote(n.value);
        }
    }
    out += text::trim_space(str);
}

} // namespace

ParseResult parse(std::string_view source, const std::string& file) {
    return Parser(source, file).run();
}

std::string dump(const Node& node) {
    std::string out;
    dump_into(node, out);
    return out;
}

} // namespace strata::dockerfile
