// Go text/template over JSON values: a lexer and a recursive-descent parser
// into a small tree, and an evaluator that follows text/template's exec.go
// (truth, variables and their scopes, range over slices and sorted map
// keys, and/or short-circuit, missing values).
#include "cli/template.hpp"

#include "util/error.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cwctype>
#include <functional>
#include <iostream>
#include <locale.h>
#include <map>
#include <optional>

namespace strata::cli {

namespace {

using Value = TemplateValue;

// ------------------------------------------------------------------ tree

struct Pipeline;

struct Arg {
    enum class Kind { field, dot, var, literal, ident, pipe } kind = Kind::dot;
    std::string name;                // variable or function name
    std::vector<std::string> fields; // .A.B after the operand
    Value literal;
    std::shared_ptr<Pipeline> sub;
    std::string text; // as written, for error messages
};

struct Command {
    std::vector<Arg> args;
};

struct Pipeline {
    std::vector<std::string> vars; // declared or assigned variables
    bool declare = false;          // := (else =)
    std::vector<Command> cmds;
    int line = 1;
};

struct Node;
using List = std::vector<Node>;

struct Node {
    enum class Kind { text, action, if_, range, with, break_, continue_ } kind = Kind::text;
    std::string text;
    std::shared_ptr<Pipeline> pipe;
    std::shared_ptr<List> body;
    std::shared_ptr<List> else_body;
    int line = 1;
};

} // namespace

struct Template::Tree {
    List root;
};

namespace {

[[noreturn]] void parse_fail(int line, const std::string& msg) {
    throw UsageError("template parsing error: template: :" + std::to_string(line) + ": " + msg);
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
}

// ------------------------------------------------------------------ lexer

struct Token {
    enum class Kind {
        field,   // .Name
        dot,     // .
        var,     // $ or $name
        string,  // "..." or `...` (value unquoted)
        number,  // 12, -3, 1.5, 0x1f
        charlit, // 'a'
        ident,   // name (function or keyword)
        pipe,    // |
        lparen,
        rparen,
        declare, // :=
        assign,  // =
        comma,
        end // end of action
    } kind;
    std::string text;
    bool spaced = false; // preceded by space
    int line = 1;
};

std::string unquote_go(std::string_view s, int line) {
    // s excludes the quotes.
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c != '\\') {
            out += c;
            continue;
        }
        if (++i >= s.size()) {
            parse_fail(line, "unterminated quoted string");
        }
        switch (s[i]) {
        case 'n':
            out += '\n';
            break;
        case 't':
            out += '\t';
            break;
        case 'r':
            out += '\r';
            break;
        case 'a':
            out += '\a';
            break;
        case 'b':
            out += '\b';
            break;
        case 'f':
            out += '\f';
            break;
        case 'v':
            out += '\v';
            break;
        case '\\':
            out += '\\';
            break;
        case '"':
            out += '"';
            break;
        case '\'':
            out += '\'';
            break;
        case 'x':
        case 'u':
        case 'U': {
            std::size_t n = s[i] == 'x' ? 2 : s[i] == 'u' ? 4 : 8;
            if (i + n >= s.size()) {
                parse_fail(line, "bad escape in quoted string");
            }
            unsigned long cp = 0;
            auto r = std::from_chars(s.data() + i + 1, s.data() + i + 1 + n, cp, 16);
            if (r.ec != std::errc{} || r.ptr != s.data() + i + 1 + n) {
                parse_fail(line, "bad escape in quoted string");
            }
            i += n;
            if (n == 2) {
                out += static_cast<char>(cp);
            } else if (cp < 0x80) {
                out += static_cast<char>(cp);
            } else if (cp < 0x800) {
                out += static_cast<char>(0xC0 | (cp >> 6));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out += static_cast<char>(0xE0 | (cp >> 12));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
                out += static_cast<char>(0xF0 | (cp >> 18));
                out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                out += static_cast<char>(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            parse_fail(line, std::string("unknown escape sequence \\") + s[i]);
        }
    }
    return out;
}

// Splits the template into text and actions, then lexes each action.
class Lexer {
public:
    explicit Lexer(std::string_view src) : m_src(src) {}

    struct Piece {
        bool action = false;
        std::string text;          // text pieces
        std::vector<Token> tokens; // action pieces
        int line = 1;
    };

    std::vector<Piece> run() {
        std::vector<Piece> out;
        std::size_t pos = 0;
        bool trim_next = false;
        while (pos <= m_src.size()) {
            std::size_t open = m_src.find("{{", pos);
            std::string text(m_src.substr(
                pos, open == std::string_view::npos ? std::string_view::npos : open - pos));
            bool trim_left = open != std::string_view::npos && open + 3 < m_src.size() &&
                             m_src[open + 2] == '-' && is_space(m_src[open + 3]);
            if (trim_next) {
                std::size_t k = 0;
                while (k < text.size() && is_space(text[k])) {
                    ++k;
                }
                text.erase(0, k);
            }
            if (trim_left) {
                while (!text.empty() && is_space(text.back())) {
                    text.pop_back();
                }
            }
            if (!text.empty()) {
                out.push_back({false, text, {}, m_line});
            }
            count_lines(pos, open == std::string_view::npos ? m_src.size() : open);
            if (open == std::string_view::npos) {
                break;
            }
            pos = open + 2 + (trim_left ? 2 : 0);
            Piece p;
            p.action = true;
            p.line = m_line;
            // Comment?
            std::size_t q = pos;
            while (q < m_src.size() && is_space(m_src[q]) && trim_left) {
                ++q;
            }
            if (m_src.substr(q, 2) == "/*") {
                std::size_t close = m_src.find("*/", q + 2);
                if (close == std::string_view::npos) {
                    parse_fail(m_line, "unclosed comment");
                }
                std::size_t after = close + 2;
                bool trim_right = false;
                if (m_src.substr(after, 4) == " -}}") {
                    trim_right = true;
                    after += 4;
                } else if (m_src.substr(after, 2) == "}}") {
                    after += 2;
                } else {
                    parse_fail(m_line, "comment ends before closing delimiter");
                }
                count_lines(pos, after);
                pos = after;
                trim_next = trim_right;
                continue;
            }
            pos = lex_action(pos, p.tokens, trim_next);
            out.push_back(std::move(p));
        }
        return out;
    }

private:
    void count_lines(std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to && i < m_src.size(); ++i) {
            if (m_src[i] == '\n') {
                ++m_line;
            }
        }
    }

    // Lexes from pos to the closing }}; returns the position after it.
    std::size_t lex_action(std::size_t pos, std::vector<Token>& toks, bool& trim_next) {
        bool spaced = true;
        int parens = 0;
        for (;;) {
            if (pos >= m_src.size()) {
                parse_fail(m_line, "unclosed action");
            }
            char c = m_src[pos];
            if (is_space(c)) {
                // " -}}" closes with trimming.
                if (m_src.substr(pos + 1, 3) == "-}}") {
                    count_lines(pos, pos + 1);
                    toks.push_back({Token::Kind::end, "", true, m_line});
                    trim_next = true;
                    return pos + 4;
                }
                if (c == '\n') {
                    ++m_line;
                }
                ++pos;
                spaced = true;
                continue;
            }
            if (m_src.substr(pos, 2) == "}}") {
                if (parens > 0) {
                    parse_fail(m_line, "unclosed left paren");
                }
                toks.push_back({Token::Kind::end, "", spaced, m_line});
                trim_next = false;
                return pos + 2;
            }
            Token t{Token::Kind::end, "", spaced, m_line};
            spaced = false;
            if (c == '|') {
                t.kind = Token::Kind::pipe;
                ++pos;
            } else if (c == '(') {
                t.kind = Token::Kind::lparen;
                ++parens;
                ++pos;
            } else if (c == ')') {
                if (--parens < 0) {
                    parse_fail(m_line, "unexpected right paren");
                }
                t.kind = Token::Kind::rparen;
                ++pos;
            } else if (c == ',') {
                t.kind = Token::Kind::comma;
                ++pos;
            } else if (c == ':' && m_src.substr(pos, 2) == ":=") {
                t.kind = Token::Kind::declare;
                pos += 2;
            } else if (c == '=') {
                t.kind = Token::Kind::assign;
                ++pos;
            } else if (c == '"') {
                std::size_t e = pos + 1;
                while (e < m_src.size() && m_src[e] != '"') {
                    if (m_src[e] == '\\') {
                        ++e;
                    }
                    if (e < m_src.size() && m_src[e] == '\n') {
                        parse_fail(m_line, "unterminated quoted string");
                    }
                    ++e;
                }
                if (e >= m_src.size()) {
                    parse_fail(m_line, "unterminated quoted string");
                }
                t.kind = Token::Kind::string;
                t.text = unquote_go(m_src.substr(pos + 1, e - pos - 1), m_line);
                pos = e + 1;
            } else if (c == '`') {
                std::size_t e = m_src.find('`', pos + 1);
                if (e == std::string_view::npos) {
                    parse_fail(m_line, "unterminated raw quoted string");
                }
                t.kind = Token::Kind::string;
                t.text = std::string(m_src.substr(pos + 1, e - pos - 1));
                count_lines(pos, e);
                pos = e + 1;
            } else if (c == '\'') {
                std::size_t e = pos + 1;
                while (e < m_src.size() && m_src[e] != '\'') {
                    if (m_src[e] == '\\') {
                        ++e;
                    }
                    ++e;
                }
                if (e >= m_src.size()) {
                    parse_fail(m_line, "unterminated character constant");
                }
                std::string s = unquote_go(m_src.substr(pos + 1, e - pos - 1), m_line);
                t.kind = Token::Kind::charlit;
                t.text = s;
                pos = e + 1;
            } else if (c == '$') {
                std::size_t e = pos + 1;
                while (e < m_src.size() && is_alnum(m_src[e])) {
                    ++e;
                }
                t.kind = Token::Kind::var;
                t.text = std::string(m_src.substr(pos, e - pos));
                pos = e;
            } else if (c == '.' && (pos + 1 >= m_src.size() || !is_alnum(m_src[pos + 1]) ||
                                    (m_src[pos + 1] >= '0' && m_src[pos + 1] <= '9'))) {
                if (pos + 1 < m_src.size() && m_src[pos + 1] >= '0' && m_src[pos + 1] <= '9') {
                    pos = lex_number(pos, t);
                } else {
                    t.kind = Token::Kind::dot;
                    ++pos;
                }
            } else if (c == '.') {
                std::size_t e = pos + 1;
                while (e < m_src.size() && is_alnum(m_src[e])) {
                    ++e;
                }
                t.kind = Token::Kind::field;
                t.text = std::string(m_src.substr(pos + 1, e - pos - 1));
                pos = e;
            } else if ((c >= '0' && c <= '9') ||
                       ((c == '-' || c == '+') && pos + 1 < m_src.size() &&
                        ((m_src[pos + 1] >= '0' && m_src[pos + 1] <= '9') ||
                         m_src[pos + 1] == '.'))) {
                pos = lex_number(pos, t);
            } else if (is_alnum(c)) {
                std::size_t e = pos;
                while (e < m_src.size() && is_alnum(m_src[e])) {
                    ++e;
                }
                t.kind = Token::Kind::ident;
                t.text = std::string(m_src.substr(pos, e - pos));
                pos = e;
            } else {
                parse_fail(m_line, std::string("unexpected \"") + c + "\" in command");
            }
            toks.push_back(std::move(t));
        }
    }

    std::size_t lex_number(std::size_t pos, Token& t) {
        std::size_t e = pos;
        if (m_src[e] == '+' || m_src[e] == '-') {
            ++e;
        }
        while (e < m_src.size() && (is_alnum(m_src[e]) || m_src[e] == '.' ||
                                    ((m_src[e] == '+' || m_src[e] == '-') &&
                                     (m_src[e - 1] == 'e' || m_src[e - 1] == 'E' ||
                                      m_src[e - 1] == 'p' || m_src[e - 1] == 'P')))) {
            ++e;
        }
        t.kind = Token::Kind::number;
        t.text = std::string(m_src.substr(pos, e - pos));
        return e;
    }

    std::string_view m_src;
    int m_line = 1;
};

Value parse_number(const std::string& text, int line) {
    std::string s;
    for (char c : text) {
        if (c != '_') {
            s += c;
        }
    }
    bool neg = !s.empty() && s[0] == '-';
    std::string body = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? s.substr(1) : s;
    int base = 10;
    std::string digits = body;
    if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
        base = 16, digits = body.substr(2);
    } else if (body.size() > 2 && body[0] == '0' && (body[1] == 'b' || body[1] == 'B')) {
        base = 2, digits = body.substr(2);
    } else if (body.size() > 2 && body[0] == '0' && (body[1] == 'o' || body[1] == 'O')) {
        base = 8, digits = body.substr(2);
    } else if (body.size() > 1 && body[0] == '0' &&
               body.find_first_of(".eE") == std::string::npos) {
        base = 8, digits = body.substr(1);
    }
    std::int64_t iv = 0;
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), iv, base);
    if (r.ec == std::errc{} && r.ptr == digits.data() + digits.size()) {
        return Value(neg ? -iv : iv);
    }
    if (base == 10) {
        double d = 0;
        auto rf = std::from_chars(body.data(), body.data() + body.size(), d);
        if (rf.ec == std::errc{} && rf.ptr == body.data() + body.size()) {
            return Value(neg ? -d : d);
        }
    }
    parse_fail(line, "bad number syntax: \"" + text + "\"");
}

