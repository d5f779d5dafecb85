#include "registry/transfer.hpp"

#include "formats/media_types.hpp"
#include "formats/zstd_chunked.hpp"
#include "snapshot/lazy_toc.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

namespace strata::registry {

namespace {

// Runs task(i) for i in [0, n) on up to jobs threads. The first exception
// stops the hand-out of new tasks and is rethrown once all threads end.
void parallel_for(std::size_t n, int jobs, const std::function<void(std::size_t)>& task,
                  std::atomic<bool>& cancelled) {
    std::atomic<std::size_t> next{0};
    std::exception_ptr error;
    std::mutex mu;
    auto worker = [&] {
        for (;;) {
            if (cancelled.load()) {
                return;
            }
            std::size_t i = next.fetch_add(1);
            if (i >= n) {
                return;
            }
            try {
                task(i);
            } catch (...) {
                std::lock_guard lock(mu);
                if (!error) {
                    error = std::current_exception();
                }
                cancelled = true;
                return;
            }
        }
    };
    std::size_t threads = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(jobs, 1)));
    std::vector<std::thread> pool;
    try {
        for (std::size_t t = 1; t < threads; ++t) {
            pool.emplace_back(worker);
        }
    } catch (...) {
        cancelled = true;
        for (auto& th : pool) {
            th.join();
        }
        throw;
    }
    worker();
    for (auto& th : pool) {
        th.join();
    }
    if (error) {
        std::rethrow_exception(error);
    }
}

void emit(const TransferOptions& o, TransferEvent::Kind kind, const formats::Digest& d,
          std::uint64_t size, std::string from = {}, bool config = false) {
    if (o.progress) {
        o.progress(TransferEvent{kind, d, size, std::move(from), config});
    }
}

// BlobWriter can be neither copied nor moved: this builds one in place
// (std::optional::emplace) from Store::new_blob's prvalue.
struct NewBlob {
    const snapshot::Store& store;
    operator snapshot::BlobWriter() const { return store.new_blob(); }
};

class Cancelled : public Error {
public:
    Cancelled() : Error("cancelled") {}
};

// One blob into the store through the verified BlobWriter.
void fetch_one(snapshot::Store& store, Client& client, const std::string& repo,
               const formats::Descriptor& b, const std::atomic<bool>* cancelled) {
    std::optional<snapshot::BlobWriter> writer;
    writer.emplace(NewBlob{store});
    client.fetch_blob(
        repo, b.digest, static_cast<std::uint64_t>(b.size),
        [&](const char* data, std::size_t n) {
            if (cancelled != nullptr && cancelled->load()) {
                throw Cancelled();
            }
            writer->write(data, n);
        },
        [&] { writer.emplace(NewBlob{store}); }, /*verify=*/false);
    // The BlobWriter hashed every byte as it was written; commit checks
    // the digest and publishes nothing when it differs.
    try {
        writer->commit(b.digest);
    } catch (const Error& e) {
        throw DigestMismatchError(fmt::format("blob {}/{}@{}: {}", client.registry(), repo,
                                              b.digest.str(), e.what()));
    }
}

// Bytes [offset, offset + length) of a blob to sink, by range requests:
// a transfer cut short is resumed from where it stopped (a few times).
snapshot::PartialBlob::Fetch range_fetch(std::shared_ptr<Client> client, std::string repo,
                                         formats::Digest digest) {
    return [client = std::move(client), repo = std::move(repo), digest = std::move(digest)](
               std::uint64_t offset, std::uint64_t length,
               const std::function<void(const char*, std::size_t)>& sink) {
        std::uint64_t got = 0;
        for (int cut = 0; got < length; ++cut) {
            if (cut == 4) {
                throw RegistryError(fmt::format(
                    "blob {}/{}@{}: the transfer of bytes {}..{} was cut short {} times",
                    client->registry(), repo, digest.str(), offset, offset + length, cut));
            }
            got += client->fetch_blob_range(repo, digest, offset + got, length - got, sink);
        }
    };
}

// A client that the fetch functions share with the pull (not owned).
std::shared_ptr<Client> borrowed(Client& client) {
    return std::shared_ptr<Client>(&client, [](Client*) {});
}

