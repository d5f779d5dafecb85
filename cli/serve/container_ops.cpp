// /containers/{id}/top, /stats, /changes, /export, /archive, /rename,
// /pause, /unpause, /update and /containers/prune, through what strata's
// top, stats, diff, export, cp, rename, pause, unpause and container prune
// call (containers/top.hpp, cli/stats.hpp, cli/container_fs.hpp,
// cli/container_cli.hpp).
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/container_fs.hpp"
#include "cli/serve/routes.hpp"
#include "cli/stats.hpp"
#include "containers/store.hpp"
#include "containers/top.hpp"
#include "util/base64.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/go_time.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <fcntl.h>
#include <functional>
#include <future>
#include <thread>
#include <unistd.h>

namespace strata::cli::serve {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::string resolve(const containers::Store& cs, api::Request& req) {
    return cs.resolve(req.param("id"));
}

// Runs f on a thread of its own and waits for it: the mount namespace that
// archive work on a stopped container unshares is that thread's, gone with
// it, never the server's.
void in_own_thread(const std::function<void()>& f) {
    std::exception_ptr error;
    std::thread t([&] {
        try {
            f();
        } catch (...) {
            error = std::current_exception();
        }
    });
    t.join();
    if (error) {
        std::rethrow_exception(error);
    }
}

// A producer writing a stream on a pipe from a thread of its own, its bytes
// copied to the response as they come. ready() is called once the producer
// has said it will succeed (before the status line: errors before it are
// the request's error); the producer's later errors end the stream early.
void stream_from_producer(
    api::Exchange& ex, std::string_view content_type,
    const std::function<void(int fd, const std::function<void()>& ready)>& produce,
    const std::function<void()>& before_status = {}) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        throw_errno("pipe2");
    }
    UniqueFd rd(p[0]);
    auto wr = std::make_shared<UniqueFd>(p[1]);
    std::promise<void> started; // set when ready, or with the error before it
    std::future<void> started_f = started.get_future();
    bool late_error = false;
    std::thread t([&, wr] {
        bool said = false;
        try {
            produce(wr->get(), [&] {
                said = true;
                started.set_value();
            });
        } catch (...) {
            if (said) {
                late_error = true;
            } else {
                started.set_exception(std::current_exception());
                said = true;
            }
        }
        *wr = UniqueFd(); // EOF for the reader
        if (!said) {
            started.set_value();
        }
    });
    try {
        started_f.get();
    } catch (...) {
        t.join();
        throw;
    }
    if (before_status) {
        before_status();
    }
    ex.begin_stream(200, content_type);
    char buf[1 << 16];
    bool ok = true;
    for (;;) {
        ssize_t n = ::read(rd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (!ex.write(std::string_view(buf, static_cast<std::size_t>(n)))) {
            ok = false;
            break;
        }
    }
    rd = UniqueFd(); // a producer still writing gets EPIPE and ends
    t.join();
    if (ok && !late_error) {
        ex.finish(); // else the stream ends without its last chunk: the client sees it cut
    }
}

void running_or_409(const containers::Store& cs, const std::string& id, containers::State& st) {
    st = cs.load_state(id);
    if (!st.running() || st.pid <= 0) {
        throw api::HttpError(409, "Container " + id + " is not running");
    }
}

// GET /containers/{id}/top?ps_args=: strata top's ps.
void top(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    containers::State st;
    running_or_409(cs, id, st);
    containers::TopResult r;
    try {
        r = containers::top(st.pid, req.maybe_query("ps_args").value_or(""));
    } catch (const UsageError& e) {
        throw api::HttpError(500, e.what()); // dockerd: ps's refusal is the daemon's error
    }
    ordered_json processes = ordered_json::array();
    for (const auto& row : r.processes) {
        processes.push_back(row);
    }
    ex.respond_json(200, ordered_json{{"Processes", processes}, {"Titles", r.titles}});
}

std::string go_time(std::chrono::system_clock::time_point t) {
    return format_go_time(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count(),
        TimeZoneStyle::utc, TimeFraction::trimmed);
}