// ------------------------------------------------------------------ parser

class Parser {
public:
    explicit Parser(std::vector<Lexer::Piece> pieces) : m_pieces(std::move(pieces)) {}

    List parse_all() {
        List out;
        std::string stop = parse_list(out);
        if (!stop.empty()) {
            parse_fail(m_last_line, "unexpected {{" + stop + "}}");
        }
        return out;
    }

private:
    // Parses nodes until {{end}} / {{else ...}} or the end; returns the
    // keyword that stopped it ("" at the end of input). For else, the
    // tokens after "else" are left in else_rest_.
    std::string parse_list(List& out) {
        while (m_i < m_pieces.size()) {
            auto& p = m_pieces[m_i++];
            m_last_line = p.line;
            if (!p.action) {
                out.push_back({Node::Kind::text, p.text, nullptr, nullptr, nullptr, p.line});
                continue;
            }
            m_toks = &p.tokens;
            m_t = 0;
            const Token& first = tok();
            if (first.kind == Token::Kind::end) {
                parse_fail(p.line, "missing value for command");
            }
            if (first.kind == Token::Kind::ident) {
                const std::string& k = first.text;
                if (k == "end") {
                    ++m_t;
                    expect_end();
                    return "end";
                }
                if (k == "else") {
                    ++m_t;
                    return "else";
                }
                if (k == "if" || k == "range" || k == "with") {
                    ++m_t;
                    out.push_back(parse_control(k, p.line));
                    continue;
                }
                if (k == "break" || k == "continue") {
                    if (m_range_depth == 0) {
                        parse_fail(p.line, "{{" + k + "}} outside {{range}}");
                    }
                    ++m_t;
                    expect_end();
                    out.push_back({k == "break" ? Node::Kind::break_ : Node::Kind::continue_, "",
                                   nullptr, nullptr, nullptr, p.line});
                    continue;
                }
                if (k == "define" || k == "template" || k == "block") {
                    parse_fail(p.line, "{{" + k + "}} is not supported in --format templates");
                }
            }
            Node n{Node::Kind::action, "", parse_pipeline(true, p.line), nullptr, nullptr, p.line};
            expect_end();
            out.push_back(std::move(n));
        }
        return "";
    }