// The TOC's place in a zstd:chunked layer from its manifest-position
// annotation ("offset:length:uncompressed length:type"); nullopt when the
// descriptor lacks it or its checksum, or it is not containers/storage's
// type 1 (the zstd TOC).
std::optional<std::pair<std::uint64_t, std::uint64_t>> toc_position(const formats::Descriptor& l) {
    auto pos = l.annotations.find(std::string(formats::k_chunked_manifest_position_key));
    if (pos == l.annotations.end() ||
        !l.annotations.contains(std::string(formats::k_chunked_manifest_checksum_key))) {
        return std::nullopt;
    }
    unsigned long long off = 0, len = 0, raw = 0, type = 0;
    int used = 0;
    if (std::sscanf(pos->second.c_str(), "%llu:%llu:%llu:%llu%n", &off, &len, &raw, &type, &used) !=
            4 ||
        static_cast<std::size_t>(used) != pos->second.size() || type != 1 || off < 8 ||
        l.size < 0 || off + len + formats::k_chunked_footer_frame > static_cast<std::uint64_t>(l.size)) {
        return std::nullopt;
    }
    return std::pair<std::uint64_t, std::uint64_t>{off, len};
}

// A lazy pull of one layer: its TOC (with its skippable frame's header) and
// footer into partial/, checked against the manifest's checksum annotation.
// Returns the bytes fetched, or nullopt when the layer is to be fetched whole
// instead (not zstd:chunked, a TOC that does not check out, a registry that
// does not answer range requests): a warning says why, and the partial
// blob is removed.
std::optional<std::uint64_t> pull_layer_lazily(snapshot::Store& store, Client& client,
                                               const std::string& repo,
                                               const formats::Descriptor& l, bool tls_verify) {
    auto pos = toc_position(l);
    if (!pos) {
        return std::nullopt;
    }
    const auto size = static_cast<std::uint64_t>(l.size);
    snapshot::PartialBlob::Source src{client.registry(), repo, size, l.media_type, tls_verify};
    auto partial = snapshot::PartialBlob::open_or_create(store, l.digest, src);
    auto fetch = range_fetch(borrowed(client), repo, l.digest);
    try {
        // The TOC and the footer, in one request when little lies between
        // them (containers/storage puts the tar-split there).
        std::uint64_t toc_begin = pos->first - 8, toc_end = pos->first + pos->second;
        std::uint64_t footer = size - formats::k_chunked_footer_frame;
        std::uint64_t fetched = 0;
        if (footer - toc_end <= (1U << 20)) {
            fetched += partial->ensure(toc_begin, size, fetch);
        } else {
            fetched += partial->ensure(toc_begin, toc_end, fetch);
            fetched += partial->ensure(footer, size, fetch);
        }
        // The index strata-lazy will make, made once here: the TOC must be
        // the manifest's and one strata can serve.
        auto idx = snapshot::build_toc_index(
            partial->fd(), l.digest, size,
            l.annotations.at(std::string(formats::k_chunked_manifest_checksum_key)));
        if (!idx || !idx->seekable) {
            throw Error("layer " + l.digest.str() +
                        (idx ? ": a chunk too big to read lazily" : ": no zstd:chunked footer"));
        }
        return fetched;
    } catch (const UnauthorizedError&) {
        throw;
    } catch (const Error& e) {
        STRATA_LOG_WARN("{}; fetching the layer whole", e.what());
        fs::remove_all(partial->dir());
        return std::nullopt;
    }
}

