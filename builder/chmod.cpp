#include "builder/chmod.hpp"

#include "util/error.hpp"

#include <sys/stat.h>

namespace strata::builder {

ChmodSpec ChmodSpec::parse(const std::string& text) {
    ChmodSpec spec;
    spec.m_text = text;
    auto bad = [&]() -> Error {
        return Error("--chmod=" + text +
                     ": not a mode (octal such as 0755, or symbolic such as u+x,g-w or a=rX)");
    };
    if (text.empty()) {
        throw bad();
    }
    if (text.find_first_not_of("01234567") == std::string::npos) {
        if (text.size() > 4) {
            throw bad();
        }
        spec.m_octal = true;
        spec.m_mode = static_cast<mode_t>(std::stoul(text, nullptr, 8));
        return spec;
    }
    std::size_t i = 0;
    while (true) {
        mode_t who = 0;
        for (; i < text.size(); ++i) {
            char c = text[i];
            if (c == 'u') {
                who |= S_ISUID | S_IRWXU;
            } else if (c == 'g') {
                who |= S_ISGID | S_IRWXG;
            } else if (c == 'o') {
                who |= S_ISVTX | S_IRWXO;
            } else if (c == 'a') {
                who |= 07777;
            } else {
                break;
            }
        }
        if (i >= text.size() || (text[i] != '+' && text[i] != '-' && text[i] != '=')) {
            throw bad();
        }
        while (i < text.size() && (text[i] == '+' || text[i] == '-' || text[i] == '=')) {
            Op op{who == 0 ? mode_t(07777) : who, text[i], {}};
            for (++i; i < text.size() && std::string("rwxXst").find(text[i]) != std::string::npos;
                 ++i) {
                op.perms += text[i];
            }
            spec.m_ops.push_back(std::move(op));
        }
        if (i == text.size()) {
            return spec;
        }
        if (text[i] != ',') {
            throw bad();
        }
        ++i;
    }
}

mode_t ChmodSpec::apply(mode_t mode, bool is_dir) const {
    if (m_octal) {
        return m_mode;
    }
    mode &= 07777;
    for (const Op& op : m_ops) {
        mode_t bits = 0;
        for (char c : op.perms) {
            switch (c) {
            case 'r':
                bits |= 0444;
                break;
            case 'w':
                bits |= 0222;
                break;
            case 'x':
                bits |= 0111;
                break;
            case 'X':
                // Directories, and files that some class may already execute.
                if (is_dir || (mode & 0111) != 0) {
                    bits |= 0111;
                }
                break;
            case 's':
                bits |= S_ISUID | S_ISGID;
                break;
            case 't':
                bits |= S_ISVTX;
                break;
            }
        }
        bits &= op.who;
        if (op.op == '+') {
            mode |= bits;
        } else if (op.op == '-') {
            mode &= ~bits;
        } else {
            // '=': the classes named lose every permission bit not listed
            // (and their set-id/sticky bit).
            mode = (mode & ~op.who) | bits;
        }
    }
    return mode;
}

} // namespace strata::builder