    Node parse_control(const std::string& kw, int line) {
        Node n;
        n.kind = kw == "if"      ? Node::Kind::if_
                 : kw == "range" ? Node::Kind::range
                                 : Node::Kind::with;
        n.line = line;
        n.pipe = parse_pipeline(true, line, kw == "range");
        expect_end();
        n.body = std::make_shared<List>();
        if (kw == "range") {
            ++m_range_depth;
        }
        std::string stop = parse_list(*n.body);
        if (kw == "range") {
            --m_range_depth;
        }
        if (stop.empty()) {
            parse_fail(m_last_line, "unexpected EOF");
        }
        if (stop == "else") {
            n.else_body = std::make_shared<List>();
            // "else if ..." / "else with ...": a nested control in the else branch
            // that shares this one's {{end}}.
            if (tok().kind == Token::Kind::ident && (tok().text == "if" || tok().text == "with") &&
                kw != "range") {
                std::string k2 = tok().text;
                ++m_t;
                n.else_body->push_back(parse_control(k2, m_last_line));
                return n;
            }
            expect_end();
            std::string stop2 = parse_list(*n.else_body);
            if (stop2 != "end") {
                parse_fail(m_last_line,
                           stop2.empty() ? "unexpected EOF" : "expected end; found {{else}}");
            }
        }
        return n;
    }

    const Token& tok() const { return (*m_toks)[m_t]; }

    void expect_end() {
        if (tok().kind != Token::Kind::end) {
            parse_fail(tok().line, "unexpected \"" + tok().text + "\" in command");
        }
    }

    std::shared_ptr<Pipeline> parse_pipeline(bool top, int line, bool range = false) {
        auto p = std::make_shared<Pipeline>();
        p->line = line;
        // Declarations: $x := / $x = / $i, $v :=
        if (top && tok().kind == Token::Kind::var) {
            std::size_t save = m_t;
            std::vector<std::string> vars{tok().text};
            ++m_t;
            if (range && tok().kind == Token::Kind::comma) {
                ++m_t;
                if (tok().kind == Token::Kind::var) {
                    vars.push_back(tok().text);
                    ++m_t;
                } else {
                    parse_fail(line, "range can only initialize variables");
                }
            }
            if (tok().kind == Token::Kind::declare || tok().kind == Token::Kind::assign) {
                p->declare = tok().kind == Token::Kind::declare;
                p->vars = vars;
                ++m_t;
            } else {
                m_t = save;
            }
        }
        for (;;) {
            Command c;
            while (tok().kind != Token::Kind::end && tok().kind != Token::Kind::pipe &&
                   tok().kind != Token::Kind::rparen) {
                c.args.push_back(parse_operand());
            }
            if (c.args.empty()) {
                parse_fail(line, "missing value for command");
            }
            p->cmds.push_back(std::move(c));
            if (tok().kind == Token::Kind::pipe) {
                ++m_t;
                continue;
            }
            break;
        }
        return p;
    }

    Arg parse_operand() {
        const Token& t = tok();
        Arg a;
        a.text = t.text;
        switch (t.kind) {
        case Token::Kind::field:
            a.kind = Arg::Kind::field;
            a.fields.push_back(t.text);
            a.text = "." + t.text;
            ++m_t;
            break;
        case Token::Kind::dot:
            a.kind = Arg::Kind::dot;
            a.text = ".";
            ++m_t;
            break;
        case Token::Kind::var:
            a.kind = Arg::Kind::var;
            a.name = t.text;
            ++m_t;
            break;
        case Token::Kind::string:
            a.kind = Arg::Kind::literal;
            a.literal = t.text;
            a.text = nlohmann::json(t.text).dump();
            ++m_t;
            break;
        case Token::Kind::charlit: {
            a.kind = Arg::Kind::literal;
            // A rune: its code point.
            const std::string& s = t.text;
            std::int64_t cp = s.empty() ? 0 : static_cast<unsigned char>(s[0]);
            if (cp >= 0xC0 && s.size() > 1) {
                int n = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : 1;
                cp &= (0x3F >> n);
                for (int k = 1; k <= n && k < static_cast<int>(s.size()); ++k) {
                    cp = (cp << 6) | (static_cast<unsigned char>(s[k]) & 0x3F);
                }
            }
            a.literal = cp;
            ++m_t;
            break;
        }
        case Token::Kind::number:
            a.kind = Arg::Kind::literal;
            a.literal = parse_number(t.text, t.line);
            ++m_t;
            break;
        case Token::Kind::ident:
            if (t.text == "true" || t.text == "false") {
                a.kind = Arg::Kind::literal;
                a.literal = t.text == "true";
            } else if (t.text == "nil") {
                a.kind = Arg::Kind::literal;
                a.literal = nullptr;
            } else {
                a.kind = Arg::Kind::ident;
                a.name = t.text;
            }
            ++m_t;
            break;
        case Token::Kind::lparen:
            ++m_t;
            a.kind = Arg::Kind::pipe;
            a.sub = parse_pipeline(false, t.line);
            if (tok().kind != Token::Kind::rparen) {
                parse_fail(t.line, "unclosed left paren");
            }
            ++m_t;
            a.text = "(...)";
            break;
        default:
            parse_fail(t.line, "unexpected \"" + t.text + "\" in operand");
        }
        // Field chain directly after the operand (no space).
        while (tok().kind == Token::Kind::field && !tok().spaced) {
            if (a.kind == Arg::Kind::literal || a.kind == Arg::Kind::ident) {
                parse_fail(tok().line, "unexpected . after term \"" + a.text + "\"");
            }
            a.fields.push_back(tok().text);
            a.text += "." + tok().text;
            ++m_t;
        }
        return a;
    }

    std::vector<Lexer::Piece> m_pieces;
    std::size_t m_i = 0;
    const std::vector<Token>* m_toks = nullptr;
    std::size_t m_t = 0;
    int m_last_line = 1;
    int m_range_depth = 0;
};

// ------------------------------------------------------------------ printing

std::string go_type(const Value& v) {
    switch (v.type()) {
    case Value::value_t::null:
        return "<nil>";
    case Value::value_t::string:
        return "string";
    case Value::value_t::boolean:
        return "bool";
    case Value::value_t::number_integer:
        return "int";
    case Value::value_t::number_unsigned:
        return "uint64";
    case Value::value_t::number_float:
        return "float64";
    case Value::value_t::array:
        return "[]interface {}";
    case Value::value_t::object:
        return "map[string]interface {}";
    default:
        return "interface {}";
    }
}