ordered_json cpu_stats(const StatsSample& s) {
    if (s.system_ns == 0) {
        return {{"cpu_usage", {{"total_usage", 0}}}, {"throttling_data", ordered_json::object()}};
    }
    return {{"cpu_usage", {{"total_usage", s.cgroup.cpu_usage_ns}}},
            {"system_cpu_usage", s.system_ns},
            {"online_cpus", s.online_cpus},
            {"throttling_data", ordered_json::object()}};
}

// dockerd's types.StatsJSON of a reading (cgroup v1's names; the block I/O
// as one total per direction, network I/O as the total of the container's
// interfaces but lo), with the earlier reading as precpu.
ordered_json stats_document(const std::string& id, const std::string& name, const StatsSample& now,
                            std::chrono::system_clock::time_point read, const StatsSample& before,
                            std::optional<std::chrono::system_clock::time_point> preread) {
    const std::string zero_time = "0001-01-01T00:00:00Z";
    bool live = now.system_ns != 0;
    ordered_json doc;
    doc["read"] = live ? go_time(read) : zero_time;
    doc["preread"] = preread && before.system_ns != 0 ? go_time(*preread) : zero_time;
    doc["pids_stats"] =
        live ? ordered_json{{"current", now.cgroup.pids_current}} : ordered_json::object();
    ordered_json bytes = ordered_json::array();
    if (live) {
        bytes.push_back(
            {{"major", 0}, {"minor", 0}, {"op", "Read"}, {"value", now.cgroup.blkio_read}});
        bytes.push_back(
            {{"major", 0}, {"minor", 0}, {"op", "Write"}, {"value", now.cgroup.blkio_write}});
        bytes.push_back({{"major", 0},
                         {"minor", 0},
                         {"op", "Total"},
                         {"value", now.cgroup.blkio_read + now.cgroup.blkio_write}});
    }
    doc["blkio_stats"] = {{"io_service_bytes_recursive", live ? bytes : ordered_json(nullptr)},
                          {"io_serviced_recursive", nullptr},
                          {"io_queue_recursive", nullptr},
                          {"io_service_time_recursive", nullptr},
                          {"io_wait_time_recursive", nullptr},
                          {"io_merged_recursive", nullptr},
                          {"io_time_recursive", nullptr},
                          {"sectors_recursive", nullptr}};
    doc["num_procs"] = 0;
    doc["storage_stats"] = ordered_json::object();
    doc["cpu_stats"] = cpu_stats(now);
    doc["precpu_stats"] = cpu_stats(before);
    if (live) {
        doc["memory_stats"] = {{"usage", now.cgroup.memory_usage},
                               {"stats", {{"total_inactive_file", now.cgroup.memory_cache}}},
                               {"limit", now.cgroup.memory_limit}};
    } else {
        doc["memory_stats"] = ordered_json::object();
    }
    doc["name"] = name;
    doc["id"] = id;
    if (live) {
        doc["networks"] = {{"eth0", {{"rx_bytes", now.net.rx}, {"tx_bytes", now.net.tx}}}};
    }
    return doc;
}

