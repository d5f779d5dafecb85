#include "runner/subid.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include "util/shared_library.hpp"
#include <cstdio>
#include <cstdlib>

namespace strata::runner {

namespace {

// shadow's <shadow/subid.h> (ABI 4): declared here so that building strata
// does not need libsubid-dev.
struct subid_range {
    unsigned long start;
    unsigned long count;
};

struct Api {
    strata::SharedLibrary lib{"libsubid.so.4", "libsubid4"};
    bool (*init)(const char*, FILE*) = nullptr;
    int (*uid_ranges)(const char*, subid_range**) = nullptr;
    int (*gid_ranges)(const char*, subid_range**) = nullptr;
};

Api load() {
    Api api;
    if (!api.lib.bind(api.init, "subid_init") ||
        !api.lib.bind(api.uid_ranges, "subid_get_uid_ranges") ||
        !api.lib.bind(api.gid_ranges, "subid_get_gid_ranges")) {
        return api;
    }
    // libsubid logs to the stream it is given (stderr by default): a library
    // does not print on strata's stderr. The stream is opened here, close-on-
    // exec, rather than left to libsubid, whose own /dev/null stream would be
    // inherited by every process strata starts.
    FILE* log = std::fopen("/dev/null", "we");
    if (log == nullptr || !api.init("strata", log)) {
        if (log != nullptr) {
            std::fclose(log);
        }
        api.lib.fail("subid_init failed");
    }
    return api;
}

// Loaded once, thread-safely; never unloaded.
const Api& api() {
    static const Api loaded = load();
    return loaded;
}

// A missing or unreadable file grants nothing, as before libsubid.
std::string file_or_empty(const char* path) {
    try {
        return fs::read_file(path, std::size_t{1} << 22);
    } catch (const Error&) {
        return {};
    }
}

} // namespace

std::string libsubid_load_error() {
    return api().lib.error();
}

std::optional<std::vector<IdRange>> libsubid_ranges(SubidKind kind, const std::string& owner) {
    const Api& a = api();
    if (!a.lib.loaded()) {
        return std::nullopt;
    }
    subid_range* ranges = nullptr;
    int n = kind == SubidKind::uid ? a.uid_ranges(owner.c_str(), &ranges)
                                   : a.gid_ranges(owner.c_str(), &ranges);
    if (n < 0) {
        std::free(ranges);
        return std::nullopt;
    }
    std::vector<IdRange> out;
    for (int i = 0; i < n; ++i) {
        const subid_range& r = ranges[i];
        if (r.count == 0 || r.start > 0xffffffffUL || r.count > 0xffffffffUL) {
            continue;
        }
        out.push_back({static_cast<std::uint32_t>(r.start), static_cast<std::uint32_t>(r.count)});
    }
    std::free(ranges); // libsubid allocates the array with malloc
    return out;
}

std::vector<IdRange> choose_subordinate_ranges(const std::optional<std::vector<IdRange>>& library,
                                               std::string_view file_content, std::string_view name,
                                               std::uint32_t id) {
    if (library) {
        return *library;
    }
    return subordinate_ranges(file_content, name, id);
}

std::vector<IdRange> user_subordinate_ranges(SubidKind kind, std::string_view name,
                                             std::uint32_t id) {
    const char* file = kind == SubidKind::uid ? "/etc/subuid" : "/etc/subgid";
    std::optional<std::vector<IdRange>> library =
        libsubid_ranges(kind, name.empty() ? std::to_string(id) : std::string(name));
    if (!library) {
        STRATA_LOG_DEBUG(
            "runner: libsubid gave no answer ({}): reading {}",
            libsubid_load_error().empty() ? "it reported an error" : libsubid_load_error(), file);
    }
    return choose_subordinate_ranges(library, library ? std::string() : file_or_empty(file), name,
                                     id);
}

} // namespace strata::runner