// strconv.FormatFloat(f, fmt, prec, 64) for 'e', 'f' and 'g'; prec < 0 is
// the shortest representation that reads back the same.
std::string format_float(double f, char fmt, int prec) {
    if (std::isnan(f)) {
        return "NaN";
    }
    if (std::isinf(f)) {
        return f > 0 ? "+Inf" : "-Inf";
    }
    char buf[128];
    if (prec >= 0) {
        char spec[16];
        std::snprintf(spec, sizeof spec, "%%.%d%c", prec, fmt);
        std::snprintf(buf, sizeof buf, spec, f);
        return buf;
    }
    // Shortest digits and exponent.
    auto r = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
    std::string sci(buf, r.ptr);
    bool neg = sci[0] == '-';
    std::string s = neg ? sci.substr(1) : sci;
    std::size_t epos = s.find('e');
    std::string mant = s.substr(0, epos);
    int exp = std::stoi(s.substr(epos + 1));
    std::string digits;
    for (char c : mant) {
        if (c != '.') {
            digits += c;
        }
    }
    while (digits.size() > 1 && digits.back() == '0') {
        digits.pop_back();
    }
    int nd = static_cast<int>(digits.size());
    auto e_form = [&] {
        std::string out = digits.substr(0, 1);
        if (nd > 1) {
            out += "." + digits.substr(1);
        }
        char eb[16];
        std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
        return out + eb;
    };
    auto f_form = [&] {
        std::string out;
        if (exp < 0) {
            out = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
        } else if (exp + 1 >= nd) {
            out = digits + std::string(static_cast<std::size_t>(exp + 1 - nd), '0');
        } else {
            out = digits.substr(0, static_cast<std::size_t>(exp + 1)) + "." +
                  digits.substr(static_cast<std::size_t>(exp + 1));
        }
        return out;
    };
    std::string out;
    if (fmt == 'e') {
        out = e_form();
    } else if (fmt == 'f') {
        out = f_form();
    } else {
        // %v / 'g' with the shortest precision: the exponent form when
        // exp < -4 || exp >= 6 (strconv's rule), so 1e6 prints "1e+06".
        out = (exp < -4 || exp >= 6) ? e_form() : f_form();
    }
    return neg ? "-" + out : out;
}

void sprint_into(std::string& out, const Value& v, bool top) {
    switch (v.type()) {
    case Value::value_t::null:
        out += top ? "<no value>" : "<nil>";
        break;
    case Value::value_t::string:
        out += v.get_ref<const std::string&>();
        break;
    case Value::value_t::boolean:
        out += v.get<bool>() ? "true" : "false";
        break;
    case Value::value_t::number_integer:
        out += std::to_string(v.get<std::int64_t>());
        break;
    case Value::value_t::number_unsigned:
        out += std::to_string(v.get<std::uint64_t>());
        break;
    case Value::value_t::number_float:
        out += format_float(v.get<double>(), 'g', -1);
        break;
    case Value::value_t::array: {
        out += '[';
        bool first = true;
        for (const auto& e : v) {
            if (!first) {
                out += ' ';
            }
            first = false;
            sprint_into(out, e, false);
        }
        out += ']';
        break;
    }
    case Value::value_t::object: {
        std::vector<const std::string*> keys;
        for (const auto& [k, _] : v.items()) {
            keys.push_back(&k);
        }
        std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
        out += "map[";
        bool first = true;
        for (const auto* k : keys) {
            if (!first) {
                out += ' ';
            }
            first = false;
            out += *k;
            out += ':';
            sprint_into(out, v.at(*k), false);
        }
        out += ']';
        break;
    }
    default:
        out += "?";
    }
}

std::string sprint_nested(const Value& v) {
    std::string s;
    sprint_into(s, v, false);
    return s;
}

std::size_t rune_count(std::string_view s) {
    std::size_t n = 0;
    for (char c : s) {
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
            ++n;
        }
    }
    return n;
}