// Completes a lazily pulled layer: the blob is written once, in order,
// through the verified BlobWriter, from the bytes partial/ has and, for the
// pieces it lacks, straight from the registry (the partial blob itself is
// left as it is, for the strata-lazy servers that may still read it).
// Bytes that do not check out are thrown away and the blob is fetched whole;
// the partial blob goes only once the whole blob is in. Returns the bytes
// fetched.
std::uint64_t complete_partial(snapshot::Store& store, Client& client, const std::string& repo,
                               const formats::Descriptor& b, const std::atomic<bool>* cancelled) {
    auto partial = snapshot::PartialBlob::open(store, b.digest);
    const auto size = static_cast<std::uint64_t>(b.size);
    auto check_cancel = [&] {
        if (cancelled != nullptr && cancelled->load()) {
            throw Cancelled();
        }
    };
    if (partial->source().size != size) {
        fetch_one(store, client, repo, b, cancelled);
        fs::remove_all(partial->dir());
        return size;
    }
    // Missing pieces less than 1 MiB apart come in one request.
    auto gaps = partial->missing(1U << 20);
    auto fetch = range_fetch(borrowed(client), repo, b.digest);
    std::optional<snapshot::BlobWriter> writer;
    writer.emplace(NewBlob{store});
    std::string buf(1U << 20, '\0');
    auto copy_present = [&](std::uint64_t from, std::uint64_t to) {
        while (from < to) {
            check_cancel();
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), to - from));
            if (fs::pread_full(partial->fd(), partial->dir() + "/data", buf.data(), n, from) != n) {
                throw SysError("read", partial->dir() + "/data", EIO); // shorter than its blob
            }
            writer->write(buf.data(), n);
            from += n;
        }
    };
    std::uint64_t at = 0, fetched = 0;
    for (auto [begin, end] : gaps) {
        copy_present(at, begin);
        for (std::uint64_t piece = begin; piece < end; piece += 32U << 20) {
            check_cancel(); // between requests of at most 32 MiB
            std::uint64_t n = std::min<std::uint64_t>(end - piece, 32U << 20);
            fetch(piece, n, [&](const char* data, std::size_t len) { writer->write(data, len); });
        }
        fetched += end - begin;
        at = end;
    }
    copy_present(at, size);
    try {
        writer->commit(b.digest);
    } catch (const Error& e) {
        STRATA_LOG_WARN("blob {}: the lazily pulled bytes do not check out ({}); fetching it whole",
                        b.digest.str(), e.what());
        // The partial blob stays until the whole one is in: a pull that
        // fails leaves the image as it was (its files checked as they are
        // read).
        fetch_one(store, client, repo, b, cancelled);
        fs::remove_all(partial->dir());
        return fetched + size;
    }
    fs::remove_all(partial->dir());
    return fetched;
}

} // namespace

snapshot::PartialBlob::Fetch remote_fetch(const snapshot::PartialBlob& blob) {
    const auto& src = blob.source();
    auto client = std::make_shared<Client>(src.registry, client_options_for(src.registry, src.tls_verify));
    return range_fetch(std::move(client), src.repository, blob.digest());
}

std::string reference_in_repo(const snapshot::Reference& ref) {
    if (ref.digest()) {
        return ref.digest()->str();
    }
    return ref.tag().empty() ? std::string("latest") : ref.tag();
}

std::string display_reference(const snapshot::Reference& ref) {
    return ref.domain() + "/" + ref.path() +
           (ref.digest() ? "@" + ref.digest()->str() : ":" + reference_in_repo(ref));
}


bool fetch_blob_into(snapshot::Store& store, Client& client, const std::string& repo,
                     const formats::Descriptor& blob) {
    if (store.reuse_blob(blob.digest)) {
        return false;
    }
    fetch_one(store, client, repo, blob, nullptr);
    return true;
}

ClientOptions client_options_for(const std::string& registry, bool tls_verify) {
    ClientOptions o;
    o.tls_verify = tls_verify;
    o.credentials = load_credentials(registry, docker_config_path());
    return o;
}

formats::Descriptor select_platform(const formats::Index& index, const formats::Platform& want,
                                    std::string_view what) {
    const formats::Descriptor* best = nullptr;
    for (const auto& d : index.manifests) {
        if (!formats::is_manifest_media_type(d.media_type) && !d.media_type.empty()) {
            continue;
        }
        if (!d.platform) {
            continue;
        }
        if (formats::platform_matches(want, *d.platform)) {
            // Prefer an exact variant match over a variant-less entry.
            if (best == nullptr || (d.platform->variant == want.variant &&
                                    best->platform->variant != want.variant)) {
                best = &d;
            }
        }
    }
    if (best != nullptr) {
        return *best;
    }
    std::string offered;
    for (const auto& d : index.manifests) {
        if (d.platform) {
            offered += (offered.empty() ? "" : ", ") + formats::to_string(*d.platform);
        }
    }
    throw NotFoundError(fmt::format("{}: no image for platform {} (the index offers: {})", what,
                                    formats::to_string(want), offered.empty() ? "none" : offered));
}