// GET /containers/{id}/stats?stream=&one-shot=: strata stats's readings,
// one a second while streaming (the first with the previous reading a
// second before, as dockerd's collector has it); stream=false answers
// with one document (one-shot: without the second reading's wait).
void stats(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    bool stream = !req.maybe_query("stream") || req.query_bool("stream");
    bool one_shot = req.query_bool("one-shot");
    if (one_shot && stream) {
        throw api::HttpError(400, "cannot have stream=true and one-shot=true");
    }
    std::string name = cs.name(id);
    if (!name.starts_with('/')) {
        name = "/" + name;
    }
    auto take = [&](StatsSample& s, std::chrono::system_clock::time_point& at) {
        containers::State st;
        try {
            st = cs.load_state(id);
        } catch (const containers::NoSuchContainer&) {
            return false;
        }
        at = std::chrono::system_clock::now();
        s = sample_container(st, id);
        return st.running();
    };
    StatsSample before, now;
    std::chrono::system_clock::time_point before_at, now_at;
    bool running = take(now, now_at);
    if (!stream) {
        if (running && !one_shot) {
            before = now;
            before_at = now_at;
            std::this_thread::sleep_for(std::chrono::seconds(1));
            take(now, now_at);
            ex.respond_json(200, stats_document(id, name, now, now_at, before, before_at));
        } else {
            ex.respond_json(200,
                            stats_document(id, name, now, now_at, StatsSample{}, std::nullopt));
        }
        return;
    }
    ex.begin_stream(200, "application/json");
    std::optional<std::chrono::system_clock::time_point> pre;
    for (;;) {
        if (!ex.write_json(stats_document(id, name, now, now_at, before, pre))) {
            return;
        }
        if (!running) {
            break; // dockerd ends the stream of a container that is not running
        }
        before = now;
        before_at = now_at;
        pre = before_at;
        for (int i = 0; i < 10; ++i) {
            if (ex.client_gone()) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        running = take(now, now_at);
    }
    ex.finish();
}

// GET /containers/{id}/changes: strata diff's list, Kind 0 modified, 1
// added, 2 deleted (null when nothing changed, as dockerd's nil slice).
void changes(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    ordered_json out = nullptr;
    for (const auto& c : container_changes(ctx, id)) {
        int kind = c.kind == containers::ChangeKind::modify ? 0
                   : c.kind == containers::ChangeKind::add  ? 1
                                                            : 2;
        if (out.is_null()) {
            out = ordered_json::array();
        }
        out.push_back({{"Path", c.path}, {"Kind", kind}});
    }
    ex.respond_json(200, out);
}

// GET /containers/{id}/export: strata export's tar.
void export_tar(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    stream_from_producer(ex, "application/x-tar", [&](int fd, const std::function<void()>& ready) {
        ready();
        export_container(ctx, id, fd);
    });
}

// X-Docker-Container-Path-Stat: the stat as JSON, base64 (Go's
// StdEncoding), as dockerd's setContainerPathStatHeader.
std::string path_stat_header(const ContainerPathStat& st) {
    ordered_json doc{
        {"name", st.name},
        {"size", st.size},
        {"mode", st.mode},
        {"mtime", format_go_time(std::int64_t(st.mtime_sec) * 1000000000 + st.mtime_nsec,
                                 TimeZoneStyle::utc, TimeFraction::trimmed)},
        {"linkTarget", st.link_target}};
    return base64_encode(doc.dump());
}

std::string archive_path(api::Request& req) {
    std::string path = req.maybe_query("path").value_or("");
    if (path.empty()) {
        throw api::HttpError(400, "Path cannot be empty");
    }
    return path;
}

// HEAD and GET /containers/{id}/archive?path=: the stat header (HEAD), or
// the header and the tar of the path (GET), as docker cp CONTAINER:PATH
// asks; the path is resolved inside the container's root.
void archive_get(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    resolve(cs, req); // 404 first
    std::string path = archive_path(req);
    // Messages name the container as the client did ("... in container t1").
    std::string shown = req.param("id");
    if (req.method == "HEAD") {
        ContainerPathStat st;
        try {
            in_own_thread([&] { st = container_path_stat(ctx, shown, path); });
        } catch (const NoSuchContainerPath& e) {
            throw api::HttpError(404, e.what());
        }
        ex.add_header("X-Docker-Container-Path-Stat", path_stat_header(st));
        ex.respond(200, "", "");
        return;
    }
    ContainerPathStat found;
    try {
        stream_from_producer(
            ex, "application/x-tar",
            [&](int fd, const std::function<void()>& ready) {
                container_archive(
                    ctx, shown, path,
                    [&](const ContainerPathStat& st) {
                        found = st;
                        ready();
                    },
                    fd);
            },
            [&] { ex.add_header("X-Docker-Container-Path-Stat", path_stat_header(found)); });
    } catch (const NoSuchContainerPath& e) {
        throw api::HttpError(404, e.what());
    }
}

// PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=: the
// body (a tar) extracted into the directory path, every entry resolved
// inside it (strata cp - CONTAINER:DIR's extraction).
void archive_put(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    resolve(cs, req); // 404 before the body is read
    std::string shown = req.param("id");
    std::string path = archive_path(req);
    bool copy_uid_gid = req.query_bool("copyUIDGID");
    // The body in an unnamed file of the store's file system first: the
    // extraction reads it from a thread of its own.
    UniqueFd body(::open(ctx.store_root().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!body) {
        throw_errno("open(O_TMPFILE)", ctx.store_root());
    }
    ex.read_body_to(body.get());
    if (::lseek(body.get(), 0, SEEK_SET) != 0) {
        throw_errno("lseek", "the archive's body");
    }
    try {
        in_own_thread([&] { container_extract(ctx, shown, path, body.get(), copy_uid_gid); });
    } catch (const NoSuchContainerPath& e) {
        throw api::HttpError(404, e.what());
    } catch (const UsageError& e) {
        throw api::HttpError(400, e.what());
    } catch (const Error& e) {
        throw api::HttpError(400, e.what()); // a hostile or broken archive: the client's
    }
    ex.respond_empty(200);
}

// POST /containers/{id}/rename?name=: strata rename.
void rename(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = resolve(cs, req);
    std::string name = req.maybe_query("name").value_or("");
    if (name.empty()) {
        throw api::HttpError(400, "Neither old nor new names may be empty");
    }
    cs.rename(id, name);
    ex.respond_empty(204);
}

void pause(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    pause_container(cs, resolve(cs, req), true);
    ex.respond_empty(204);
}

void unpause(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    pause_container(cs, resolve(cs, req), false);
    ex.respond_empty(204);
}

// POST /containers/prune?filters=: strata container prune.
void prune(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    ContainerPrune r = prune_containers(cs, req.query_filters());
    ordered_json deleted = r.removed.empty() ? ordered_json(nullptr) : ordered_json(r.removed);
    ex.respond_json(200, ordered_json{{"ContainersDeleted", deleted}, {"SpaceReclaimed", r.bytes}});
}

// POST /containers/{id}/update: strata has no command that changes a
// container's limits or restart policy after its creation, so every field
// set is refused, by name.
void update(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    resolve(cs, req); // 404 first, as dockerd
    json body;
    try {
        body = json::parse(ex.read_body(1 << 20));
    } catch (const json::exception& e) {
        throw api::HttpError(400, std::string("invalid JSON: ") + e.what());
    }
    std::string fields;
    if (body.is_object()) {
        for (const auto& [k, v] : body.items()) {
            bool unset =
                v.is_null() || (v.is_number() && v.get<double>() == 0) ||
                (v.is_string() && v.get<std::string>().empty()) || (v.is_array() && v.empty()) ||
                (v.is_boolean() && !v.get<bool>()) ||
                (v.is_object() && (v.empty() || v.value("Name", std::string("x")).empty()));
            if (!unset) {
                fields += (fields.empty() ? "" : ", ") + k;
            }
        }
    }
    if (fields.empty()) {
        ex.respond_json(200, ordered_json{{"Warnings", nullptr}});
        return;
    }
    throw api::HttpError(400, "strata cannot change a container's " + fields +
                                  " after its creation (docker update is not supported)");
}

} // namespace

void add_container_op_routes(api::Router& router, Context& ctx) {
    auto bind = [&ctx](ContextHandler f) { return with_context(ctx, f); };
    router.add("POST", "/containers/prune", bind(prune));
    router.add("GET", "/containers/{id}/top", bind(top));
    router.add("GET", "/containers/{id}/stats", bind(stats));
    router.add("GET", "/containers/{id}/changes", bind(changes));
    router.add("GET", "/containers/{id}/export", bind(export_tar));
    router.add("GET", "/containers/{id}/archive", bind(archive_get));
    router.add("PUT", "/containers/{id}/archive", bind(archive_put));
    router.add("POST", "/containers/{id}/rename", bind(rename));
    router.add("POST", "/containers/{id}/pause", bind(pause));
    router.add("POST", "/containers/{id}/unpause", bind(unpause));
    router.add("POST", "/containers/{id}/update", bind(update));
}

} // namespace strata::cli::serve
