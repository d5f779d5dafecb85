#include "snapshot/reference.hpp"

#include "util/error.hpp"

#include <vector>

namespace strata::snapshot {

namespace {

constexpr std::string_view k_default_domain = "docker.io";
constexpr std::size_t k_max_name_length = 255;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component: [a-z0-9]+ ((\.|_|__|[-]+)[a-z0-9]+)*
bool valid_component(std::string_view c) {
    if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) {
        return false;
    }
    std::size_t i = 0;
    while (i < c.size()) {
        if (is_lower_alnum(c[i])) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < c.size() && !is_lower_alnum(c[j])) {
            ++j;
        }
        std::string_view sep = c.substr(i, j - i);
        bool ok = sep == "." || sep == "_" || sep == "__" ||
                  sep.find_first_not_of('-') == std::string_view::npos;
        if (!ok) {
            return false;
        }
        i = j;
    }
    return true;
}

// domain: host components ([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]) joined by '.',
// optional :port, or a bracketed IPv6 address with optional port.
bool valid_domain(std::string_view d) {
    if (d.empty()) {
        return false;
    }
    std::string_view host = d;
    if (d.front() == '[') {
        auto close = d.find(']');
        if (close == std::string_view::npos) {
            return false;
        }
        host = d.substr(0, close + 1);
        std::string_view rest = d.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':' || rest.size() < 2 ||
                rest.substr(1).find_first_not_of("0123456789") != std::string_view::npos) {
                return false;
            }
        }
        return host.substr(1, host.size() - 2).find_first_not_of("0123456789abcdefABCDEF:.") ==
               std::string_view::npos;
    }
    auto colon = d.rfind(':');
    if (colon != std::string_view::npos) {
        std::string_view port = d.substr(colon + 1);
        if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos) {
            return false;
        }
        host = d.substr(0, colon);
    }
    std::size_t i = 0;
    while (i <= host.size()) {
        auto dot = host.find('.', i);
        if (dot == std::string_view::npos) {
            dot = host.size();
        }
        std::string_view label = host.substr(i, dot - i);
        if (label.empty()) {
            return false;
        }
        auto alnum = [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        };
        if (!alnum(label.front()) || !alnum(label.back())) {
            return false;
        }
        for (char c : label) {
            if (!alnum(c) && c != '-') {
                return false;
            }
        }
        i = dot + 1;
    }
    return true;
}

bool valid_tag(std::string_view t) {
    if (t.empty() || t.size() > 128) {
        return false;
    }
    auto word = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    };
    if (!word(t.front())) {
        return false;
    }
    for (char c : t) {
        if (!word(c) && c != '.' && c != '-') {
            return false;
        }
    }
    return true;
}

[[noreturn]] void invalid(std::string_view text, std::string_view why) {
    throw UsageError("invalid reference format \"" + std::string(text) + "\": " + std::string(why));
}

} // namespace

Reference Reference::parse(std::string_view text, bool default_tag) {
    if (text.empty()) {
        invalid(text, "empty reference");
    }
    Reference r;
    std::string_view rest = text;
    if (auto at = rest.find('@'); at != std::string_view::npos) {
        auto d = formats::Digest::try_parse(rest.substr(at + 1));
        if (!d) {
            invalid(text, "bad digest after '@' (expected sha256:<64 hex digits>)");
        }
        r.m_digest = *d;
        rest = rest.substr(0, at);
    }
    // A tag is after the last ':' that comes after the last '/'.
    auto slash = rest.rfind('/');
    auto colon = rest.rfind(':');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
        std::string_view tag = rest.substr(colon + 1);
        if (!valid_tag(tag)) {
            invalid(text, "bad tag \"" + std::string(tag) + "\"");
        }
        r.m_tag = tag;
        rest = rest.substr(0, colon);
    }
    std::string_view name = rest;
    if (name.empty()) {
        invalid(text, "missing repository name");
    }
    auto first_slash = name.find('/');
    std::string_view first = name.substr(0, first_slash);
    if (first_slash != std::string_view::npos &&
        (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
         first.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos)) {
        if (!valid_domain(first)) {
            invalid(text, "bad registry host \"" + std::string(first) + "\"");
        }
        r.m_domain = first;
        name = name.substr(first_slash + 1);
    } else {
        r.m_domain = k_default_domain;
    }
    if (r.m_domain == "index.docker.io") {
        r.m_domain = k_default_domain;
    }
    std::size_t i = 0;
    std::vector<std::string_view> comps;
    while (i <= name.size()) {
        auto s = name.find('/', i);
        if (s == std::string_view::npos) {
            s = name.size();
        }
        std::string_view comp = name.substr(i, s - i);
        if (!valid_component(comp)) {
            for (char c : comp) {
                if (c >= 'A' && c <= 'Z') {
                    invalid(text, "repository name must be lowercase");
                }
            }
            invalid(text, "bad repository name component \"" + std::string(comp) + "\"");
        }
        comps.push_back(comp);
        i = s + 1;
    }
    r.m_path = std::string(name);
    if (r.m_domain == k_default_domain && comps.size() == 1) {
        r.m_path = "library/" + r.m_path;
    }
    if (r.m_domain.size() + 1 + r.m_path.size() > k_max_name_length) {
        invalid(text, "repository name longer than 255 characters");
    }
    if (r.m_tag.empty() && !r.m_digest && default_tag) {
        r.m_tag = "latest";
    }
    return r;
}

std::optional<Reference> Reference::try_parse(std::string_view text, bool default_tag) {
    try {
        return parse(text, default_tag);
    } catch (const UsageError&) {
        return std::nullopt;
    }
}

std::string Reference::full() const {
    std::string s = repository();
    if (!m_tag.empty()) {
        s += ':' + m_tag;
    }
    if (m_digest) {
        s += '@' + m_digest->str();
    }
    return s;
}

std::string Reference::familiar_repository() const {
    if (m_domain != k_default_domain) {
        return repository();
    }
    if (m_path.rfind("library/", 0) == 0 && m_path.find('/', 8) == std::string::npos) {
        return m_path.substr(8);
    }
    return m_path;
}

std::string Reference::familiar() const {
    std::string s = familiar_repository();
    if (!m_tag.empty()) {
        s += ':' + m_tag;
    }
    if (m_digest) {
        s += '@' + m_digest->str();
    }
    return s;
}

Reference Reference::with_tag(std::string tag) const {
    if (!valid_tag(tag)) {
        invalid(tag, "bad tag");
    }
    Reference r = *this;
    r.m_tag = std::move(tag);
    r.m_digest.reset();
    return r;
}

} // namespace strata::snapshot