PullResult pull(snapshot::Store& store, const snapshot::Reference& ref,
                const TransferOptions& options) {
    Client client(ref.domain(), options.client);
    const std::string repo = ref.path();
    const std::string what = display_reference(ref);
    PullResult result;

    RemoteManifest top = client.get_manifest(repo, reference_in_repo(ref));
    RemoteManifest chosen = top;
    if (formats::is_index_media_type(top.media_type)) {
        formats::Index index = formats::parse_index(top.bytes, what);
        formats::Platform want = options.platform ? *options.platform : formats::host_platform();
        formats::Descriptor d = select_platform(index, want, what);
        result.index = top.digest;
        chosen = client.get_manifest(repo, d.digest.str());
        if (d.digest != chosen.digest) {
            throw DigestMismatchError(fmt::format("{}: manifest {} hashes to {}", what,
                                                  d.digest.str(), chosen.digest.str()));
        }
        if (chosen.media_type.empty()) {
            chosen.media_type = d.media_type;
        }
    } else if (top.media_type == "application/vnd.docker.distribution.manifest.v1+json" ||
               top.media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws") {
        throw RegistryError(what + ": Docker schema 1 manifests are not supported (deprecated "
                                   "since 2017); push the image again with a current tool");
    }
    if (!formats::is_manifest_media_type(chosen.media_type)) {
        throw RegistryError(fmt::format("{}: unsupported manifest media type \"{}\"", what,
                                        chosen.media_type));
    }
    formats::Manifest manifest =
        formats::parse_manifest(chosen.bytes, what + " (" + chosen.digest.str() + ")");
    formats::Descriptor desc;
    desc.media_type = chosen.media_type;
    desc.digest = chosen.digest;
    desc.size = static_cast<std::int64_t>(chosen.bytes.size());
    emit(options, TransferEvent::Kind::resolved, desc.digest, chosen.bytes.size());

    // Config first, then layers; each blob once.
    std::vector<formats::Descriptor> blobs;
    std::set<formats::Digest> seen;
    auto add = [&](const formats::Descriptor& d) {
        if (seen.insert(d.digest).second) {
            blobs.push_back(d);
        }
    };
    add(manifest.config);
    for (const auto& l : manifest.layers) {
        if (!l.urls.empty() && (l.media_type == formats::media::docker_layer_foreign ||
                                l.media_type.find("nondistributable") != std::string::npos)) {
            // Foreign layers live at their URLs; the registry does not serve them.
            throw RegistryError(fmt::format("{}: layer {} is a foreign layer (at {}); strata does "
                                            "not fetch non-distributable layers",
                                            what, l.digest.str(), l.urls.front()));
        }
        add(l);
    }
    std::vector<const formats::Descriptor*> missing;
    for (const auto& b : blobs) {
        if (snapshot::PartialBlob::exists(store, b.digest) && !store.has_blob(b.digest)) {
            missing.push_back(&b); // lazily pulled: stays so, or is completed
        } else if (store.reuse_intact_blob(b.digest)) {
            ++result.blobs_skipped;
            emit(options, TransferEvent::Kind::skipped, b.digest, static_cast<std::uint64_t>(b.size),
                 {}, b.digest == manifest.config.digest);
        } else {
            missing.push_back(&b);
        }
    }
    for (const auto* b : missing) {
        emit(options, TransferEvent::Kind::fetching, b->digest, static_cast<std::uint64_t>(b->size),
             {}, b->digest == manifest.config.digest);
    }

    std::atomic<bool> cancelled{false};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<int> lazy{0};
    parallel_for(
        missing.size(), options.jobs,
        [&](std::size_t i) {
            const formats::Descriptor& b = *missing[i];
            const bool config = b.digest == manifest.config.digest;
            const bool partial = !config && snapshot::PartialBlob::exists(store, b.digest);
            if (options.lazy && !config) {
                if (partial) {
                    ++lazy; // as it was: its files come when they are read
                    emit(options, TransferEvent::Kind::lazy, b.digest, 0,
                         std::to_string(b.size));
                    return;
                }
                if (auto n = pull_layer_lazily(store, client, repo, b, options.client.tls_verify)) {
                    ++lazy;
                    bytes += *n;
                    emit(options, TransferEvent::Kind::lazy, b.digest, *n, std::to_string(b.size));
                    return;
                }
            } else if (partial) {
                std::uint64_t n = complete_partial(store, client, repo, b, &cancelled);
                bytes += n;
                emit(options, TransferEvent::Kind::completed, b.digest, n);
                return;
            }
            fetch_one(store, client, repo, b, &cancelled);
            bytes += static_cast<std::uint64_t>(b.size);
            emit(options, TransferEvent::Kind::done, b.digest, static_cast<std::uint64_t>(b.size), {},
                 config);
        },
        cancelled);
    result.blobs_fetched = static_cast<int>(missing.size());
    result.layers_lazy = lazy.load();
    result.bytes_fetched = bytes.load();

    // The manifest, then the name: only now is the image visible.
    formats::Digest stored = store.put_blob(chosen.bytes);
    if (stored != desc.digest) {
        throw DigestMismatchError(fmt::format("{}: stored manifest hashes to {}, expected {}", what,
                                              stored.str(), desc.digest.str()));
    }
    // Check that the store can read what it will name (config + manifest).
    store.load(desc);
    store.set_name(ref, desc);
    result.manifest = desc;
    return result;
}

