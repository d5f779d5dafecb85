// POST /images/create (docker pull, and docker import with fromSrc) and
// POST /images/{name}/push, with dockerd's JSON progress messages, through
// the functions of strata pull, push and import (cli/registry.hpp,
// cli/images.hpp).
#include "cli/registry.hpp"
#include "cli/common.hpp"
#include "cli/images.hpp"
#include "cli/serve/progress.hpp"
#include "cli/serve/routes.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <fcntl.h>
#include <mutex>
#include <unistd.h>

namespace strata::cli::serve {

namespace {

using nlohmann::ordered_json;

// A response begun on the first message, so that an error before it is an
// HTTP status (404 for a missing image, as dockerd) and one after it an
// error message in the stream. Thread-safe (transfer events come from
// several threads).
class ProgressStream {
public:
    explicit ProgressStream(api::Exchange& ex) : m_ex(ex) {}
    void send(const ordered_json& j) {
        std::lock_guard l(m_mu);
        if (!m_begun) {
            m_ex.begin_stream(200, "application/json");
            m_begun = true;
        }
        m_ex.write_json(j);
    }
    bool begun() {
        std::lock_guard l(m_mu);
        return m_begun;
    }
    // After an error: in the stream once begun, else thrown on as it is.
    void fail(const std::exception& e) {
        send(error_message(e.what()));
        m_ex.finish();
    }
    void finish() { m_ex.finish(); }

private:
    api::Exchange& m_ex;
    std::mutex m_mu;
    bool m_begun = false;
};

RemoteSettings remote_settings(const api::Request& req) {
    RemoteSettings s;
    auto it = req.headers.find("x-registry-auth");
    if (it != req.headers.end()) {
        s.credentials = registry_auth(it->second);
    }
    return s;
}

// docker pull: fromImage (a name, name:tag or name@digest) and tag (a tag
// or a digest), platform.
void pull(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::string text = pull_reference_text(req.maybe_query("fromImage").value_or(""),
                                           req.maybe_query("tag").value_or(""));
    std::optional<snapshot::Reference> parsed = snapshot::Reference::try_parse(text);
    if (!parsed) {
        throw api::HttpError(400, "invalid reference format");
    }
    const snapshot::Reference ref = *parsed;
    RemoteSettings s = remote_settings(req);
    s.platform = req.maybe_query("platform").value_or("");
    snapshot::Store store = open_store(ctx);
    ProgressStream out(ex);
    // dockerd's "up to date": the name already named what was pulled.
    std::optional<snapshot::ImageRecord> before = store.find(ref);
    registry::PullResult r;
    try {
        r = pull_image(store, ref, s, [&](const registry::TransferEvent& e) {
            for (const auto& j : pull_progress(e, ref)) {
                out.send(j);
            }
        });
    } catch (const registry::NotFoundError& e) {
        if (out.begun()) {
            out.fail(e);
            return;
        }
        throw api::HttpError(404, manifest_not_found_message(ref, e.what()));
    } catch (const std::exception& e) {
        if (out.begun()) {
            out.fail(e);
            return;
        }
        throw;
    }
    out.send({{"status", "Digest: " + r.manifest.digest.str()}});
    bool up_to_date = before && before->manifest.digest == r.manifest.digest;
    out.send({{"status", std::string(up_to_date ? "Status: Image is up to date for "
                                                : "Status: Downloaded newer image for ") +
                             ref.familiar()}});
    out.finish();
}

// docker import: fromSrc=- (the body is the tar), repo, tag, changes,
// message. The body is staged in the store's tmp/ and read as strata
// import reads a file.
void import(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::string src = req.maybe_query("fromSrc").value_or("");
    if (src != "-") {
        throw api::HttpError(400, "fromSrc=" + src +
                                      ": strata serve imports the request's body (fromSrc=-), "
                                      "it does not fetch URLs");
    }
    ImportSettings s;
    std::string repo = req.maybe_query("repo").value_or("");
    std::string tag = req.maybe_query("tag").value_or("");
    if (!repo.empty()) {
        s.tag = tag.empty() ? repo : repo + ":" + tag;
        if (!snapshot::Reference::try_parse(s.tag)) {
            throw api::HttpError(400, "invalid reference format");
        }
    }
    auto [b, e] = req.query.equal_range("changes");
    for (auto it = b; it != e; ++it) {
        s.changes.push_back(it->second);
    }
    s.message = req.maybe_query("message").value_or("");
    snapshot::Store store = open_store(ctx);
    UniqueFd body(::open(store.tmp_dir().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!body) {
        throw_errno("open O_TMPFILE", store.tmp_dir());
    }
    ex.read_body_to(body.get());
    if (::lseek(body.get(), 0, SEEK_SET) != 0) {
        throw_errno("lseek", "the imported archive");
    }
    formats::Digest id = import_rootfs(ctx, body.get(), "-", s);
    ex.begin_stream(200, "application/json");
    ex.write_json({{"status", id.str()}});
    ex.finish();
}

// docker push: the image's name (with the tag parameter), as dockerd:
// "The push refers to repository [...]", a line per layer, the digest line
// and the aux message with the tag, digest and size.
void push(Context& ctx, api::Request& req, api::Exchange& ex) {
    std::string name = req.param("name");
    std::string tag = req.maybe_query("tag").value_or("");
    std::string text = tag.empty() ? name : name + ":" + tag;
    std::optional<snapshot::Reference> parsed = snapshot::Reference::try_parse(text);
    if (!parsed) {
        throw api::HttpError(400, "invalid reference format");
    }
    snapshot::Store store = open_store(ctx);
    // dockerd pushes a repository's tags; one tag (latest when none) here,
    // which is what docker push NAME[:TAG] asks.
    std::optional<PushTarget> found;
    try {
        found = push_target(store, parsed->full(), parsed->full());
    } catch (const snapshot::NoSuchImage&) {
        throw api::HttpError(404, "An image does not exist locally with the tag: " +
                                      parsed->familiar_repository());
    }
    const PushTarget& target = *found;
    RemoteSettings s = remote_settings(req);
    snapshot::Image img = store.load(target.record.manifest);
    ProgressStream out(ex);
    out.send({{"status", "The push refers to repository [" + target.dest.repository() + "]"}});
    // Top layer first, as dockerd lists them.
    for (auto it = img.manifest.layers.rbegin(); it != img.manifest.layers.rend(); ++it) {
        out.send({{"status", "Preparing"},
                  {"progressDetail", ordered_json::object()},
                  {"id", it->digest.short_id()}});
    }
    formats::Digest config = img.manifest.config.digest;
    registry::PushResult r;
    try {
        r = push_image(
            store, target, s,
            [&](const registry::TransferEvent& e) {
                if (e.digest == config) {
                    return;
                }
                for (const auto& j : push_progress(e)) {
                    out.send(j);
                }
            },
            [](const formats::Digest&, const formats::Digest&) {});
    } catch (const std::exception& e) {
        out.fail(e);
        return;
    }
    for (const auto& j : push_result(target.dest, r)) {
        out.send(j);
    }
    out.finish();
}

} // namespace

void add_registry_routes(api::Router& router, Context& ctx) {
    router.add("POST", "/images/create", [&ctx](api::Request& req, api::Exchange& ex) {
        if (req.maybe_query("fromSrc")) {
            import(ctx, req, ex);
        } else {
            pull(ctx, req, ex);
        }
    });
    router.add("POST", "/images/{name*}/push",
               [&ctx](api::Request& req, api::Exchange& ex) { push(ctx, req, ex); });
}

} // namespace strata::cli::serve
