#include "runner/idmap.hpp"

#include "util/child.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <charconv>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

namespace strata::runner {

namespace {

bool parse_u32(std::string_view s, std::uint32_t& out) {
    if (s.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

std::string read_small_file(const char* path) {
    std::string out;
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return out;
    }
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 && out.size() < (1u << 22)) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

std::uint64_t count_of(const std::vector<IdMapLine>& lines) {
    std::uint64_t n = 0;
    for (const auto& l : lines) {
        n = std::max<std::uint64_t>(n, std::uint64_t{l.inside} + l.count);
    }
    return n;
}

std::vector<IdMapLine> lines_for(std::uint32_t own, const std::vector<IdRange>& ranges) {
    std::vector<IdMapLine> out{{0, own, 1}};
    std::uint64_t next = 1;
    for (const auto& r : ranges) {
        // The kernel takes at most 340 lines and 2^32-1 ids.
        if (out.size() >= 340 || next + r.count > 0xffffffffULL) {
            break;
        }
        out.push_back({static_cast<std::uint32_t>(next), r.start, r.count});
        next += r.count;
    }
    return out;
}

} // namespace

std::vector<IdRange> subordinate_ranges(std::string_view content, std::string_view name,
                                        std::uint32_t id) {
    std::vector<IdRange> out;
    std::string id_text = std::to_string(id);
    std::size_t i = 0;
    while (i < content.size()) {
        std::size_t j = content.find('\n', i);
        if (j == std::string_view::npos) {
            j = content.size();
        }
        std::string_view line = content.substr(i, j - i);
        i = j + 1;
        auto c1 = line.find(':');
        auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
        if (line.empty() || line[0] == '#' || c2 == std::string_view::npos) {
            continue;
        }
        std::string_view who = line.substr(0, c1);
        if (who != id_text && (name.empty() || who != name)) {
            continue;
        }
        IdRange r;
        if (!parse_u32(line.substr(c1 + 1, c2 - c1 - 1), r.start) ||
            !parse_u32(line.substr(c2 + 1), r.count) || r.count == 0) {
            continue;
        }
        out.push_back(r);
    }
    return out;
}

std::uint64_t RootlessIdMap::uid_count() const noexcept {
    return count_of(uid);
}

std::uint64_t RootlessIdMap::gid_count() const noexcept {
    return count_of(gid);
}

RootlessIdMap make_id_map(uid_t uid, gid_t gid, const std::vector<IdRange>& subuids,
                          const std::vector<IdRange>& subgids, const std::string& newuidmap,
                          const std::string& newgidmap) {
    RootlessIdMap m;
    if (subuids.empty() || subgids.empty() || newuidmap.empty() || newgidmap.empty()) {
        m.uid = {{0, uid, 1}};
        m.gid = {{0, gid, 1}};
        return m;
    }
    m.uid = lines_for(uid, subuids);
    m.gid = lines_for(gid, subgids);
    m.newuidmap = newuidmap;
    m.newgidmap = newgidmap;
    return m;
}

RootlessIdMap rootless_id_map() {
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    std::string name;
    {
        struct passwd pw;
        struct passwd* found = nullptr;
        std::vector<char> buf(16384);
        if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
            name = pw.pw_name;
        }
    }
    auto subuids = subordinate_ranges(read_small_file("/etc/subuid"), name, uid);
    auto subgids = subordinate_ranges(read_small_file("/etc/subgid"), name, uid);
    auto newuidmap = find_program("newuidmap");
    auto newgidmap = find_program("newgidmap");
    RootlessIdMap m =
        make_id_map(uid, gid, subuids, subgids, newuidmap.value_or(""), newgidmap.value_or(""));
    if (!m.full()) {
        const char* why = subuids.empty()   ? "/etc/subuid grants no range to"
                          : subgids.empty() ? "/etc/subgid grants no range to"
                          : !newuidmap      ? "newuidmap (package uidmap) is missing for"
                                            : "newgidmap (package uidmap) is missing for";
        STRATA_LOG_DEBUG("runner: {} user {} (uid {}): mapping only container uid/gid 0 to "
                         "{}:{}; other users need root",
                         why, name.empty() ? "?" : name, uid, uid, gid);
    } else {
        STRATA_LOG_DEBUG("runner: mapping container uids 0-{} and gids 0-{} through {} and {}",
                         m.uid_count() - 1, m.gid_count() - 1, m.newuidmap, m.newgidmap);
    }
    return m;
}

std::string id_map_text(const std::vector<IdMapLine>& lines) {
    std::string out;
    for (const auto& l : lines) {
        out += std::to_string(l.inside) + " " + std::to_string(l.outside) + " " +
               std::to_string(l.count) + "\n";
    }
    return out;
}

} // namespace strata::runner