PushResult push(snapshot::Store& store, const formats::Descriptor& manifest_desc,
                const snapshot::Reference& dest, const TransferOptions& options) {
    // An index in the store pushes the host platform's manifest (load picks it).
    snapshot::Image image = store.load(manifest_desc);
    const formats::Descriptor& mdesc = image.descriptor;
    std::string manifest_bytes = store.read_blob(mdesc.digest);
    std::string media_type = !mdesc.media_type.empty()          ? mdesc.media_type
                             : !image.manifest.media_type.empty() ? image.manifest.media_type
                                                                  : std::string(formats::media::oci_manifest);

    std::vector<formats::Descriptor> blobs;
    blobs.push_back(image.manifest.config);
    blobs.insert(blobs.end(), image.manifest.layers.begin(), image.manifest.layers.end());
    return push_manifest(store, manifest_bytes, media_type, blobs, dest, options);
}

namespace {

std::optional<formats::Compression> layer_compression(const std::string& media_type) {
    if (media_type == formats::media::oci_layer_zstd ||
        media_type == formats::media::oci_layer_nd_zstd) {
        return formats::Compression::zstd;
    }
    if (media_type == formats::media::oci_layer_gzip ||
        media_type == formats::media::oci_layer_nd_gzip ||
        media_type == formats::media::docker_layer_gzip) {
        return formats::Compression::gzip;
    }
    if (media_type == formats::media::oci_layer) {
        return formats::Compression::none;
    }
    return std::nullopt;
}

} // namespace

LayerConversion convert_layers(snapshot::Store& store, const formats::Descriptor& manifest,
                               formats::Compression from, formats::Compression to) {
    snapshot::Image image = store.load(manifest);
    LayerConversion out;
    out.manifest = image.descriptor;
    if (from == to) {
        return out;
    }
    std::vector<formats::Descriptor> layers = image.manifest.layers;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        formats::Descriptor& l = layers[i];
        if (layer_compression(l.media_type) != from || i >= image.config.diff_ids.size()) {
            continue;
        }
        snapshot::BlobWriter blob = store.new_blob();
        Sha256 diff;
        auto comp = formats::Compressor::create(
            to, [&](const void* data, std::size_t size) { blob.write(data, size); });
        auto dec = formats::Decompressor::create(from, [&](const void* data, std::size_t size) {
            diff.update(data, size);
            comp->write(data, size);
        });
        UniqueFd in = store.open_blob(l.digest);
        std::vector<char> buf(1 << 20);
        while (true) {
            std::size_t n =
                fs::read_full(in.get(), store.blob_path(l.digest), buf.data(), buf.size());
            if (n == 0) {
                break;
            }
            dec->feed(buf.data(), n);
        }
        dec->finish();
        comp->finish();
        formats::Digest got = formats::Digest::parse("sha256:" + diff.finish_hex());
        if (got != image.config.diff_ids[i]) {
            throw Error("layer " + l.digest.str() + " holds " + got.str() + ", not the diff ID " +
                        image.config.diff_ids[i].str() + " its image config names");
        }
        std::int64_t size = static_cast<std::int64_t>(blob.size());
        formats::Digest d = blob.commit();
        out.converted.emplace_back(l.digest, d);
        l.digest = d;
        l.size = size;
        l.media_type = std::string(formats::oci_layer_media_type(to));
        l.annotations.clear();
    }
    if (out.converted.empty()) {
        return out;
    }
    std::string config = store.read_blob(image.manifest.config.digest);
    out.manifest = store.put_image_raw(config, layers, image.manifest.annotations);
    return out;
}

