// Shell-word expansion with BuildKit's rules (frontend/dockerfile/shell): quotes,
// escapes, $VAR, ${VAR}, ${VAR:-w} ${VAR-w} ${VAR:+w} ${VAR+w} ${VAR:?m} ${VAR?m},
// ${VAR#p} ${VAR##p} ${VAR%p} ${VAR%%p}, ${VAR/p/r} ${VAR//p/r}. No command runs.
//
//   dockerfile::Env env{{"HOME", "/root"}};
//   dockerfile::ShellExpander sh;                       // escape '\', default limits
//   std::string s = sh.word("${HOME:-/}/x", env.lookup());   // "/root/x"
//   auto ws = sh.words("a \"b c\"", env.lookup());           // {"a", "b c"}
//   auto r = sh.process("$A$B", env.lookup());  // r.word, r.words, r.used, r.unset
//
// Errors (bad substitution, unterminated quote, ${X:?msg}, nesting deeper than
// Options::max_depth, a result over Options::max_size) throw ExpansionError.
#pragma once

#include "util/error.hpp"

#include <cstddef>
#include <functional>
#include <list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace strata::dockerfile {

class ExpansionError : public Error {
public:
    using Error::Error;
};

// Returns the value of a variable, or nullopt when it is unset. The view must stay
// valid until the expansion that asked for it returns.
using EnvLookup = std::function<std::optional<std::string_view>(std::string_view name)>;

// An ordered list of NAME=value pairs where a later set() replaces an earlier value
// in place (Docker's ENV semantics). Case-sensitive names, as on Linux.
class Env {
public:
    Env() = default;
    Env(std::initializer_list<std::pair<std::string, std::string>> init);
    Env(const Env& o);
    Env& operator=(const Env& o);
    Env(Env&&) noexcept = default;
    Env& operator=(Env&&) noexcept = default;

    void set(std::string_view name, std::string_view value); // O(1)
    void unset(std::string_view name);                       // O(1)
    std::optional<std::string_view> get(std::string_view name) const;
    bool empty() const { return m_entries.empty(); }
    std::size_t size() const { return m_entries.size(); }
    std::vector<std::pair<std::string, std::string>> entries() const; // in order
    std::vector<std::string> to_list() const;                         // "NAME=value"
    // A lookup function bound to this object (which must outlive it).
    EnvLookup lookup() const;

private:
    using List = std::list<std::pair<std::string, std::string>>;
    List m_entries;
    std::unordered_map<std::string_view, List::iterator> m_index; // views into m_entries
};

class ShellExpander {
public:
    struct Options {
        char escape = '\\';              // the Dockerfile's escape character ('\\' or '`')
        bool raw_quotes = false;         // keep quote characters in the output
        bool raw_escapes = false;        // keep escape characters in the output
        bool skip_unset = false;         // leave references to unset variables as written
        bool skip_quotes = false;        // quotes are ordinary characters (heredoc bodies)
        std::size_t max_depth = 64;      // nesting of ${...} inside ${...}
        std::size_t max_size = 1u << 20; // bytes in any intermediate or final result
    };

    struct Result {
        std::string word;               // the whole input as one word (ProcessWord)
        std::vector<std::string> words; // split into words (ProcessWords)
        std::set<std::string> used;     // variables that were referenced and set
        std::set<std::string> unset;    // variables that were referenced but unset
    };

    ShellExpander() = default;
    explicit ShellExpander(Options opts) : m_opts(opts) {}

    Result process(std::string_view input, const EnvLookup& env) const;
    std::string word(std::string_view input, const EnvLookup& env) const;
    std::vector<std::string> words(std::string_view input, const EnvLookup& env) const;

    const Options& options() const { return m_opts; }

private:
    Options m_opts;
};

} // namespace strata::dockerfile
