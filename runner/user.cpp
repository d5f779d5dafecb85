#include "runner/user.hpp"

#include "util/error.hpp"
#include "util/root.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <limits>
#include <unistd.h>

namespace strata::runner {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (true) {
        std::size_t j = s.find(sep, i);
        if (j == std::string_view::npos) {
            out.push_back(s.substr(i));
            return out;
        }
        out.push_back(s.substr(i, j - i));
        i = j + 1;
    }
}

std::optional<std::uint32_t> parse_id(std::string_view s) {
    if (s.empty() || s.size() > 10) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() ||
        v >= std::numeric_limits<std::uint32_t>::max()) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(v);
}

struct PasswdEntry {
    std::string_view name;
    std::uint32_t uid;
    std::uint32_t gid;
    std::string_view home;
};

struct GroupEntry {
    std::string_view name;
    std::uint32_t gid;
    std::vector<std::string_view> members;
};

// Lines that do not parse are skipped, as glibc and runc do.
std::vector<PasswdEntry> parse_passwd(std::string_view text) {
    std::vector<PasswdEntry> out;
    for (auto line : split(text, '\n')) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        auto f = split(line, ':');
        if (f.size() < 4) {
            continue;
        }
        auto uid = parse_id(f[2]);
        auto gid = parse_id(f[3]);
        if (!uid || !gid) {
            continue;
        }
        out.push_back({f[0], *uid, *gid, f.size() > 5 ? f[5] : std::string_view{}});
    }
    return out;
}

std::vector<GroupEntry> parse_group(std::string_view text) {
    std::vector<GroupEntry> out;
    for (auto line : split(text, '\n')) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        auto f = split(line, ':');
        if (f.size() < 3) {
            continue;
        }
        auto gid = parse_id(f[2]);
        if (!gid) {
            continue;
        }
        GroupEntry g{f[0], *gid, {}};
        if (f.size() > 3 && !f[3].empty()) {
            for (auto m : split(f[3], ',')) {
                if (!m.empty()) {
                    g.members.push_back(m);
                }
            }
        }
        out.push_back(std::move(g));
    }
    return out;
}

std::string read_in_root(int rootfd, const char* path) {
    UniqueFd fd;
    try {
        fd = open_in_root(rootfd, path, O_RDONLY | O_CLOEXEC);
    } catch (const SysError& e) {
        if (e.error_code() == ENOENT || e.error_code() == ENOTDIR) {
            return {};
        }
        throw;
    }
    std::string out;
    char buf[8192];
    while (true) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("read", path);
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > (64u << 20)) {
            throw Error(std::string(path) + ": larger than 64 MiB");
        }
    }
    return out;
}

} // namespace

ExecUser resolve_user_from(std::string_view user, std::string_view passwd, std::string_view group) {
    ExecUser out;
    std::string_view user_part = user;
    std::optional<std::string_view> group_part;
    if (auto colon = user.find(':'); colon != std::string_view::npos) {
        user_part = user.substr(0, colon);
        group_part = user.substr(colon + 1);
        if (group_part->empty()) {
            throw Error("invalid user \"" + std::string(user) + "\": empty group");
        }
    }
    auto users = parse_passwd(passwd);
    auto groups = parse_group(group);

    if (user_part.empty()) {
        user_part = "0";
    }
    const PasswdEntry* pw = nullptr;
    auto numeric_uid = parse_id(user_part);
    for (const auto& e : users) {
        if (numeric_uid ? e.uid == *numeric_uid : e.name == user_part) {
            pw = &e;
            break;
        }
    }
    // A uid that passwd does not know is used as is (Docker: gid 0, home /).
    if (pw == nullptr && !numeric_uid) {
        throw Error("unable to find user " + std::string(user_part) +
                    ": no matching entries in passwd file");
    }
    if (pw != nullptr) {
        out.uid = pw->uid;
        out.gid = pw->gid;
        out.home = pw->home.empty() ? "/" : std::string(pw->home);
        out.name = std::string(pw->name);
    } else {
        out.uid = *numeric_uid;
        out.gid = 0;
        out.home = "/"; // runc's default when passwd has no entry
    }

    if (group_part) {
        auto numeric_gid = parse_id(*group_part);
        const GroupEntry* gr = nullptr;
        for (const auto& g : groups) {
            if (numeric_gid ? g.gid == *numeric_gid : g.name == *group_part) {
                gr = &g;
                break;
            }
        }
        if (gr == nullptr && !numeric_gid) {
            throw Error("unable to find group " + std::string(*group_part) +
                        ": no matching entries in group file");
        }
        out.gid = gr != nullptr ? gr->gid : *numeric_gid;
    }

    out.groups.push_back(out.gid);
    if (!out.name.empty()) {
        for (const auto& g : groups) {
            if (std::find(g.members.begin(), g.members.end(), out.name) != g.members.end() &&
                std::find(out.groups.begin(), out.groups.end(), g.gid) == out.groups.end()) {
                out.groups.push_back(g.gid);
            }
        }
    }
    return out;
}

ExecUser resolve_user(int rootfd, std::string_view user) {
    std::string passwd = read_in_root(rootfd, "/etc/passwd");
    std::string group = read_in_root(rootfd, "/etc/group");
    return resolve_user_from(user, passwd, group);
}

} // namespace strata::runner