PushResult push_manifest(snapshot::Store& store, const std::string& manifest_bytes,
                         const std::string& media_type,
                         const std::vector<formats::Descriptor>& all_blobs,
                         const snapshot::Reference& dest, const TransferOptions& options) {
    Client client(dest.domain(), options.client);
    const std::string repo = dest.path();
    const std::string what = display_reference(dest);
    formats::Digest manifest_digest = formats::Digest::of(manifest_bytes);
    emit(options, TransferEvent::Kind::resolved, manifest_digest, manifest_bytes.size());
    std::vector<formats::Descriptor> blobs;
    std::set<formats::Digest> seen;
    for (const auto& b : all_blobs) {
        if (seen.insert(b.digest).second) {
            blobs.push_back(b);
        }
    }

    // Repositories on the same registry that the store knows hold each blob
    // (images pulled from or pushed to them): candidates for a mount.
    std::map<formats::Digest, std::vector<std::string>> mount_from;
    for (const auto& rec : store.images()) {
        if (!rec.name || rec.name->domain() != dest.domain() || rec.name->path() == repo) {
            continue;
        }
        try {
            snapshot::Image other = store.load(rec.manifest);
            auto note = [&](const formats::Digest& d) {
                if (seen.count(d) != 0) {
                    auto& v = mount_from[d];
                    if (std::find(v.begin(), v.end(), rec.name->path()) == v.end()) {
                        v.push_back(rec.name->path());
                    }
                }
            };
            note(other.manifest.config.digest);
            for (const auto& l : other.manifest.layers) {
                note(l.digest);
            }
        } catch (const Error& e) {
            STRATA_LOG_DEBUG("not using {} as a mount source: {}", rec.name->full(), e.what());
        }
    }

    PushResult result;
    std::atomic<int> uploaded{0}, existed{0}, mounted{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<bool> cancelled{false};
    // Largest first, so the long uploads start early.
    std::sort(blobs.begin(), blobs.end(),
              [](const formats::Descriptor& a, const formats::Descriptor& b) { return a.size > b.size; });
    parallel_for(
        blobs.size(), options.jobs,
        [&](std::size_t i) {
            const formats::Descriptor& b = blobs[i];
            UniqueFd fd = store.open_blob(b.digest);
            auto it = mount_from.find(b.digest);
            std::vector<std::string> from = it == mount_from.end() ? std::vector<std::string>{}
                                                                   : it->second;
            BlobPush r = client.push_blob(repo, b.digest, static_cast<std::uint64_t>(b.size),
                                          fd.get(), from);
            switch (r) {
            case BlobPush::existed:
                ++existed;
                emit(options, TransferEvent::Kind::exists, b.digest, static_cast<std::uint64_t>(b.size));
                break;
            case BlobPush::mounted:
                ++mounted;
                emit(options, TransferEvent::Kind::mounted, b.digest,
                     static_cast<std::uint64_t>(b.size), from.empty() ? "" : from.front());
                break;
            case BlobPush::uploaded:
                ++uploaded;
                bytes += static_cast<std::uint64_t>(b.size);
                emit(options, TransferEvent::Kind::done, b.digest, static_cast<std::uint64_t>(b.size));
                break;
            }
        },
        cancelled);

    std::string reference = reference_in_repo(dest);
    formats::Digest pushed = client.put_manifest(repo, reference, media_type, manifest_bytes);
    if (pushed != manifest_digest) {
        throw DigestMismatchError(fmt::format("{}: the pushed manifest hashes to {}, the store's to {}",
                                              what, pushed.str(), manifest_digest.str()));
    }
    result.manifest.digest = manifest_digest;
    result.manifest.size = static_cast<std::int64_t>(manifest_bytes.size());
    result.manifest.media_type = media_type;
    result.blobs_uploaded = uploaded;
    result.blobs_existed = existed;
    result.blobs_mounted = mounted;
    result.bytes_uploaded = bytes;
    return result;
}

} // namespace strata::registry