// fmt.Sprintf with Go's verbs over JSON values.
std::string go_sprintf(const std::string& format, const std::vector<Value>& args) {
    std::string out;
    std::size_t ai = 0;
    for (std::size_t i = 0; i < format.size(); ++i) {
        char c = format[i];
        if (c != '%') {
            out += c;
            continue;
        }
        if (++i >= format.size()) {
            out += "%!(NOVERB)";
            break;
        }
        bool minus = false, plus = false, zero = false, space = false, sharp = false;
        for (; i < format.size(); ++i) {
            char f = format[i];
            if (f == '-')
                minus = true;
            else if (f == '+')
                plus = true;
            else if (f == '0')
                zero = true;
            else if (f == ' ')
                space = true;
            else if (f == '#')
                sharp = true;
            else
                break;
        }
        auto read_num = [&](int& dst) {
            bool any = false;
            if (i < format.size() && format[i] == '*') {
                ++i;
                if (ai < args.size() && args[ai].is_number_integer()) {
                    dst = args[ai++].get<int>();
                    if (dst < 0) {
                        minus = true;
                        dst = -dst;
                    }
                    return true;
                }
                ++ai;
                out += "%!(BADWIDTH)";
                return false;
            }
            dst = 0;
            while (i < format.size() && format[i] >= '0' && format[i] <= '9') {
                dst = dst * 10 + (format[i] - '0');
                ++i;
                any = true;
            }
            return any;
        };
        int width = 0, prec = -1;
        bool has_width = read_num(width);
        if (i < format.size() && format[i] == '.') {
            ++i;
            int p = 0;
            read_num(p);
            prec = p;
        }
        if (i >= format.size()) {
            out += "%!(NOVERB)";
            break;
        }
        char verb = format[i];
        if (verb == '%') {
            out += '%';
            continue;
        }
        if (ai >= args.size()) {
            out += std::string("%!") + verb + "(MISSING)";
            continue;
        }
        const Value& v = args[ai++];
        std::string s;
        bool numeric = false;
        auto bad = [&] {
            return std::string("%!") + verb + "(" + go_type(v) + "=" + sprint_nested(v) + ")";
        };
        auto sign = [&](std::string body, bool negative) {
            if (negative)
                return "-" + body;
            if (plus)
                return "+" + body;
            if (space)
                return " " + body;
            return body;
        };
        switch (verb) {
        case 'v':
            s = sprint_nested(v);
            if (v.is_number())
                numeric = true;
            if (v.is_number() && plus && !s.empty() && s[0] != '-')
                s = "+" + s;
            break;
        case 's':
            if (v.is_string()) {
                s = v.get<std::string>();
            } else if (v.is_array() || v.is_object()) {
                s = sprint_nested(v);
            } else {
                s = bad();
            }
            if (prec >= 0 && v.is_string()) {
                std::size_t n = 0, k = 0;
                while (k < s.size() && n < static_cast<std::size_t>(prec)) {
                    ++k;
                    while (k < s.size() && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80)
                        ++k;
                    ++n;
                }
                s = s.substr(0, k);
            }
            break;
        case 'q':
            if (v.is_string())
                s = text::go_quote(v.get<std::string>());
            else if (v.is_number_integer())
                s = "'" + std::string(1, static_cast<char>(v.get<std::int64_t>())) + "'";
            else
                s = bad();
            break;
        case 'd':
        case 'x':
        case 'X':
        case 'o':
        case 'b':
            if (v.is_number_integer()) {
                std::int64_t n = v.get<std::int64_t>();
                bool neg = n < 0;
                std::uint64_t u =
                    neg ? static_cast<std::uint64_t>(-(n + 1)) + 1 : static_cast<std::uint64_t>(n);
                int base = verb == 'd' ? 10 : verb == 'o' ? 8 : verb == 'b' ? 2 : 16;
                char buf[80];
                auto r = std::to_chars(buf, buf + sizeof buf, u, base);
                std::string body(buf, r.ptr);
                if (verb == 'X')
                    std::transform(body.begin(), body.end(), body.begin(), ::toupper);
                if (prec >= 0 && body.size() < static_cast<std::size_t>(prec))
                    body.insert(0, prec - body.size(), '0');
                if (sharp && base == 16)
                    body = (verb == 'X' ? "0X" : "0x") + body;
                if (sharp && base == 8)
                    body = "0" + body;
                s = sign(body, neg);
                numeric = true;
            } else if (v.is_string() && (verb == 'x' || verb == 'X')) {
                const std::string& str = v.get_ref<const std::string&>();
                for (unsigned char ch : str) {
                    char b[4];
                    std::snprintf(b, sizeof b, verb == 'x' ? "%02x" : "%02X", ch);
                    s += b;
                }
            } else {
                s = bad();
            }
            break;
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
            if (v.is_number_float()) {
                double d = v.get<double>();
                char fv = static_cast<char>(std::tolower(verb));
                int p = prec >= 0 ? prec : (fv == 'g' ? -1 : 6);
                s = format_float(std::fabs(d), fv == 'g' && p < 0 ? 'g' : fv, p);
                if (verb == 'E' || verb == 'G')
                    std::transform(s.begin(), s.end(), s.begin(), ::toupper);
                s = sign(s, std::signbit(d));
                numeric = true;
            } else {
                s = bad();
            }
            break;
        case 't':
            s = v.is_boolean() ? (v.get<bool>() ? "true" : "false") : bad();
            break;
        case 'c':
            if (v.is_number_integer()) {
                auto cp = static_cast<std::uint32_t>(v.get<std::int64_t>());
                std::string b;
                if (cp < 0x80)
                    b += static_cast<char>(cp);
                else if (cp < 0x800) {
                    b += static_cast<char>(0xC0 | (cp >> 6));
                    b += static_cast<char>(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    b += static_cast<char>(0xE0 | (cp >> 12));
                    b += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                    b += static_cast<char>(0x80 | (cp & 0x3F));
                } else {
                    b += static_cast<char>(0xF0 | (cp >> 18));
                    b += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
                    b += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                    b += static_cast<char>(0x80 | (cp & 0x3F));
                }
                s = b;
            } else {
                s = bad();
            }
            break;
        default:
            s = std::string("%!") + verb + "(" + go_type(v) + "=" + sprint_nested(v) + ")";
        }
        std::size_t w = rune_count(s);
        if (has_width && w < static_cast<std::size_t>(width)) {
            std::size_t pad = static_cast<std::size_t>(width) - w;
            if (minus) {
                s.append(pad, ' ');
            } else if (zero && numeric) {
                std::size_t at =
                    (!s.empty() && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) ? 1 : 0;
                s.insert(at, pad, '0');
            } else {
                s.insert(0, pad, ' ');
            }
        }
        out += s;
    }
    if (ai < args.size()) {
        out += "%!(EXTRA ";
        for (std::size_t k = ai; k < args.size(); ++k) {
            if (k > ai)
                out += ", ";
            out += go_type(args[k]) + "=" + sprint_nested(args[k]);
        }
        out += ")";
    }
    return out;
}

// ------------------------------------------------------------------ evaluation

struct ExecError {
    std::string msg;
};

[[noreturn]] void exec_fail(const std::string& msg) {
    throw ExecError{msg};
}

bool truth(const Value& v) {
    switch (v.type()) {
    case Value::value_t::null:
        return false;
    case Value::value_t::boolean:
        return v.get<bool>();
    case Value::value_t::string:
        return !v.get_ref<const std::string&>().empty();
    case Value::value_t::number_integer:
        return v.get<std::int64_t>() != 0;
    case Value::value_t::number_unsigned:
        return v.get<std::uint64_t>() != 0;
    case Value::value_t::number_float:
        return v.get<double>() != 0;
    case Value::value_t::array:
    case Value::value_t::object:
        return !v.empty();
    default:
        return false;
    }
}

const std::string& need_string(const Value& v, const char* fn) {
    if (!v.is_string()) {
        exec_fail(std::string("error calling ") + fn +
                  ": wrong type for value; expected string; got " + go_type(v));
    }
    return v.get_ref<const std::string&>();
}

std::int64_t need_int(const Value& v, const char* fn) {
    if (!v.is_number_integer()) {
        exec_fail(std::string("error calling ") + fn +
                  ": wrong type for value; expected int; got " + go_type(v));
    }
    return v.get<std::int64_t>();
}

// Comparison as text/template's eq/lt: numbers with numbers, strings with
// strings, bools with bools (eq only).
int compare(const Value& a, const Value& b, const char* fn, bool ordered) {
    if (a.is_number() && b.is_number()) {
        if (a.is_number_float() || b.is_number_float()) {
            double x = a.get<double>(), y = b.get<double>();
            return x < y ? -1 : x > y ? 1 : 0;
        }
        if (a.is_number_unsigned() || b.is_number_unsigned()) {
            if (a.is_number_integer() && a.get<std::int64_t>() < 0 && !a.is_number_unsigned())
                return -1;
            if (b.is_number_integer() && b.get<std::int64_t>() < 0 && !b.is_number_unsigned())
                return 1;
            auto x = a.get<std::uint64_t>(), y = b.get<std::uint64_t>();
            return x < y ? -1 : x > y ? 1 : 0;
        }
        auto x = a.get<std::int64_t>(), y = b.get<std::int64_t>();
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_string() && b.is_string()) {
        int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
        return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (!ordered && a.is_boolean() && b.is_boolean()) {
        return a.get<bool>() == b.get<bool>() ? 0 : 1;
    }
    if (!ordered && (a.is_null() || b.is_null())) {
        return a.is_null() && b.is_null() ? 0 : 1;
    }
    if (a.is_array() || a.is_object() || b.is_array() || b.is_object()) {
        exec_fail(std::string("error calling ") + fn + ": non-comparable type " +
                  go_type(a.is_array() || a.is_object() ? a : b));
    }
    exec_fail(std::string("error calling ") + fn + ": incompatible types for comparison");
}

std::string title_case(const std::string& s) {
    std::string out = s;
    bool prev_sep = true;
    for (char& c : out) {
        auto u = static_cast<unsigned char>(c);
        bool letter = std::isalnum(u) || c == '_' || u >= 0x80;
        if (prev_sep && std::islower(u)) {
            c = static_cast<char>(std::toupper(u));
        }
        prev_sep = !letter;
    }
    return out;
}

// strings.ToUpper / ToLower: Unicode case mapping (C.UTF-8's tables).
std::string map_case(const std::string& s, bool upper) {
    static locale_t loc = ::newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr);
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80           ? 1
                        : (c >> 5) == 0x6  ? 2
                        : (c >> 4) == 0xE  ? 3
                        : (c >> 3) == 0x1E ? 4
                                           : 1;
        if (i + n > s.size()) {
            n = 1;
        }
        std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
        for (std::size_t k = 1; k < n; ++k) {
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        }
        if (n == 1 && c >= 0x80) {
            out += s[i++]; // not UTF-8: kept as it is
            continue;
        }
        std::uint32_t m = cp;
        if (loc != nullptr) {
            m = static_cast<std::uint32_t>(upper ? ::towupper_l(static_cast<wint_t>(cp), loc)
                                                 : ::towlower_l(static_cast<wint_t>(cp), loc));
        } else if (cp < 0x80) {
            m = static_cast<std::uint32_t>(upper ? std::toupper(static_cast<int>(cp))
                                                 : std::tolower(static_cast<int>(cp)));
        }
        if (m < 0x80) {
            out += static_cast<char>(m);
        } else if (m < 0x800) {
            out += static_cast<char>(0xC0 | (m >> 6));
            out += static_cast<char>(0x80 | (m & 0x3F));
        } else if (m < 0x10000) {
            out += static_cast<char>(0xE0 | (m >> 12));
            out += static_cast<char>(0x80 | ((m >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (m & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (m >> 18));
            out += static_cast<char>(0x80 | ((m >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((m >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (m & 0x3F));
        }
        i += n;
    }
    return out;
}

class Exec {
public:
    Exec(const Value& root, bool strict) : m_strict(strict) { m_vars.push_back({"$", root}); }

    enum class Flow { normal, break_, continue_ };

    Flow run(const List& list, const Value& dot, std::string& out) {
        for (const auto& n : list) {
            m_line = n.line;
            switch (n.kind) {
            case Node::Kind::text:
                out += n.text;
                break;
            case Node::Kind::action: {
                Value v = eval_pipeline(*n.pipe, dot);
                if (n.pipe->vars.empty()) {
                    sprint_into(out, v, true);
                }
                break;
            }
            case Node::Kind::if_:
            case Node::Kind::with: {
                std::size_t mark = m_vars.size();
                Value v = eval_pipeline(*n.pipe, dot);
                Flow f = Flow::normal;
                if (truth(v)) {
                    f = run(*n.body, n.kind == Node::Kind::with ? v : dot, out);
                } else if (n.else_body) {
                    f = run(*n.else_body, dot, out);
                }
                m_vars.resize(mark);
                if (f != Flow::normal) {
                    return f;
                }
                break;
            }
            case Node::Kind::range: {
                std::size_t mark = m_vars.size();
                Pipeline p = *n.pipe;
                std::vector<std::string> vars = p.vars;
                p.vars.clear();
                Value v = eval_pipeline(p, dot);
                auto iterate = [&](const Value& key, const Value& elem) {
                    std::size_t inner = m_vars.size();
                    if (vars.size() == 1) {
                        set_var(vars[0], elem, true);
                    } else if (vars.size() == 2) {
                        set_var(vars[0], key, true);
                        set_var(vars[1], elem, true);
                    }
                    Flow f = run(*n.body, elem, out);
                    m_vars.resize(inner);
                    return f;
                };
                bool any = false;
                if (v.is_array()) {
                    std::int64_t i = 0;
                    for (const auto& e : v) {
                        any = true;
                        if (iterate(Value(i++), e) == Flow::break_)
                            break;
                    }
                } else if (v.is_object()) {
                    std::vector<std::string> keys;
                    for (const auto& [k, _] : v.items())
                        keys.push_back(k);
                    std::sort(keys.begin(), keys.end());
                    for (const auto& k : keys) {
                        any = true;
                        if (iterate(Value(k), v.at(k)) == Flow::break_)
                            break;
                    }
                } else if (v.is_number_integer()) {
                    for (std::int64_t i = 0; i < v.get<std::int64_t>(); ++i) {
                        any = true;
                        if (iterate(Value(i), Value(i)) == Flow::break_)
                            break;
                    }
                } else if (!v.is_null()) {
                    exec_fail("range can't iterate over " + sprint_nested(v));
                }
                if (!any && n.else_body) {
                    Flow f = run(*n.else_body, dot, out);
                    m_vars.resize(mark);
                    if (f != Flow::normal)
                        return f;
                }
                m_vars.resize(mark);
                break;
            }
            case Node::Kind::break_:
                return Flow::break_;
            case Node::Kind::continue_:
                return Flow::continue_;
            }
        }
        return Flow::normal;
    }

    int line() const { return m_line; }
    const std::string& at() const { return m_at; }

private:
    void set_var(const std::string& name, const Value& v, bool declare) {
        if (declare) {
            m_vars.push_back({name, v});
            return;
        }
        for (auto it = m_vars.rbegin(); it != m_vars.rend(); ++it) {
            if (it->first == name) {
                it->second = v;
                return;
            }
        }
        exec_fail("undefined variable: " + name);
    }

    const Value& var(const std::string& name) {
        for (auto it = m_vars.rbegin(); it != m_vars.rend(); ++it) {
            if (it->first == name) {
                return it->second;
            }
        }
        exec_fail("undefined variable: " + name);
    }

    Value field(const Value& v, const std::string& name) {
        if (v.is_object()) {
            auto it = v.find(name);
            if (it != v.end()) {
                return *it;
            }
            if (m_strict) {
                exec_fail("can't evaluate field " + name + " in type " + go_type(v));
            }
            return nullptr;
        }
        if (v.is_null()) {
            if (m_strict) {
                exec_fail("nil pointer evaluating interface {}." + name);
            }
            return nullptr;
        }
        exec_fail("can't evaluate field " + name + " in type " + go_type(v));
    }

    Value chain(Value v, const std::vector<std::string>& fields, std::size_t from = 0) {
        for (std::size_t i = from; i < fields.size(); ++i) {
            v = field(v, fields[i]);
        }
        return v;
    }

    Value eval_pipeline(const Pipeline& p, const Value& dot) {
        Value v;
        bool have = false;
        for (const auto& c : p.cmds) {
            v = eval_command(c, dot, have ? &v : nullptr);
            have = true;
        }
        for (const auto& name : p.vars) {
            set_var(name, v, p.declare);
        }
        return v;
    }

    Value eval_arg(const Arg& a, const Value& dot) {
        m_at = a.text;
        switch (a.kind) {
        case Arg::Kind::dot:
            return dot;
        case Arg::Kind::field:
            return chain(dot, a.fields);
        case Arg::Kind::var:
            return chain(var(a.name), a.fields);
        case Arg::Kind::literal:
            return a.literal;
        case Arg::Kind::pipe: {
            std::size_t mark = m_vars.size();
            Value v = eval_pipeline(*a.sub, dot);
            m_vars.resize(mark);
            return chain(v, a.fields);
        }
        case Arg::Kind::ident:
            return call(a.name, {}, dot, nullptr);
        }
        return nullptr;
    }

    Value eval_command(const Command& c, const Value& dot, const Value* final) {
        const Arg& first = c.args.front();
        if (first.kind == Arg::Kind::ident) {
            std::vector<const Arg*> rest;
            for (std::size_t i = 1; i < c.args.size(); ++i) {
                rest.push_back(&c.args[i]);
            }
            m_at = first.text;
            Value r = call(first.name, rest, dot, final);
            m_at = first.text;
            return r;
        }
        if (c.args.size() > 1 || final != nullptr) {
            m_at = first.text;
            exec_fail("can't give argument to non-function " + first.text);
        }
        return eval_arg(first, dot);
    }

    Value call(const std::string& fn, const std::vector<const Arg*>& argv, const Value& dot,
               const Value* final) {
        std::size_t n = argv.size() + (final ? 1 : 0);
        auto arg = [&](std::size_t i) -> Value {
            if (i < argv.size()) {
                std::string save = m_at;
                Value v = eval_arg(*argv[i], dot);
                m_at = save;
                return v;
            }
            return *final;
        };
        auto want = [&](std::size_t k) {
            if (n != k) {
                exec_fail("wrong number of args for " + fn + ": want " + std::to_string(k) +
                          " got " + std::to_string(n));
            }
        };
        auto want_min = [&](std::size_t k) {
            if (n < k) {
                exec_fail("wrong number of args for " + fn + ": want at least " +
                          std::to_string(k) + " got " + std::to_string(n));
            }
        };
        auto all = [&] {
            std::vector<Value> v;
            for (std::size_t i = 0; i < n; ++i)
                v.push_back(arg(i));
            return v;
        };
        if (fn == "and" || fn == "or") {
            want_min(1);
            Value v;
            for (std::size_t i = 0; i < n; ++i) {
                v = arg(i);
                if (truth(v) != (fn == "and"))
                    return v;
            }
            return v;
        }
        if (fn == "not") {
            want(1);
            return !truth(arg(0));
        }
        if (fn == "len") {
            want(1);
            Value v = arg(0);
            if (v.is_string())
                return static_cast<std::int64_t>(v.get_ref<const std::string&>().size());
            if (v.is_array() || v.is_object())
                return static_cast<std::int64_t>(v.size());
            exec_fail("error calling len: len of type " + go_type(v));
        }
        if (fn == "index") {
            want_min(1);
            Value v = arg(0);
            for (std::size_t i = 1; i < n; ++i) {
                Value k = arg(i);
                if (v.is_array()) {
                    if (!k.is_number_integer())
                        exec_fail("error calling index: cannot index slice/array with type " +
                                  go_type(k));
                    auto idx = k.get<std::int64_t>();
                    if (idx < 0 || static_cast<std::size_t>(idx) >= v.size())
                        exec_fail("error calling index: index out of range: " +
                                  std::to_string(idx));
                    v = Value(v.at(static_cast<std::size_t>(idx)));
                } else if (v.is_object()) {
                    if (!k.is_string())
                        exec_fail("error calling index: value has type " + go_type(k) +
                                  "; should be string");
                    auto it = v.find(k.get<std::string>());
                    v = it == v.end() ? Value(nullptr) : Value(*it);
                } else if (v.is_string()) {
                    if (!k.is_number_integer())
                        exec_fail("error calling index: cannot index string with type " +
                                  go_type(k));
                    auto idx = k.get<std::int64_t>();
                    const auto& s = v.get_ref<const std::string&>();
                    if (idx < 0 || static_cast<std::size_t>(idx) >= s.size())
                        exec_fail("error calling index: index out of range: " +
                                  std::to_string(idx));
                    v = static_cast<std::int64_t>(
                        static_cast<unsigned char>(s[static_cast<std::size_t>(idx)]));
                } else if (v.is_null()) {
                    exec_fail("error calling index: index of untyped nil");
                } else {
                    exec_fail("error calling index: can't index item of type " + go_type(v));
                }
            }
            return v;
        }
        if (fn == "slice") {
            want_min(1);
            Value v = arg(0);
            std::vector<std::int64_t> idx;
            for (std::size_t i = 1; i < n; ++i)
                idx.push_back(need_int(arg(i), "slice"));
            std::size_t len = v.is_string()  ? v.get_ref<const std::string&>().size()
                              : v.is_array() ? v.size()
                                             : 0;
            if (!v.is_string() && !v.is_array())
                exec_fail("error calling slice: can't slice item of type " + go_type(v));
            if (idx.size() > 2)
                exec_fail("error calling slice: too many slice indexes: " +
                          std::to_string(idx.size()));
            std::int64_t lo = idx.size() > 0 ? idx[0] : 0;
            std::int64_t hi = idx.size() > 1 ? idx[1] : static_cast<std::int64_t>(len);
            if (lo < 0 || hi < lo || hi > static_cast<std::int64_t>(len))
                exec_fail("error calling slice: index out of range: " +
                          std::to_string(hi < lo ? lo : hi));
            if (v.is_string())
                return v.get_ref<const std::string&>().substr(static_cast<std::size_t>(lo),
                                                              static_cast<std::size_t>(hi - lo));
            Value out = Value::array();
            for (auto i = lo; i < hi; ++i)
                out.push_back(v.at(static_cast<std::size_t>(i)));
            return out;
        }
        if (fn == "print" || fn == "println") {
            auto v = all();
            std::string s;
            for (std::size_t i = 0; i < v.size(); ++i) {
                // Sprint adds spaces between operands when neither is a string.
                if (i > 0 && (fn == "println" || (!v[i - 1].is_string() && !v[i].is_string())))
                    s += ' ';
                s += sprint_nested(v[i]);
            }
            if (fn == "println")
                s += '\n';
            return s;
        }
        if (fn == "printf") {
            want_min(1);
            auto v = all();
            std::string f = need_string(v[0], "printf");
            v.erase(v.begin());
            return go_sprintf(f, v);
        }
        if (fn == "eq") {
            want_min(2);
            Value a = arg(0);
            for (std::size_t i = 1; i < n; ++i) {
                if (compare(a, arg(i), "eq", false) == 0)
                    return true;
            }
            return false;
        }
        if (fn == "ne") {
            want(2);
            return compare(arg(0), arg(1), "ne", false) != 0;
        }
        if (fn == "lt" || fn == "le" || fn == "gt" || fn == "ge") {
            want(2);
            int c = compare(arg(0), arg(1), fn.c_str(), true);
            if (fn == "lt")
                return c < 0;
            if (fn == "le")
                return c <= 0;
            if (fn == "gt")
                return c > 0;
            return c >= 0;
        }
        if (fn == "html" || fn == "urlquery") {
            auto v = all();
            std::string s;
            for (std::size_t i = 0; i < v.size(); ++i) {
                if (i > 0 && !v[i - 1].is_string() && !v[i].is_string())
                    s += ' ';
                s += sprint_nested(v[i]);
            }
            std::string o;
            for (unsigned char ch : s) {
                if (fn == "html") {
                    switch (ch) {
                    case '<':
                        o += "&lt;";
                        break;
                    case '>':
                        o += "&gt;";
                        break;
                    case '&':
                        o += "&amp;";
                        break;
                    case '\'':
                        o += "&#39;";
                        break;
                    case '"':
                        o += "&#34;";
                        break;
                    case 0:
                        o += "\xEF\xBF\xBD";
                        break;
                    default:
                        o += static_cast<char>(ch);
                    }
                } else if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
                    o += static_cast<char>(ch);
                } else if (ch == ' ') {
                    o += '+';
                } else {
                    char b[4];
                    std::snprintf(b, sizeof b, "%%%02X", ch);
                    o += b;
                }
            }
            return o;
        }
        // Docker's functions (cli/templates/templates.go).
        if (fn == "json") {
            want(1);
            return arg(0).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        if (fn == "split") {
            want(2);
            std::string s = need_string(arg(0), "split");
            std::string sep = need_string(arg(1), "split");
            Value out = Value::array();
            if (sep.empty()) {
                for (std::size_t i = 0; i < s.size();) {
                    std::size_t k = i + 1;
                    while (k < s.size() && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80)
                        ++k;
                    out.push_back(s.substr(i, k - i));
                    i = k;
                }
                return out;
            }
            std::size_t pos = 0;
            for (;;) {
                std::size_t f = s.find(sep, pos);
                out.push_back(s.substr(pos, f == std::string::npos ? std::string::npos : f - pos));
                if (f == std::string::npos)
                    break;
                pos = f + sep.size();
            }
            return out;
        }
        if (fn == "join") {
            want(2);
            Value a = arg(0);
            std::string sep = need_string(arg(1), "join");
            if (!a.is_array() && !a.is_null()) {
                exec_fail("error calling join: wrong type for value; expected []string; got " +
                          go_type(a));
            }
            std::string s;
            bool first = true;
            for (const auto& e : a.is_null() ? Value::array() : a) {
                if (!first)
                    s += sep;
                first = false;
                s += e.is_string() ? e.get<std::string>() : sprint_nested(e);
            }
            return s;
        }
        if (fn == "title" || fn == "lower" || fn == "upper") {
            want(1);
            std::string s = need_string(arg(0), fn.c_str());
            if (fn == "title")
                return title_case(s);
            return map_case(s, fn == "upper");
        }
        if (fn == "pad") {
            want(3);
            std::string s = need_string(arg(0), "pad");
            auto pre = need_int(arg(1), "pad"), post = need_int(arg(2), "pad");
            if (s.empty())
                return s;
            return std::string(static_cast<std::size_t>(std::max<std::int64_t>(pre, 0)), ' ') + s +
                   std::string(static_cast<std::size_t>(std::max<std::int64_t>(post, 0)), ' ');
        }
        if (fn == "truncate") {
            want(2);
            std::string s = need_string(arg(0), "truncate");
            auto len = need_int(arg(1), "truncate");
            if (len < 0 || rune_count(s) <= static_cast<std::size_t>(len))
                return s;
            std::size_t k = 0;
            for (std::int64_t c = 0; c < len; ++c) {
                ++k;
                while (k < s.size() && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80)
                    ++k;
            }
            return s.substr(0, k);
        }
        exec_fail("function \"" + fn + "\" not defined");
    }

    bool m_strict;
    std::vector<std::pair<std::string, Value>> m_vars;
    int m_line = 1;
    std::string m_at;
};

const std::vector<std::string>& known_functions() {
    static const std::vector<std::string> fns{
        "and",   "or",   "not",   "len",   "index", "slice", "print",   "println",  "printf",
        "eq",    "ne",   "lt",    "le",    "gt",    "ge",    "html",    "urlquery", "json",
        "split", "join", "title", "lower", "upper", "pad",   "truncate"};
    return fns;
}

void check_functions(const List& list);

void check_pipeline(const Pipeline& p, int line) {
    for (const auto& c : p.cmds) {
        for (const auto& a : c.args) {
            if (a.kind == Arg::Kind::ident) {
                const auto& fns = known_functions();
                if (std::find(fns.begin(), fns.end(), a.name) == fns.end()) {
                    parse_fail(line, "function \"" + a.name + "\" not defined");
                }
            }
            if (a.sub) {
                check_pipeline(*a.sub, line);
            }
        }
    }
}

void check_functions(const List& list) {
    for (const auto& n : list) {
        if (n.pipe)
            check_pipeline(*n.pipe, n.line);
        if (n.body)
            check_functions(*n.body);
        if (n.else_body)
            check_functions(*n.else_body);
    }
}

} // namespace

Template Template::parse(std::string_view text, bool strict_fields) {
    Lexer lexer(text);
    Parser parser(lexer.run());
    auto tree = std::make_shared<Tree>();
    tree->root = parser.parse_all();
    check_functions(tree->root);
    Template t;
    t.m_tree = std::move(tree);
    t.m_strict = strict_fields;
    return t;
}

std::string Template::execute(const TemplateValue& data) const {
    std::string out;
    Exec ex(data, m_strict);
    try {
        ex.run(m_tree->root, data, out);
    } catch (const ExecError& e) {
        throw Error("template: :" + std::to_string(ex.line()) + ": executing \"\" at <" + ex.at() +
                    ">: " + e.msg);
    }
    return out;
}

std::string go_sprint(const TemplateValue& v) {
    std::string s;
    sprint_into(s, v, false);
    return s;
}

std::string tabwrite(std::string_view text, std::size_t minwidth, std::size_t padding) {
    // Go's text/tabwriter (flags 0, padchar ' '): lines of tab-terminated
    // cells, column blocks formatted recursively (Writer.format), a flush
    // after every line without a tab.
    struct Cell {
        std::string text;
        std::size_t width;
    };
    using Line = std::vector<Cell>;
    std::string out;
    std::vector<Line> lines;
    bool last_partial = false;
    std::vector<std::size_t> widths;

    auto write_lines = [&](std::size_t line0, std::size_t line1) {
        for (std::size_t i = line0; i < line1; ++i) {
            const Line& line = lines[i];
            for (std::size_t j = 0; j < line.size(); ++j) {
                out += line[j].text;
                if (j < widths.size() && widths[j] > line[j].width) {
                    out.append(widths[j] - line[j].width, ' ');
                }
            }
            if (!(last_partial && i + 1 == lines.size())) {
                out += '\n';
            }
        }
    };
    std::function<void(std::size_t, std::size_t)> format = [&](std::size_t line0,
                                                               std::size_t line1) {
        std::size_t column = widths.size();
        for (std::size_t t = line0; t < line1; ++t) {
            if (column + 1 >= lines[t].size()) {
                continue;
            }
            // A cell in this column: print the lines above, then the block.
            write_lines(line0, t);
            line0 = t;
            std::size_t width = minwidth;
            for (; t < line1 && column + 1 < lines[t].size(); ++t) {
                width = std::max(width, lines[t][column].width + padding);
            }
            widths.push_back(width);
            format(line0, t);
            widths.pop_back();
            line0 = t;
            if (t >= line1) {
                break;
            }
        }
        write_lines(line0, line1);
    };
    auto flush = [&] {
        format(0, lines.size());
        lines.clear();
    };

    Line cur;
    std::string cell;
    auto end_cell = [&] {
        cur.push_back({cell, rune_count(cell)});
        cell.clear();
    };
    for (char c : text) {
        if (c == '\t') {
            end_cell();
        } else if (c == '\n') {
            end_cell();
            std::size_t ncells = cur.size();
            lines.push_back(std::move(cur));
            cur.clear();
            if (ncells == 1) {
                flush();
            }
        } else {
            cell += c;
        }
    }
    if (!cell.empty() || !cur.empty()) {
        end_cell();
        lines.push_back(std::move(cur));
        last_partial = true;
    }
    flush();
    return out;
}

std::string format_rows(std::string_view format, const TableFormat& table,
                        const std::vector<TemplateValue>& rows) {
    std::string f(format);
    if (f.empty() || f == "table") {
        f = table.default_table;
    } else if (f == "json") {
        f = "{{json .}}";
    }
    bool is_table = f.rfind("table", 0) == 0;
    if (is_table) {
        f = f.substr(5);
        std::size_t a = f.find_first_not_of(' ');
        std::size_t b = f.find_last_not_of(' ');
        f = a == std::string::npos ? "" : f.substr(a, b - a + 1);
    }
    // Docker's formatter turns the two-character escapes into the characters.
    std::string g;
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (f[i] == '\\' && i + 1 < f.size() && (f[i + 1] == 't' || f[i + 1] == 'n')) {
            g += f[i + 1] == 't' ? '\t' : '\n';
            ++i;
        } else {
            g += f[i];
        }
    }
    Template t = Template::parse(g, true);
    std::string body;
    if (is_table) {
        // The header: the same template over an object whose fields are
        // the column names (fields without a name print empty).
        TemplateValue h = TemplateValue::object();
        for (const auto& row : rows) {
            for (const auto& [k, _] : row.items()) {
                h[k] = "";
            }
        }
        for (const auto& [k, v] : table.headers.items()) {
            h[k] = v;
        }
        body += Template::parse(g, false).execute(h) + "\n";
    }
    for (const auto& row : rows) {
        body += t.execute(row) + "\n";
    }
    return is_table ? tabwrite(body) : body;
}

bool print_inspected(std::string_view format, const std::vector<std::string>& names,
                     std::string_view what,
                     const std::function<std::optional<TemplateValue>(const std::string&)>& find) {
    std::optional<Template> tmpl;
    if (!format.empty() && format != "json") {
        tmpl = Template::parse(format);
    }
    TemplateValue all = TemplateValue::array();
    std::vector<std::string> missing;
    for (const auto& name : names) {
        auto doc = find(name);
        if (!doc) {
            missing.push_back(name);
        } else if (tmpl) {
            std::cout << tmpl->execute(*doc) << "\n";
        } else {
            all.push_back(std::move(*doc));
        }
    }
    if (!tmpl) {
        std::cout << all.dump(4) << "\n";
    }
    for (const auto& name : missing) {
        std::cerr << "strata: error: No such " << what << ": " << name << "\n";
    }
    return missing.empty();
}

} // namespace strata::cli
