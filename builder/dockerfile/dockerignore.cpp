#include "builder/dockerfile/dockerignore.hpp"

#include "builder/dockerfile/error.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/text.hpp"

#include <cerrno>
#include <cstdlib>
#include <sys/stat.h>

#include <fmt/format.h>

namespace strata::dockerfile {

struct DockerIgnore::Token {
    enum class Kind { Lit, Any, Star, StarAll, Opt, Class };
    Kind kind = Kind::Lit;
    char32_t c = 0;
    std::size_t jump = 0;
    bool negated = false;
    std::vector<std::pair<char32_t, char32_t>> ranges;
};

struct DockerIgnore::Pattern {
    enum class Type { Exact, Prefix, Suffix, Regexp };
    std::string cleaned;
    bool exclusion = false;
    Type type = Type::Exact;
    std::vector<Token> tokens;
    int line = 0;
};

DockerIgnore::DockerIgnore() = default;
DockerIgnore::~DockerIgnore() = default;
DockerIgnore::DockerIgnore(const DockerIgnore&) = default;
DockerIgnore::DockerIgnore(DockerIgnore&&) noexcept = default;
DockerIgnore& DockerIgnore::operator=(const DockerIgnore&) = default;
DockerIgnore& DockerIgnore::operator=(DockerIgnore&&) noexcept = default;

namespace {

using Token = DockerIgnore::Token;
using Pattern = DockerIgnore::Pattern;

std::vector<char32_t> runes(std::string_view s) {
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

bool should_escape(char32_t c) {
    return c == '.' || c == '+' || c == '(' || c == ')' || c == '|' || c == '{' || c == '}' ||
           c == '$';
}

// Compiles a cleaned pattern like patternmatcher's Pattern.compile; throws Error on a
// pattern filepath.Match would reject.
void compile(Pattern& p) {
    const std::vector<char32_t> r = runes(p.cleaned);
    Pattern::Type type = Pattern::Type::Exact;
    std::vector<Token> toks;
    auto lit = [&](char32_t c) {
        Token t;
        t.kind = Token::Kind::Lit;
        t.c = c;
        toks.push_back(t);
    };
    std::size_t i = 0;
    for (std::size_t iter = 0; i < r.size(); ++iter) {
        const char32_t ch = r[i++];
        if (ch == '*') {
            if (i < r.size() && r[i] == '*') {
                ++i;
                if (i < r.size() && r[i] == '/') {
                    ++i;
                }
                if (i >= r.size()) {
                    if (type == Pattern::Type::Exact) {
                        type = Pattern::Type::Prefix;
                    } else {
                        Token t;
                        t.kind = Token::Kind::StarAll;
                        toks.push_back(t);
                        type = Pattern::Type::Regexp;
                    }
                } else {
                    Token opt;
                    opt.kind = Token::Kind::Opt;
                    opt.jump = toks.size() + 3;
                    toks.push_back(opt);
                    Token all;
                    all.kind = Token::Kind::StarAll;
                    toks.push_back(all);
                    lit('/');
                    type = Pattern::Type::Regexp;
                }
                if (iter == 0) {
                    type = Pattern::Type::Suffix;
                }
            } else {
                Token t;
                t.kind = Token::Kind::Star;
                toks.push_back(t);
                type = Pattern::Type::Regexp;
            }
        } else if (ch == '?') {
            Token t;
            t.kind = Token::Kind::Any;
            toks.push_back(t);
            type = Pattern::Type::Regexp;
        } else if (should_escape(ch)) {
            lit(ch);
        } else if (ch == '\\') {
            if (i >= r.size()) {
                throw Error("a trailing \\ escapes nothing");
            }
            lit(r[i++]);
            type = Pattern::Type::Regexp;
        } else if (ch == '[') {
            Token t;
            t.kind = Token::Kind::Class;
            if (i < r.size() && r[i] == '^') {
                t.negated = true;
                ++i;
            }
            bool closed = false;
            bool first = true;
            while (i < r.size()) {
                char32_t lo = r[i];
                if (lo == ']' && !first) {
                    ++i;
                    closed = true;
                    break;
                }
                if (lo == ']' || lo == '-') {
                    throw Error("bad character class");
                }
                first = false;
                ++i;
                if (lo == '\\') {
                    if (i >= r.size()) {
                        break;
                    }
                    lo = r[i++];
                }
                char32_t hi = lo;
                if (i + 1 < r.size() && r[i] == '-' && r[i + 1] != ']') {
                    ++i;
                    hi = r[i++];
                    if (hi == '\\') {
                        if (i >= r.size()) {
                            break;
                        }
                        hi = r[i++];
                    }
                    if (hi < lo) {
                        throw Error("bad range in character class");
                    }
                }
                t.ranges.emplace_back(lo, hi);
            }
            if (!closed) {
                throw Error("unterminated character class");
            }
            toks.push_back(std::move(t));
            type = Pattern::Type::Regexp;
        } else if (ch == ']') {
            lit(ch);
            type = Pattern::Type::Regexp;
        } else {
            lit(ch);
        }
    }
    p.type = type;
    p.tokens = std::move(toks);
}

bool class_match(const Token& t, char32_t c) {
    bool in = false;
    for (const auto& [lo, hi] : t.ranges) {
        if (c >= lo && c <= hi) {
            in = true;
            break;
        }
    }
    return in != t.negated;
}

// Whole-string match of the token program (an NFA simulation, linear in the path).
bool regexp_match(const std::vector<Token>& toks, const std::vector<char32_t>& s) {
    const std::size_t n = toks.size();
    std::vector<char> cur(n + 1, 0);
    std::vector<char> nxt(n + 1, 0);
    std::vector<std::size_t> stack;
    auto add = [&](std::vector<char>& set, std::size_t st) {
        stack.push_back(st);
        while (!stack.empty()) {
            const std::size_t k = stack.back();
            stack.pop_back();
            if (set[k]) {
                continue;
            }
            set[k] = 1;
            if (k == n) {
                continue;
            }
            const Token& t = toks[k];
            if (t.kind == Token::Kind::Star || t.kind == Token::Kind::StarAll) {
                stack.push_back(k + 1);
            } else if (t.kind == Token::Kind::Opt) {
                stack.push_back(k + 1);
                stack.push_back(t.jump);
            }
        }
    };
    add(cur, 0);
    for (char32_t c : s) {
        std::fill(nxt.begin(), nxt.end(), 0);
        bool any = false;
        for (std::size_t k = 0; k < n; ++k) {
            if (!cur[k]) {
                continue;
            }
            const Token& t = toks[k];
            switch (t.kind) {
            case Token::Kind::Lit:
                if (c == t.c) {
                    add(nxt, k + 1);
                    any = true;
                }
                break;
            case Token::Kind::Any:
                if (c != '/') {
                    add(nxt, k + 1);
                    any = true;
                }
                break;
            case Token::Kind::Star:
                if (c != '/') {
                    add(nxt, k);
                    any = true;
                }
                break;
            case Token::Kind::StarAll:
                if (c != '\n') {
                    add(nxt, k);
                    any = true;
                }
                break;
            case Token::Kind::Class:
                if (class_match(t, c)) {
                    add(nxt, k + 1);
                    any = true;
                }
                break;
            case Token::Kind::Opt:
                break;
            }
        }
        std::swap(cur, nxt);
        if (!any) {
            return false;
        }
    }
    return cur[n] != 0;
}

bool pattern_match(const Pattern& p, std::string_view path) {
    switch (p.type) {
    case Pattern::Type::Exact:
        return path == p.cleaned;
    case Pattern::Type::Prefix:
        return path.starts_with(std::string_view(p.cleaned).substr(0, p.cleaned.size() - 2));
    case Pattern::Type::Suffix: {
        const std::string_view suffix = std::string_view(p.cleaned).substr(2);
        if (path.ends_with(suffix)) {
            return true;
        }
        return !suffix.empty() && suffix[0] == '/' && path == suffix.substr(1);
    }
    case Pattern::Type::Regexp:
        return regexp_match(p.tokens, runes(path));
    }
    return false;
}

std::vector<std::string_view> split_slash(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t b = 0;
    while (true) {
        const auto e = s.find('/', b);
        out.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
        if (e == std::string_view::npos) {
            return out;
        }
        b = e + 1;
    }
}

} // namespace

DockerIgnore DockerIgnore::parse(std::string_view content, const std::string& file) {
    DockerIgnore ig;
    ig.m_file = file;
    if (content.starts_with("\xEF\xBB\xBF")) {
        content.remove_prefix(3);
    }
    int lineno = 0;
    std::size_t b = 0;
    while (b < content.size()) {
        std::size_t e = content.find('\n', b);
        std::string_view raw =
            content.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
        b = e == std::string_view::npos ? content.size() : e + 1;
        ++lineno;
        if (!raw.empty() && raw.back() == '\r') {
            raw.remove_suffix(1);
        }
        if (raw.size() > 65535) {
            throw DockerfileError(file, lineno, 1, "line longer than 65535 bytes",
                                  std::string(raw.substr(0, 80)));
        }
        if (raw.starts_with("#")) {
            continue;
        }
        std::string_view pat = text::trim_space(raw);
        if (pat.empty()) {
            continue;
        }
        Pattern p;
        p.line = lineno;
        if (pat[0] == '!') {
            p.exclusion = true;
            pat = text::trim_space(pat.substr(1));
            if (pat.empty()) {
                throw DockerfileError(file, lineno, 1, "illegal exclusion pattern: \"!\"",
                                      std::string(raw));
            }
        }
        std::string cleaned = clean_path(pat);
        if (cleaned.size() > 1 && cleaned[0] == '/') {
            cleaned.erase(0, 1);
        }
        p.cleaned = std::move(cleaned);
        try {
            compile(p);
        } catch (const Error& err) {
            throw DockerfileError(file, lineno, 1,
                                  fmt::format("invalid pattern \"{}\": {}", p.cleaned, err.what()),
                                  std::string(raw));
        }
        ig.m_has_exceptions = ig.m_has_exceptions || p.exclusion;
        ig.m_patterns.push_back(std::move(p));
    }
    return ig;
}

std::optional<DockerIgnore> DockerIgnore::load_for(const std::string& context_dir,
                                                   const std::string& dockerfile_path) {
    constexpr std::size_t k_max = 16u << 20;
    auto present = [](const std::string& file) {
        struct stat st {};
        if (::lstat(file.c_str(), &st) == 0) {
            return true;
        }
        if (errno != ENOENT) {
            throw_errno("cannot read the ignore file", file);
        }
        return false;
    };
    auto load = [&](const std::string& file, const std::string& dir) {
        check_inside(file, dir, "the ignore file");
        try {
            return parse(fs::read_file(file, k_max), file);
        } catch (const SysError& e) {
            throw Error("cannot read the ignore file: " + std::string(e.what()));
        }
    };
    if (!dockerfile_path.empty()) {
        const std::string specific = dockerfile_path + ".dockerignore";
        if (present(specific)) {
            return load(specific, fs::dirname(specific));
        }
    }
    const std::string common = context_dir + "/.dockerignore";
    if (present(common)) {
        return load(common, context_dir);
    }
    return std::nullopt;
}

void DockerIgnore::check_inside(const std::string& file, const std::string& dir,
                                const std::string& what) {
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) {
        return; // read as it is (a missing file is the reader's error)
    }
    auto real = [](const std::string& p) -> std::optional<std::string> {
        char* r = ::realpath(p.c_str(), nullptr);
        if (r == nullptr) {
            return std::nullopt;
        }
        std::string out = r;
        std::free(r);
        return out;
    };
    auto base = real(dir);
    auto target = real(file);
    if (!target) {
        throw Error("cannot read " + what + " " + file + ": a symlink that leads nowhere");
    }
    if (!base || !(*target == *base || target->starts_with(*base + "/"))) {
        throw Error(what + " " + file + " is a symlink to " + *target + ", outside " + dir);
    }
}

bool DockerIgnore::excluded(std::string_view path_in) const {
    const std::string path = clean_path(path_in);
    std::string_view file = path;
    while (file.starts_with("/")) {
        file.remove_prefix(1);
    }
    if (file.empty() || file == ".") {
        return false; // never exclude the context root itself
    }
    const auto slash = file.rfind('/');
    const std::string_view parent =
        slash == std::string_view::npos ? std::string_view(".") : file.substr(0, slash);
    std::vector<std::size_t> prefixes; // end offsets of each parent prefix
    if (parent != ".") {
        for (std::size_t i = 0; i <= parent.size(); ++i) {
            if (i == parent.size() || parent[i] == '/') {
                prefixes.push_back(i);
            }
        }
    }
    bool matched = false;
    for (const Pattern& p : m_patterns) {
        if (p.exclusion != matched) {
            continue;
        }
        bool match = pattern_match(p, file);
        if (!match) {
            for (std::size_t end : prefixes) {
                if (pattern_match(p, parent.substr(0, end))) {
                    match = true;
                    break;
                }
            }
        }
        if (match) {
            matched = !p.exclusion;
        }
    }
    return matched;
}

bool DockerIgnore::may_reinclude_under(std::string_view dir_in) const {
    if (!m_has_exceptions) {
        return false;
    }
    const std::string dir = clean_path(dir_in);
    std::string_view d = dir;
    while (d.starts_with("/")) {
        d.remove_prefix(1);
    }
    const auto dcomps = d.empty() || d == "." ? std::vector<std::string_view>{} : split_slash(d);
    for (const Pattern& p : m_patterns) {
        if (!p.exclusion) {
            continue;
        }
        const auto pcomps = split_slash(p.cleaned);
        bool possible = true;
        for (std::size_t j = 0; j < pcomps.size() && j < dcomps.size(); ++j) {
            if (pcomps[j].find("**") != std::string_view::npos) {
                return true;
            }
            Pattern comp;
            comp.cleaned = std::string(pcomps[j]);
            try {
                compile(comp);
            } catch (const Error&) {
                return true; // be conservative
            }
            if (!pattern_match(comp, dcomps[j])) {
                possible = false;
                break;
            }
        }
        if (possible) {
            return true;
        }
    }
    return false;
}

std::vector<std::string> DockerIgnore::patterns() const {
    std::vector<std::string> out;
    for (const Pattern& p : m_patterns) {
        out.push_back((p.exclusion ? "!" : "") + p.cleaned);
    }
    return out;
}

} // namespace strata::dockerfile
