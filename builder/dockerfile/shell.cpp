#include "builder/dockerfile/shell.hpp"

#include "util/text.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace strata::dockerfile {

// ---------------------------------------------------------------------------
// Env

Env::Env(std::initializer_list<std::pair<std::string, std::string>> init) {
    for (const auto& [k, v] : init) {
        set(k, v);
    }
}

Env::Env(const Env& o) {
    for (const auto& [k, v] : o.m_entries) {
        set(k, v);
    }
}

Env& Env::operator=(const Env& o) {
    if (this != &o) {
        Env copy(o);
        *this = std::move(copy);
    }
    return *this;
}

void Env::set(std::string_view name, std::string_view value) {
    if (auto it = m_index.find(name); it != m_index.end()) {
        it->second->second = std::string(value);
        return;
    }
    m_entries.emplace_back(std::string(name), std::string(value));
    auto last = std::prev(m_entries.end());
    m_index.emplace(std::string_view(last->first), last);
}

void Env::unset(std::string_view name) {
    auto it = m_index.find(name);
    if (it == m_index.end()) {
        return;
    }
    const auto pos = it->second;
    m_index.erase(it);
    m_entries.erase(pos);
}

std::optional<std::string_view> Env::get(std::string_view name) const {
    if (auto it = m_index.find(name); it != m_index.end()) {
        return std::string_view(it->second->second);
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> Env::entries() const {
    return {m_entries.begin(), m_entries.end()};
}

std::vector<std::string> Env::to_list() const {
    std::vector<std::string> out;
    out.reserve(m_entries.size());
    for (const auto& [k, v] : m_entries) {
        out.push_back(k + "=" + v);
    }
    return out;
}

EnvLookup Env::lookup() const {
    return [this](std::string_view name) { return get(name); };
}

namespace {

constexpr char32_t k_eof = 0xFFFFFFFF;

// Text as code points; an invalid byte b becomes 0x110000 + b so that it survives a
// round trip unchanged.
std::vector<char32_t> to_runes(std::string_view s) {
    std::vector<char32_t> out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const text::Rune r = text::decode(s, i);
        out.push_back(r.valid ? r.cp : 0x110000 + static_cast<unsigned char>(s[i]));
        i += r.len;
    }
    return out;
}

void append_rune(std::string& out, char32_t cp) {
    if (cp >= 0x110000) {
        out.push_back(static_cast<char>(cp - 0x110000));
    } else {
        text::append_utf8(out, cp);
    }
}

std::string from_runes(const std::vector<char32_t>& r, std::size_t b, std::size_t e) {
    std::string out;
    for (std::size_t i = b; i < e; ++i) {
        append_rune(out, r[i]);
    }
    return out;
}

std::string rune_string(char32_t cp) {
    std::string s;
    if (cp != k_eof) {
        append_rune(s, cp);
    }
    return s;
}

// A shell pattern (`*`, `?`, `\` escapes) compiled to a tiny Pike VM, reproducing the
// leftmost-first semantics of the Go regexp BuildKit builds from the pattern
// (".*?" or ".*" for `*`, "." for `?`; "." does not match a newline). Runs in
// O(len(text) * len(pattern)) per search.
class Pattern {
public:
    Pattern(std::string_view pattern, bool greedy) {
        const std::vector<char32_t> p = to_runes(pattern);
        for (std::size_t i = 0; i < p.size(); ++i) {
            const char32_t c = p[i];
            if (c == '*') {
                const int l1 = static_cast<int>(m_prog.size());
                m_prog.push_back({Op::Split, 0, 0, 0});
                m_prog.push_back({Op::Any, 0, 0, 0});
                m_prog.push_back({Op::Jmp, 0, l1, 0});
                const int l3 = static_cast<int>(m_prog.size());
                m_prog[l1].x = greedy ? l1 + 1 : l3;
                m_prog[l1].y = greedy ? l3 : l1 + 1;
            } else if (c == '?') {
                m_prog.push_back({Op::Any, 0, 0, 0});
            } else if (c == '\\') {
                if (i + 1 < p.size() && p[i + 1] == '}') {
                    continue; // "\}" inside ${} is "}"; the escape is not part of the pattern
                }
                const char32_t t = i + 1 < p.size() ? p[i + 1] : k_eof;
                if (t != '*' && t != '?' && t != '\\') {
                    throw ExpansionError(fmt::format("invalid pattern ({}) in substitution: "
                                                     "invalid escape '\\{}'",
                                                     pattern, rune_string(t)));
                }
                ++i;
                m_prog.push_back({Op::Char, t, 0, 0});
            } else {
                m_prog.push_back({Op::Char, c, 0, 0});
            }
        }
        m_prog.push_back({Op::Match, 0, 0, 0});
        m_mark.assign(m_prog.size(), 0);
    }

    // First match (leftmost-first) at or after `from`; anchored: only at `from`.
    std::optional<std::pair<std::size_t, std::size_t>> search(const std::vector<char32_t>& text,
                                                              std::size_t from, bool anchored) {
        std::vector<Thread> clist;
        std::vector<Thread> nlist;
        std::optional<std::pair<std::size_t, std::size_t>> best;
        const std::size_t n = text.size();
        std::uint64_t gen = next_gen();
        for (std::size_t pos = from;; ++pos) {
            if (!best && (!anchored || pos == from)) {
                add(clist, 0, pos, gen);
            }
            if (clist.empty()) {
                break;
            }
            const std::uint64_t ngen = next_gen();
            for (const Thread& t : clist) {
                const Inst& in = m_prog[t.pc];
                if (in.op == Op::Match) {
                    best = std::make_pair(t.start, pos);
                    break; // lower-priority threads are cut
                }
                if (pos >= n) {
                    continue;
                }
                if ((in.op == Op::Char && text[pos] == in.c) ||
                    (in.op == Op::Any && text[pos] != '\n')) {
                    add(nlist, t.pc + 1, t.start, ngen);
                }
            }
            std::swap(clist, nlist);
            nlist.clear();
            gen = ngen;
            if (pos >= n) {
                // Threads left in clist can only be Match; handle them.
                for (const Thread& t : clist) {
                    if (m_prog[t.pc].op == Op::Match) {
                        best = std::make_pair(t.start, pos);
                        break;
                    }
                }
                break;
            }
        }
        return best;
    }

private:
    enum class Op { Char, Any, Split, Jmp, Match };
    struct Inst {
        Op op;
        char32_t c;
        int x;
        int y;
    };
    struct Thread {
        int pc;
        std::size_t start;
    };

    std::uint64_t next_gen() { return ++m_gen; }

    void add(std::vector<Thread>& list, int pc0, std::size_t start, std::uint64_t gen) {
        m_stack.clear();
        m_stack.push_back(pc0);
        while (!m_stack.empty()) {
            const int pc = m_stack.back();
            m_stack.pop_back();
            if (m_mark[pc] == gen) {
                continue;
            }
            m_mark[pc] = gen;
            const Inst& in = m_prog[pc];
            if (in.op == Op::Jmp) {
                m_stack.push_back(in.x);
            } else if (in.op == Op::Split) {
                m_stack.push_back(in.y);
                m_stack.push_back(in.x);
            } else {
                list.push_back({pc, start});
            }
        }
    }

    std::vector<Inst> m_prog;
    std::vector<std::uint64_t> m_mark;
    std::vector<int> m_stack;
    std::uint64_t m_gen = 0;
};

// Reverses a pattern without reversing its "\x" escape pairs.
std::string reverse_pattern(std::string_view pattern) {
    const std::vector<char32_t> p = to_runes(pattern);
    std::vector<char32_t> out(p.size());
    if (p.empty()) {
        return {};
    }
    const std::size_t last = p.size() - 1;
    for (std::size_t i = 0; i <= last;) {
        if (i != last && p[i] == '\\') {
            out[last - i] = p[i + 1];
            out[last - i - 1] = p[i];
            ++i;
        } else {
            out[last - i] = p[i];
        }
        ++i;
    }
    return from_runes(out, 0, out.size());
}

// ${var#pattern} and ${var%pattern}: removes the shortest (greedy: the
// longest) match of pattern anchored at the start or at the end of value. A
// suffix match is a prefix match of the reversed pattern on the reversed value.
enum class TrimSide { prefix, suffix };

std::string trim_match(std::string_view pattern, std::string_view value, bool greedy,
                       TrimSide side) {
    const bool suffix = side == TrimSide::suffix;
    Pattern re(suffix ? reverse_pattern(pattern) : std::string(pattern), greedy);
    std::vector<char32_t> v = to_runes(value);
    if (suffix) {
        std::reverse(v.begin(), v.end());
    }
    const auto m = re.search(v, 0, true);
    if (!m) {
        return std::string(value);
    }
    std::vector<char32_t> rest(v.begin() + static_cast<std::ptrdiff_t>(m->second), v.end());
    if (suffix) {
        std::reverse(rest.begin(), rest.end());
    }
    return from_runes(rest, 0, rest.size());
}

// Word splitting state (BuildKit's wordsStruct).
struct Words {
    std::string word;
    std::vector<std::string> words;
    bool in_word = false;
    // "<<" (or "<<-") and the blanks right after it stay in the word, so that
    // "<<  EOF" is one word for heredoc detection. Tracked incrementally so that a
    // long run of blanks stays linear.
    bool heredoc_open = false;

    void update_heredoc() { heredoc_open = word.ends_with("<<") || word.ends_with("<<-"); }
    void add_char(char32_t ch, std::string_view raw) {
        const bool space = text::is_space(ch);
        if (space && in_word) {
            if (heredoc_open && (ch == ' ' || ch == '\t')) {
                word += raw;
                return;
            }
            if (!word.empty()) {
                words.push_back(std::move(word));
                word.clear();
                heredoc_open = false;
                in_word = false;
            }
        } else if (!space) {
            add_raw(raw);
        }
    }
    void add_raw(std::string_view raw) {
        word += raw;
        in_word = true;
        update_heredoc();
    }
    void add_string(std::string_view s) {
        std::size_t i = 0;
        while (i < s.size()) {
            const text::Rune r = text::decode(s, i);
            add_char(r.valid ? r.cp : 0xFFFD, s.substr(i, r.len));
            i += r.len;
        }
    }
    std::vector<std::string> finish() {
        if (!word.empty()) {
            words.push_back(std::move(word));
            word.clear();
            in_word = false;
            heredoc_open = false;
        }
        return std::move(words);
    }
};

class ShellWord {
public:
    ShellWord(std::string_view input, const EnvLookup& env, const ShellExpander::Options& opts,
              ShellExpander::Result& res)
        : m_in(input), m_env(env), m_opts(opts), m_res(res), m_raw_escapes(opts.raw_escapes) {}

    std::string run(Words* words) { return stop_on(k_eof, m_raw_escapes, words, 0); }

private:
    char32_t peek() const {
        if (m_pos >= m_in.size()) {
            return k_eof;
        }
        const text::Rune r = text::decode(m_in, m_pos);
        return r.valid ? r.cp : 0xFFFD;
    }
    char32_t next() {
        if (m_pos >= m_in.size()) {
            m_last = {};
            return k_eof;
        }
        const text::Rune r = text::decode(m_in, m_pos);
        m_last = m_in.substr(m_pos, r.len);
        m_pos += r.len;
        return r.valid ? r.cp : 0xFFFD;
    }

    void check_size(std::size_t n) const {
        if (n > m_opts.max_size) {
            throw ExpansionError(
                fmt::format("expansion result is larger than {} bytes", m_opts.max_size));
        }
    }

    // A word inside ${...} up to stop; running out of input reports
    // missing (BuildKit's message for the construct).
    std::string stop_on_nested(char32_t stop, bool raw_escapes, std::size_t depth,
                               const char* missing) {
        try {
            return stop_on(stop, raw_escapes, nullptr, depth + 1);
        } catch (const ExpansionError&) {
            if (peek() == k_eof) {
                throw ExpansionError(missing);
            }
            throw;
        }
    }

    std::string stop_on(char32_t stop, bool raw_escapes, Words* words, std::size_t depth) {
        if (depth > m_opts.max_depth) {
            throw ExpansionError(fmt::format("variable expansion is nested deeper than {} levels",
                                             m_opts.max_depth));
        }
        const bool saved = m_raw_escapes;
        m_raw_escapes = raw_escapes;
        struct Restore {
            bool& ref;
            bool value;
            ~Restore() { ref = value; }
        } restore{m_raw_escapes, saved};

        std::string result;
        const char32_t esc = static_cast<unsigned char>(m_opts.escape);
        while (peek() != k_eof) {
            char32_t ch = peek();
            if (stop != k_eof && ch == stop) {
                next();
                return result;
            }
            if (ch == '$' || (!m_opts.skip_quotes && (ch == '\'' || ch == '"'))) {
                std::string tmp = ch == '$'    ? dollar(depth)
                                  : ch == '\'' ? single_quote()
                                               : double_quote(depth);
                result += tmp;
                check_size(result.size());
                if (words != nullptr) {
                    if (ch == '$') {
                        words->add_string(tmp);
                    } else {
                        words->add_raw(tmp);
                    }
                }
                continue;
            }
            ch = next();
            std::string_view raw = m_last;
            if (ch == esc) {
                if (m_raw_escapes) {
                    if (words != nullptr) {
                        words->add_raw(raw);
                    }
                    result += raw;
                }
                ch = next();
                raw = m_last;
                if (ch == k_eof) {
                    break;
                }
                if (words != nullptr) {
                    words->add_raw(raw);
                }
            } else if (words != nullptr) {
                words->add_char(ch, raw);
            }
            result += raw;
            check_size(result.size());
        }
        if (stop != k_eof) {
            throw ExpansionError(fmt::format(
                "unexpected end of statement while looking for matching {}", rune_string(stop)));
        }
        return result;
    }

    std::string single_quote() {
        std::string result;
        next();
        if (m_opts.raw_quotes) {
            result += '\'';
        }
        for (;;) {
            const char32_t ch = next();
            if (ch == k_eof) {
                throw ExpansionError(
                    "unexpected end of statement while looking for matching single-quote");
            }
            if (ch == '\'') {
                if (m_opts.raw_quotes) {
                    result += '\'';
                }
                return result;
            }
            result += m_last;
        }
    }

    std::string double_quote(std::size_t depth) {
        std::string result;
        next();
        if (m_opts.raw_quotes) {
            result += '"';
        }
        const char32_t esc = static_cast<unsigned char>(m_opts.escape);
        for (;;) {
            const char32_t p = peek();
            if (p == k_eof) {
                throw ExpansionError(
                    "unexpected end of statement while looking for matching double-quote");
            }
            if (p == '"') {
                next();
                if (m_opts.raw_quotes) {
                    result += '"';
                }
                return result;
            }
            if (p == '$') {
                result += dollar(depth);
                check_size(result.size());
                continue;
            }
            const char32_t ch = next();
            std::string_view raw = m_last;
            if (ch == esc) {
                const char32_t q = peek();
                if (q == k_eof) {
                    continue; // a trailing escape is dropped; the missing quote fails above
                }
                if (q == '"' || q == '$' || q == esc) {
                    if (m_raw_escapes) {
                        result += raw;
                    }
                    next();
                    raw = m_last;
                }
            }
            result += raw;
            check_size(result.size());
        }
    }

    std::optional<std::string_view> lookup(const std::string& name) {
        std::optional<std::string_view> v = m_env ? m_env(name) : std::nullopt;
        if (v) {
            m_res.used.insert(name);
        } else {
            m_res.unset.insert(name);
        }
        return v;
    }

    std::string name() {
        std::string out;
        while (peek() != k_eof) {
            char32_t ch = peek();
            if (out.empty() && text::is_digit(ch)) {
                while (peek() != k_eof && text::is_digit(peek())) {
                    next();
                    out += m_last;
                }
                return out;
            }
            if (out.empty()) {
                switch (ch) {
                case '@':
                case '*':
                case '#':
                case '?':
                case '-':
                case '$':
                case '!':
                case '0':
                    next();
                    return std::string(m_last);
                default:
                    break;
                }
            }
            if (!text::is_letter(ch) && !text::is_digit(ch) && ch != '_') {
                break;
            }
            next();
            out += m_last;
        }
        return out;
    }

    std::string dollar(std::size_t depth) {
        next(); // '$'
        if (peek() != '{') {
            const std::string n = name();
            if (n.empty()) {
                return "$";
            }
            auto v = lookup(n);
            if (!v && m_opts.skip_unset) {
                return "$" + n;
            }
            return v ? std::string(*v) : std::string();
        }
        next(); // '{'
        switch (peek()) {
        case k_eof:
            throw ExpansionError("syntax error: missing '}'");
        case '{':
        case '}':
        case ':':
            throw ExpansionError("syntax error: bad substitution");
        default:
            break;
        }
        const std::string n = name();
        char32_t ch = next();
        std::string chs = rune_string(ch);
        bool null_is_unset = false;
        if (ch == '}') {
            auto v = lookup(n);
            if (!v && m_opts.skip_unset) {
                return "${" + n + "}";
            }
            return v ? std::string(*v) : std::string();
        }
        if (ch == ':') {
            null_is_unset = true;
            ch = next();
            chs += rune_string(ch);
        }
        if (null_is_unset || ch == '+' || ch == '-' || ch == '?' || ch == '#' || ch == '%') {
            const bool raw = ch == '#' || ch == '%';
            if (null_is_unset && raw) {
                throw ExpansionError(fmt::format("unsupported modifier ({}) in substitution", chs));
            }
            std::string word = stop_on_nested('}', raw, depth, "syntax error: missing '}'");
            auto v = lookup(n);
            if (m_opts.skip_unset && !v) {
                return "${" + n + chs + word + "}";
            }
            const bool set = v.has_value();
            const std::string_view value = v ? *v : std::string_view();
            switch (ch) {
            case '-':
                return (!set || (null_is_unset && value.empty())) ? word : std::string(value);
            case '+':
                return (!set || (null_is_unset && value.empty())) ? std::string() : word;
            case '?':
                if (!set) {
                    throw ExpansionError(fmt::format(
                        "{}: {}", n, word.empty() ? "is not allowed to be unset" : word));
                }
                if (null_is_unset && value.empty()) {
                    throw ExpansionError(fmt::format(
                        "{}: {}", n, word.empty() ? "is not allowed to be empty" : word));
                }
                return std::string(value);
            case '%':
            case '#': {
                bool greedy = false;
                if (!word.empty() && static_cast<unsigned char>(word[0]) == ch) {
                    greedy = true;
                    word.erase(0, 1);
                }
                return trim_match(word, value, greedy,
                                  ch == '%' ? TrimSide::suffix : TrimSide::prefix);
            }
            default:
                throw ExpansionError(fmt::format("unsupported modifier ({}) in substitution", chs));
            }
        }
        if (ch == '/') {
            const bool all = peek() == '/';
            if (all) {
                next();
            }
            std::string pattern =
                stop_on_nested('/', true, depth, "syntax error: missing '/' in ${}");
            std::string repl = stop_on_nested('}', true, depth, "syntax error: missing '}'");
            auto v = lookup(n);
            if (m_opts.skip_unset && !v) {
                return "${" + n + "/" + pattern + "/" + repl + "}";
            }
            return substitute(v ? *v : std::string_view(), pattern, repl, all);
        }
        throw ExpansionError(fmt::format("unsupported modifier ({}) in substitution", chs));
    }

    std::string substitute(std::string_view value, std::string_view pattern,
                           const std::string& repl, bool all) {
        Pattern re(pattern, true);
        const std::vector<char32_t> v = to_runes(value);
        if (!all) {
            auto m = re.search(v, 0, false);
            if (!m) {
                return std::string(value);
            }
            std::string out =
                from_runes(v, 0, m->first) + repl + from_runes(v, m->second, v.size());
            check_size(out.size());
            return out;
        }
        // Go's Regexp.ReplaceAllString loop.
        std::string out;
        std::size_t search = 0;
        std::size_t last_end = 0;
        while (search <= v.size()) {
            auto m = re.search(v, search, false);
            if (!m) {
                break;
            }
            for (std::size_t i = last_end; i < m->first; ++i) {
                append_rune(out, v[i]);
            }
            if (m->second > last_end || m->first == 0) {
                out += repl;
            }
            check_size(out.size());
            last_end = m->second;
            if (search + 1 > m->second) {
                search += 1;
            } else {
                search = m->second;
            }
        }
        for (std::size_t i = last_end; i < v.size(); ++i) {
            append_rune(out, v[i]);
        }
        check_size(out.size());
        return out;
    }

    std::string_view m_in;
    std::size_t m_pos = 0;
    std::string_view m_last;
    const EnvLookup& m_env;
    const ShellExpander::Options& m_opts;
    ShellExpander::Result& m_res;
    bool m_raw_escapes;
};

} // namespace

ShellExpander::Result ShellExpander::process(std::string_view input, const EnvLookup& env) const {
    Result res;
    Words words;
    ShellWord sw(input, env, m_opts, res);
    res.word = sw.run(&words);
    res.words = words.finish();
    return res;
}

std::string ShellExpander::word(std::string_view input, const EnvLookup& env) const {
    Result res;
    ShellWord sw(input, env, m_opts, res);
    return sw.run(nullptr); // no word splitting needed
}

std::vector<std::string> ShellExpander::words(std::string_view input, const EnvLookup& env) const {
    return process(input, env).words;
}

} // namespace strata::dockerfile
