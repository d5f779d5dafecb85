// bootstrap busybox: the built-in base image, made offline from Debian's
// busybox-static: /bin/busybox and its applet links (hard links, at the paths
// `busybox --list-full` gives), /etc/passwd, /etc/group, /tmp, /root and the
// usual empty directories. The layer is written straight from a list of
// entries (no staging directory), so it is the same bytes every time for the
// same busybox binary, and owned by root even when strata is not.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "formats/media_types.hpp"
#include "formats/tar.hpp"
#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"

#include <algorithm>
#include <elf.h>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

namespace strata::cli {

namespace {

constexpr std::string_view k_passwd = "root:x:0:0:root:/root:/bin/sh\n"
                                      "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                                      "bin:x:2:2:bin:/bin:/bin/false\n"
                                      "sys:x:3:3:sys:/dev:/bin/false\n"
                                      "sync:x:4:100:sync:/bin:/bin/sync\n"
                                      "mail:x:8:8:mail:/var/spool/mail:/bin/false\n"
                                      "www-data:x:33:33:www-data:/var/www:/bin/false\n"
                                      "operator:x:37:37:Operator:/var:/bin/false\n"
                                      "nobody:x:65534:65534:nobody:/home:/bin/false\n";

constexpr std::string_view k_group = "root:x:0:\n"
                                     "daemon:x:1:\n"
                                     "bin:x:2:\n"
                                     "sys:x:3:\n"
                                     "adm:x:4:\n"
                                     "tty:x:5:\n"
                                     "disk:x:6:\n"
                                     "lp:x:7:\n"
                                     "mail:x:8:\n"
                                     "kmem:x:9:\n"
                                     "wheel:x:10:root\n"
                                     "cdrom:x:11:\n"
                                     "dialout:x:18:\n"
                                     "floppy:x:19:\n"
                                     "video:x:28:\n"
                                     "audio:x:29:\n"
                                     "tape:x:32:\n"
                                     "www-data:x:33:\n"
                                     "operator:x:37:\n"
                                     "utmp:x:43:\n"
                                     "plugdev:x:46:\n"
                                     "staff:x:50:\n"
                                     "lock:x:54:\n"
                                     "netdev:x:82:\n"
                                     "users:x:100:\n"
                                     "nogroup:x:65534:\n";

// A busybox that needs a dynamic loader would not run in the image.
void require_static(const std::string& path) {
    UniqueFd fd = fs::open(path, O_RDONLY);
    Elf64_Ehdr eh{};
    if (fs::read_full(fd.get(), path, &eh, sizeof eh) != sizeof eh ||
        std::string_view(reinterpret_cast<const char*>(eh.e_ident), 4) != "\x7f" "ELF" ||
        eh.e_ident[EI_CLASS] != ELFCLASS64) {
        throw Error(path + ": not a 64-bit ELF executable");
    }
    for (int i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph{};
        off_t off = static_cast<off_t>(eh.e_phoff + static_cast<std::uint64_t>(i) * eh.e_phentsize);
        if (::pread(fd.get(), &ph, sizeof ph, off) != static_cast<ssize_t>(sizeof ph)) {
            throw Error(path + ": truncated ELF program header");
        }
        if (ph.p_type == PT_INTERP) {
            throw Error(path + " is dynamically linked; install Debian's busybox-static "
                               "(apt-get install busybox-static) or pass --busybox PATH");
        }
    }
}

std::string busybox_version(const std::string& path) {
    try {
        auto r = run_capture({"dpkg-query", "-W", "-f=${Version}", "busybox-static"}, false);
        if (r.status.success() && !r.out.empty() && path == "/bin/busybox") {
            return "Debian busybox-static " + r.out;
        }
    } catch (const Error&) {
    }
    auto r = run_capture({path}, true);
    std::string first = r.out.substr(0, r.out.find('\n'));
    return first.empty() ? "busybox" : first;
}

struct Options {
    std::string what;
    std::string tag = "busybox:latest";
    std::string busybox = "/bin/busybox";
    std::string compression = "gzip";
};

void bootstrap(Context& ctx, const Options& o) {
    if (o.what != "busybox") {
        throw UsageError("unknown bootstrap image \"" + o.what + "\" (available: busybox)");
    }
    snapshot::Reference name = snapshot::Reference::parse(o.tag);
    require_static(o.busybox);
    struct stat bst = fs::lstat(o.busybox);
    std::int64_t mtime = bst.st_mtim.tv_sec;
    std::string created = rfc3339(mtime);
    if (std::getenv("SOURCE_DATE_EPOCH") != nullptr) {
        created = now_rfc3339();
    }

    auto list = run_capture({o.busybox, "--list-full"});
    if (!list.status.success()) {
        throw Error(o.busybox + " --list-full " + list.status.describe());
    }
    std::set<std::string> applets;
    std::istringstream in(list.out);
    for (std::string line; std::getline(in, line);) {
        std::string p = clean_path("/" + line).substr(1);
        if (!p.empty() && p != "bin/busybox") {
            applets.insert(p);
        }
    }

    // Directories: the usual skeleton plus every applet's parent.
    std::map<std::string, std::uint32_t> dirs = {
        {"bin", 0755}, {"dev", 0755}, {"etc", 0755}, {"home", 0755}, {"proc", 0555},
        {"root", 0700}, {"sys", 0555}, {"tmp", 01777}, {"usr", 0755}, {"usr/bin", 0755},
        {"usr/sbin", 0755}, {"sbin", 0755}, {"var", 0755}, {"var/spool", 0755},
        {"var/spool/mail", 0755}, {"var/www", 0755}};
    for (const auto& a : applets) {
        for (auto slash = a.find('/'); slash != std::string::npos; slash = a.find('/', slash + 1)) {
            dirs.emplace(a.substr(0, slash), 0755);
        }
    }

    snapshot::Store store = open_store(ctx);
    snapshot::BlobWriter blob = store.new_blob();
    formats::TarWriter::Options wo;
    wo.compression = formats::parse_compression(o.compression);
    formats::TarWriter tar(blob.fd(), wo);
    // Entries in path order, directories before their contents.
    std::map<std::string, formats::TarEntry> entries;
    auto base = [&](const std::string& path, formats::EntryType type, std::uint32_t mode) {
        formats::TarEntry e;
        e.path = path;
        e.type = type;
        e.mode = mode;
        e.mtime_sec = mtime;
        return e;
    };
    for (const auto& [d, mode] : dirs) {
        entries.emplace(d, base(d, formats::EntryType::dir, mode));
    }
    {
        auto e = base("bin/busybox", formats::EntryType::file, 0755);
        e.size = static_cast<std::uint64_t>(bst.st_size);
        entries.emplace(e.path, e);
    }
    for (const auto& a : applets) {
        auto e = base(a, formats::EntryType::hardlink, 0755);
        e.linkname = "bin/busybox";
        entries.emplace(a, e);
    }
    auto passwd = base("etc/passwd", formats::EntryType::file, 0644);
    passwd.size = k_passwd.size();
    entries.emplace(passwd.path, passwd);
    auto group = base("etc/group", formats::EntryType::file, 0644);
    group.size = k_group.size();
    entries.emplace(group.path, group);

    // The busybox file must come before its hard links; "bin/busybox" sorts
    // after "bin/[" etc., so write it first among the bin/ entries.
    UniqueFd bb = fs::open(o.busybox, O_RDONLY);
    tar.add(entries.at("bin"));
    tar.add(entries.at("bin/busybox"), bb.get());
    for (const auto& [path, e] : entries) {
        if (path == "bin" || path == "bin/busybox") {
            continue;
        }
        if (path == "etc/passwd") {
            tar.add_data(e, k_passwd);
        } else if (path == "etc/group") {
            tar.add_data(e, k_group);
        } else {
            tar.add(e);
        }
    }
    formats::LayerDigests digests = tar.finish();
    blob.commit_trusted(digests.blob_digest);

    formats::Descriptor layer = layer_descriptor(digests, wo.compression);
    formats::ImageConfig config = host_image_config(created);
    config.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    config.config.cmd = std::vector<std::string>{"sh"};
    config.diff_ids = {digests.diff_id};
    config.history.push_back(formats::History{
        created, "strata bootstrap busybox (" + busybox_version(o.busybox) + ")", "", "", false});
    formats::Descriptor manifest = store.put_image(config, {layer});
    store.set_name(name, manifest);
    std::cout << "Bootstrapped " << name.familiar() << " from " << o.busybox << " ("
              << applets.size() << " applets)\n";
    std::cout << store.load(manifest).id().str() << "\n";
}

} // namespace

void register_bootstrap(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<Options>();
    auto* cmd = app.add_subcommand("bootstrap", "Make a base image offline (busybox, from Debian's busybox-static)");
    cmd->add_option("IMAGE", o->what, "What to make: busybox")->required();
    cmd->add_option("-t,--tag", o->tag, "Name for the image")->capture_default_str();
    cmd->add_option("--busybox", o->busybox, "The static busybox binary to use")->capture_default_str();
    cmd->add_option("--compression", o->compression, "Layer compression: zstd, gzip or none")
        ->capture_default_str();
    cmd->callback([&ctx, o] { bootstrap(ctx, *o); });
}

} // namespace strata::cli
