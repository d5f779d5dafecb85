// `strata layer apply` and `strata layer create`: working with single OCI
// layer tarballs, outside the store.
#include "cli/commands.hpp"
#include "cli/common.hpp"

#include "formats/compression.hpp"
#include "formats/tar.hpp"
#include "snapshot/layer_apply.hpp"
#include "snapshot/layer_diff.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/scope.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <iostream>
#include <unistd.h>

namespace strata::cli {

namespace {

struct ApplyArgs {
    std::string layer;
    std::string dir;
    bool overlay = false;
    bool userxattr = false;
};

struct CreateArgs {
    std::string dir;
    std::string parent;
    std::string output;
    std::string compression = "zstd";
    int level = 0;
    int threads = 0;
    bool upper = false;
    bool chunked = false;
};

void run_apply(const ApplyArgs& a) {
    UniqueFd in;
    int fd = STDIN_FILENO;
    if (a.layer != "-") {
        in = fs::open(a.layer, O_RDONLY);
        fd = in.get();
    }
    fs::mkdirs(a.dir);
    snapshot::ApplyOptions opts;
    opts.mode = a.overlay ? snapshot::WhiteoutMode::overlay : snapshot::WhiteoutMode::flatten;
    opts.userxattr = a.userxattr;
    opts.layer_name = a.layer == "-" ? std::string("(stdin)") : a.layer;
    snapshot::ApplyStats s = snapshot::apply_layer(fd, a.dir, opts);
    std::cout << "applied " << s.entries << " entries (" << s.files << " files, " << s.dirs
              << " directories, " << s.symlinks << " symlinks, " << s.hardlinks << " hard links, "
              << s.whiteouts << " whiteouts, " << s.bytes << " bytes) from a "
              << formats::to_string(s.compression) << " layer\n";
    if (s.digests) {
        std::cout << "diff-id " << s.digests->diff_id.str() << "\n";
        std::cout << "digest  " << s.digests->blob_digest.str() << "\n";
    }
    if (s.owners_skipped + s.devices_skipped + s.xattrs_skipped > 0) {
        std::cerr << "strata: warning: not applied for lack of privilege or support: "
                  << s.owners_skipped << " owners, " << s.devices_skipped << " devices, "
                  << s.xattrs_skipped << " xattrs\n";
    }
}

void run_create(const CreateArgs& a) {
    formats::TarWriter::Options opts;
    opts.compression = formats::parse_compression(a.compression);
    opts.level = a.level;
    opts.threads = a.threads;
    opts.clamp_mtime = source_date_epoch();
    opts.chunked = a.chunked;
    snapshot::ChunkedPack chunked;
    if (!fs::is_dir(a.dir)) {
        throw UsageError("not a directory: " + a.dir);
    }
    if (!a.parent.empty() && !fs::is_dir(a.parent)) {
        throw UsageError("not a directory: " + a.parent);
    }
    if (a.upper && !a.parent.empty()) {
        throw UsageError("--upper and --parent cannot be used together");
    }
    auto make = [&](int out_fd) {
        if (a.upper) {
            return snapshot::write_upper_layer(a.dir, out_fd, opts, nullptr, &chunked);
        }
        return snapshot::write_diff_layer(a.dir, a.parent, out_fd, opts, nullptr, &chunked);
    };
    std::optional<formats::LayerDigests> d;
    if (a.output == "-") {
        if (::isatty(STDOUT_FILENO)) {
            throw UsageError("refusing to write a layer to a terminal; use -o FILE");
        }
        d = make(STDOUT_FILENO);
        std::cerr << "diff-id " << d->diff_id.str() << "\n"
                  << "digest  " << d->blob_digest.str() << "\n"
                  << "size    " << d->blob_size << "\n";
        if (chunked.info) {
            for (const auto& [k, v] : formats::chunked_annotations(*chunked.info)) {
                std::cerr << "annotation " << k << "=" << v << "\n";
            }
        }
        return;
    }
    // Like tar and zstd: written in place, no fsync (the store's own blob
    // ingest is what fsyncs); a half-written file is removed on failure.
    UniqueFd out = fs::open(a.output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ScopeFail remove([&] { ::unlink(a.output.c_str()); });
    d = make(out.get());
    out.close();
    std::cout << "diff-id " << d->diff_id.str() << "\n"
              << "digest  " << d->blob_digest.str() << "\n"
              << "size    " << d->blob_size << "\n"
              << "media-type " << formats::oci_layer_media_type(opts.compression) << "\n";
    if (chunked.info) {
        for (const auto& [k, v] : formats::chunked_annotations(*chunked.info)) {
            std::cout << "annotation " << k << "=" << v << "\n";
        }
    }
}

} // namespace

void register_layer(CLI::App& app, Context&) {
    auto* layer = app.add_subcommand("layer", "Create and apply single OCI layer tarballs");
    layer->require_subcommand(1);

    auto apply_args = std::make_shared<ApplyArgs>();
    auto* apply = layer->add_subcommand(
        "apply", "Apply an OCI layer (tar, tar+gzip or tar+zstd) onto a directory, whiteouts "
                 "included; nothing is written outside DIR");
    apply->add_option("LAYER", apply_args->layer, "Layer file, or - for stdin")->required();
    apply->add_option("DIR", apply_args->dir, "Target directory (created if missing)")->required();
    apply->add_flag("--overlay", apply_args->overlay,
                    "Keep whiteouts in overlayfs form (0:0 devices, opaque xattrs) instead of "
                    "applying them");
    apply->add_flag("--userxattr", apply_args->userxattr,
                    "With --overlay: mark opaque directories with user.overlay.opaque");
    apply->callback([apply_args] { run_apply(*apply_args); });

    auto create_args = std::make_shared<CreateArgs>();
    auto* create = layer->add_subcommand(
        "create", "Write the OCI layer for a directory, or for its difference from --parent; "
                  "prints the diff ID and blob digest");
    create->add_option("DIR", create_args->dir, "Directory")->required();
    create
        ->add_option("--parent", create_args->parent,
                     "Parent directory: the layer holds only the difference")
        ->type_name("DIR");
    create->add_flag("--upper", create_args->upper,
                     "DIR is an overlayfs upper directory (whiteouts, opaque directories)");
    create->add_option("-o,--output", create_args->output, "Layer file to write, or -")
        ->required()
        ->type_name("LAYER");
    create->add_option("--compression", create_args->compression, "zstd (default), gzip or none");
    create->add_option("--level", create_args->level, "Compression level (0: codec default)");
    create->add_option("--threads", create_args->threads, "zstd threads (0: all cores)");
    create->add_flag("--chunked", create_args->chunked,
                     "zstd: a zstd:chunked layer (a frame per file, with a table of contents, as "
                     "builds write) instead of one plain zstd stream");
    create->callback([create_args] { run_create(*create_args); });
}

} // namespace strata::cli
