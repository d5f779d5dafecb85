#include "runner/subid.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>

namespace strata::runner {

namespace {

// shadow's <shadow/subid.h> (ABI 4): declared here so that building strata
// does not need libsubid-dev.
struct subid_range {
    unsigned long start;
    unsigned long count;
};

struct Api {
    void* handle = nullptr;
    std::string error;
    bool (*init)(const char*, FILE*) = nullptr;
    int (*uid_ranges)(const char*, subid_range**) = nullptr;
    int (*gid_ranges)(const char*, subid_range**) = nullptr;
};

template <typename F> bool bind(Api& api, F& fn, const char* name) {
    fn = reinterpret_cast<F>(::dlsym(api.handle, name));
    if (fn == nullptr) {
        api.error = std::string("libsubid.so.4 has no ") + name;
        return false;
    }
    return true;
}

Api load() {
    Api api;
    api.handle = ::dlopen("libsubid.so.4", RTLD_NOW | RTLD_LOCAL);
    if (api.handle == nullptr) {
        const char* e = ::dlerror();
        api.error = std::string("cannot load libsubid (apt-get install libsubid4): ") +
                    (e != nullptr ? e : "dlopen failed");
        return api;
    }
    if (!bind(api, api.init, "subid_init") || !bind(api, api.uid_ranges, "subid_get_uid_ranges") ||
        !bind(api, api.gid_ranges, "subid_get_gid_ranges")) {
        ::dlclose(api.handle);
        api.handle = nullptr;
        return api;
    }
    // libsubid logs to the stream it is given (stderr by default): a library
    // does not print on strata's stderr. The stream is opened here, close-on-
    // exec, rather than left to libsubid, whose own /dev/null stream would be
    // inherited by every process strata starts.
    FILE* log = std::fopen("/dev/null", "we");
    if (log == nullptr || !api.init("strata", log)) {
        api.error = "subid_init failed";
        if (log != nullptr) {
            std::fclose(log);
        }
        ::dlclose(api.handle);
        api.handle = nullptr;
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
    return api().error;
}

std::optional<std::vector<IdRange>> libsubid_ranges(SubidKind kind, const std::string& owner) {
    const Api& a = api();
    if (a.handle == nullptr) {
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
