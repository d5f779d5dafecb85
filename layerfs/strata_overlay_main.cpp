// strata-overlay: strata's FUSE union filesystem as a drop-in for
// fuse-overlayfs.
//
//   strata-overlay [-f] [-d] -o lowerdir=A:B[,upperdir=U,workdir=W][,...] MOUNTPOINT
//   strata-overlay SOURCE MOUNTPOINT -o ...     (as mount.fuse3 runs "fuse.strata-overlay")
//
// Read-only without upperdir. Daemonizes once the mount is live unless -f;
// the process exits when the filesystem is unmounted.

#include "layerfs/union_fs.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* k_usage =
    "usage: strata-overlay [-f] [-d] -o lowerdir=A:B[,upperdir=U,workdir=W] MOUNTPOINT\n"
    "  lowerdir=A:B   layers in overlayfs form, top-most first (\"\\:\" escapes a colon)\n"
    "  upperdir=U     writable layer (with workdir=W on the same filesystem)\n"
    "  timeout=S      entry/attribute cache timeout in seconds\n"
    "  fsname=NAME    source shown in /proc/self/mountinfo\n"
    "  ro             read-only even with an upperdir\n"
    "  -f             stay in the foreground; -d: trace every request (implies -f)\n";

// Splits a -o value on commas not escaped with a backslash (the escape stays,
// lowerdir parsing consumes it).
std::vector<std::string> split_options(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
            cur += s[i];
            cur += s[++i];
        } else if (s[i] == ',') {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += s[i];
        }
    }
    out.push_back(cur);
    return out;
}

std::string unescape(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
            ++i;
        }
        out += s[i];
    }
    return out;
}

int run(int argc, char** argv) {
    strata::layerfs::UnionOptions opts;
    bool foreground = false;
    bool read_only = false;
    std::vector<std::string> positional;
    std::vector<std::string> option_strings;
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
            strata::log::set_level(strata::log::Level::trace);
        } else if (a == "-o") {
            if (i + 1 >= argc) {
                throw strata::UsageError("-o needs a value");
            }
            option_strings.emplace_back(argv[++i]);
        } else if (a.starts_with("-o")) {
            option_strings.push_back(a.substr(2));
        } else if (a.starts_with("-")) {
            STRATA_LOG_DEBUG("strata-overlay: ignoring option {}", a);
        } else {
            positional.push_back(a);
        }
    }
    for (const auto& os : option_strings) {
        for (const auto& o : split_options(os)) {
            auto eq = o.find('=');
            std::string key = o.substr(0, eq);
            std::string value = eq == std::string::npos ? "" : o.substr(eq + 1);
            if (key == "lowerdir") {
                opts.lowers = strata::layerfs::split_layer_list(value);
            } else if (key == "upperdir") {
                opts.upper = unescape(value);
            } else if (key == "workdir") {
                opts.work = unescape(value);
            } else if (key == "timeout") {
                opts.timeout = std::stod(value);
            } else if (key == "fsname") {
                opts.fsname = unescape(value);
            } else if (key == "ro") {
                read_only = true;
            } else if (key == "debug") {
                foreground = true;
                strata::log::set_level(strata::log::Level::trace);
            } else if (key == "allow_other") {
                opts.allow_other = true;
            } else if (key == "uidmapping" || key == "gidmapping" || key == "squash_to_root" ||
                       key == "squash_to_uid" || key == "squash_to_gid") {
                STRATA_LOG_WARN("strata-overlay: option {} is not supported and is ignored", key);
            } else if (!key.empty()) {
                STRATA_LOG_DEBUG("strata-overlay: ignoring option {}", o);
            }
        }
    }
    if (positional.empty() || positional.size() > 2) {
        std::fputs(k_usage, stderr);
        throw strata::UsageError("expected one MOUNTPOINT (or SOURCE MOUNTPOINT)");
    }
    if (opts.lowers.empty()) {
        throw strata::UsageError("no lowerdir= given");
    }
    if (read_only) {
        opts.upper.clear();
        opts.work.clear();
    }
    return strata::layerfs::serve_union(opts, positional.back(), !foreground);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const strata::UsageError& e) {
        std::fprintf(stderr, "strata-overlay: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "strata-overlay: error: %s\n", e.what());
        return 1;
    }
}
