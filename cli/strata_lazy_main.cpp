// strata-lazy: an image of the store served read-only over FUSE straight
// from its compressed layer blobs (layerfs/lazy_fs.hpp).
//
//   strata-lazy [-f] [--suid-dev] [--fsname NAME] STORE MANIFEST-DIGEST MOUNTPOINT
//
// Daemonizes once the mount answers unless -f; exits when unmounted. The
// files of a lazily pulled layer are fetched from its registry with range
// requests as they are first read (registry::remote_fetch).

#include "layerfs/lazy_fs.hpp"
#include "registry/transfer.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

#include <cstdio>
#include <malloc.h>
#include <string>
#include <vector>

namespace {

constexpr const char* k_usage =
    "usage: strata-lazy [-f] [-d] [--suid-dev] [--fsname NAME] STORE MANIFEST-DIGEST MOUNTPOINT\n";

int run(int argc, char** argv) {
    strata::layerfs::LazyOptions opts;
    bool foreground = false;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(k_usage, stdout);
            return 0;
        }
        if (a == "-f") {
            foreground = true;
        } else if (a == "-d") {
            foreground = true;
            strata::log::set_level(strata::log::Level::debug);
        } else if (a == "--suid-dev") {
            opts.suid_dev = true;
        } else if (a == "--fsname" && i + 1 < argc) {
            opts.fsname = argv[++i];
        } else if (a.starts_with("-")) {
            throw strata::UsageError("unknown option " + a);
        } else {
            positional.push_back(a);
        }
    }
    if (positional.size() != 3) {
        std::fputs(k_usage, stderr);
        throw strata::UsageError("expected STORE MANIFEST-DIGEST MOUNTPOINT");
    }
    opts.remote = [](const strata::snapshot::PartialBlob& blob) {
        return strata::registry::remote_fetch(blob);
    };
    opts.store = positional[0];
    opts.manifest = positional[1];
    return strata::layerfs::serve_lazy(opts, positional[2], !foreground);
}

} // namespace

int main(int argc, char** argv) {
    // Decoded chunks (up to 1 MiB each, 32 MiB of them cached) come and go
    // all the time: from the heap, kept when freed, they are reused instead
    // of being mapped and faulted in afresh each time.
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    mallopt(M_ARENA_MAX, 2); // FUSE workers share: half the fresh pages of one arena each
    try {
        return run(argc, argv);
    } catch (const strata::UsageError& e) {
        std::fprintf(stderr, "strata-lazy: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "strata-lazy: error: %s\n", e.what());
        return 1;
    }
}
