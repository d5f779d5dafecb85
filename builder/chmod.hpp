// COPY/ADD --chmod: an octal mode ("0755"), or a symbolic mode as chmod(1)
// and BuildKit (Dockerfile 1.10 / BuildKit 0.13) accept it:
// "u+x,g-w", "a=rX", "go=", "+x": comma separated clauses of [ugoa]* then
// one or more [+-=][rwxXst]*.
//
// A symbolic mode is applied relative to each source file's own mode, in
// order, clause by clause; X adds execute only to directories and to files
// that already have an execute bit (as chmod(1)). No "who" letter means "a",
// with no umask (BuildKit applies the mode as written). An octal mode
// replaces the mode of every copied file and directory.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace strata::builder {

class ChmodSpec {
public:
    // Throws Error naming the text when it is neither octal nor symbolic.
    static ChmodSpec parse(const std::string& text);

    mode_t apply(mode_t mode, bool is_dir) const;
    bool symbolic() const noexcept { return !m_octal; }
    const std::string& text() const noexcept { return m_text; }

private:
    struct Op {
        mode_t who; // bits the clause may touch (0 = "a")
        char op;    // '+', '-', '='
        std::string perms;
    };
    std::string m_text;
    bool m_octal = false;
    mode_t m_mode = 0;
    std::vector<Op> m_ops;
};

} // namespace strata::builder
