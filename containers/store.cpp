#include "containers/store.hpp"

#include "containers/events.hpp"
#include "containers/names.hpp"
#include "formats/json.hpp"
#include "util/fs.hpp"
#include "util/go_time.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::containers {

namespace {

constexpr std::size_t k_max_record = 16u << 20;

bool is_id(std::string_view s) {
    if (s.size() != 64) {
        return false;
    }
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

std::string strip_slash(std::string_view name) {
    if (!name.empty() && name.front() == '/') {
        name.remove_prefix(1);
    }
    return std::string(name);
}

std::string read_link(const std::string& path) {
    char buf[256];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    if (n < 0) {
        return {};
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

// A container's documents as dockerd keeps them: a string that is not UTF-8
// (an argument, an environment value) with U+FFFD for each bad byte, as
// encoding/json writes it (so the container runs what docker would run).
std::string json_text(const nlohmann::ordered_json& j) {
    return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

void write_json(const std::string& path, const nlohmann::ordered_json& j) {
    fs::write_file_atomic(path, json_text(j), 0600);
}

// temp+rename without fsync: state changes are frequent and on the start
// and stop paths; after a crash a state.json that cannot be read counts as
// exited (load_state), never as an error.
void write_json_nosync(const std::string& path, const nlohmann::ordered_json& j) {
    std::string tmp = path + ".tmp." + std::to_string(::gettid());
    {
        UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd) {
            throw_errno("open", tmp);
        }
        try {
            fs::write_all(fd.get(), tmp, json_text(j));
        } catch (...) {
            ::unlink(tmp.c_str());
            throw;
        }
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw SysError("rename", tmp, err);
    }
}

} // namespace

std::string now_rfc3339nano() {
    return format_go_time(unix_nanos_now(), TimeZoneStyle::utc, TimeFraction::nine);
}

nlohmann::ordered_json State::to_json() const {
    nlohmann::ordered_json j;
    j["Status"] = status;
    j["Running"] = status == "running" || status == "paused" || status == "restarting";
    j["Paused"] = status == "paused";
    j["Restarting"] = status == "restarting";
    j["OOMKilled"] = oom_killed;
    j["Dead"] = dead;
    j["Pid"] = status == "running" || status == "paused" ? pid : 0;
    j["ExitCode"] = exit_code;
    j["Error"] = error;
    j["StartedAt"] = started_at;
    j["FinishedAt"] = finished_at;
    if (!health.is_null()) {
        j["Health"] = health;
    }
    j["RestartCount"] = restart_count;
    j["MonitorPid"] = monitor_pid;
    j["ManuallyStopped"] = manually_stopped;
    return j;
}

State State::from_json(const nlohmann::json& j) {
    State s;
    s.status = j.value("Status", std::string("created"));
    s.oom_killed = j.value("OOMKilled", false);
    s.dead = j.value("Dead", false);
    s.pid = j.value("Pid", 0);
    s.exit_code = j.value("ExitCode", 0);
    s.error = j.value("Error", std::string());
    s.started_at = j.value("StartedAt", std::string(k_zero_time));
    s.finished_at = j.value("FinishedAt", std::string(k_zero_time));
    s.restart_count = j.value("RestartCount", 0);
    s.monitor_pid = j.value("MonitorPid", 0);
    s.manually_stopped = j.value("ManuallyStopped", false);
    if (j.contains("Health")) {
        s.health = j["Health"];
    }
    return s;
}

Store::Store(std::string store_root)
    : m_store_root(std::move(store_root)), m_dir(m_store_root + "/containers") {
    fs::mkdirs(m_dir + "/names", 0700);
}

std::string Store::path(std::string_view id) const {
    return m_dir + "/" + std::string(id);
}

std::string Store::log_path(std::string_view id) const {
    return path(id) + "/" + std::string(id) + "-json.log";
}

bool Store::exists(std::string_view id) const {
    return is_id(id) && fs::is_dir(path(id));
}

std::string Store::create(nlohmann::ordered_json config, const std::string& name_in) {
    std::string id =
        config.contains("Id") && config["Id"].is_string() && is_id(config["Id"].get<std::string>())
            ? config["Id"].get<std::string>()
            : new_id();
    if (fs::exists(path(id))) {
        throw Error("container id " + id + " is already in use");
    }
    std::string name = strip_slash(name_in);
    bool random = name.empty();
    if (!random) {
        check_name(name);
    }
    std::string tmp = m_dir + "/.creating-" + id;
    // Claim the name first: symlink(2) fails with EEXIST when it is taken.
    for (int attempt = 0;; ++attempt) {
        if (random) {
            name = random_name();
            if (attempt > 0) {
                name += std::to_string(attempt);
            }
        }
        std::string link = m_dir + "/names/" + name;
        if (::symlink(id.c_str(), link.c_str()) == 0) {
            break;
        }
        if (errno != EEXIST) {
            throw_errno("symlink", link);
        }
        // A claim whose container never came to be (a create killed midway)
        // is free again.
        std::string owner = read_link(link);
        if (is_id(owner) && !fs::exists(path(owner)) &&
            !fs::exists(m_dir + "/.creating-" + owner)) {
            ::unlink(link.c_str());
            --attempt;
            continue;
        }
        if (!random) {
            throw NameConflict("Conflict. The container name \"/" + name +
                               "\" is already in use by container \"" + owner +
                               "\". You have to remove (or rename) that container to be able to "
                               "reuse that name.");
        }
        if (attempt > 100) {
            throw Error("cannot find a free random container name");
        }
    }
    try {
        fs::mkdirs(tmp, 0700);
        for (const char* sub : {"upper", "work", "rootfs"}) {
            fs::mkdirs(tmp + "/" + sub, 0755);
        }
        config["Id"] = id;
        config["Name"] = "/" + name;
        if (!config.contains("Created")) {
            config["Created"] = now_rfc3339nano();
        }
        write_json(tmp + "/config.json", config);
        // Not synced: the config is (above), and a state.json torn by a crash reads as exited.
        write_json_nosync(tmp + "/state.json", State{}.to_json());
        if (::rename(tmp.c_str(), path(id).c_str()) != 0) {
            throw_errno("rename", tmp);
        }
    } catch (...) {
        fs::remove_all(tmp);
        ::unlink((m_dir + "/names/" + name).c_str());
        throw;
    }
    record_container_event(m_store_root, id, config, "create");
    return id;
}

std::string Store::resolve(std::string_view text_in) const {
    std::string text(text_in);
    if (text.empty()) {
        throw NoSuchContainer(text);
    }
    if (is_id(text) && fs::is_dir(path(text))) {
        return text;
    }
    std::string name = strip_slash(text);
    if (valid_name(name) && name.find('/') == std::string::npos) {
        std::string owner = read_link(m_dir + "/names/" + name);
        if (is_id(owner) && fs::is_dir(path(owner))) {
            return owner;
        }
    }
    bool hex = text.size() < 64;
    for (char c : text) {
        hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    if (hex) {
        std::string found;
        for (const auto& id : list()) {
            if (id.compare(0, text.size(), text) == 0) {
                if (!found.empty()) {
                    throw Error("multiple IDs found with provided prefix: " + text);
                }
                found = id;
            }
        }
        if (!found.empty()) {
            return found;
        }
    }
    throw NoSuchContainer(text);
}

std::vector<std::string> Store::list() const {
    std::vector<std::string> ids;
    DIR* d = ::opendir(m_dir.c_str());
    if (d == nullptr) {
        throw_errno("opendir", m_dir);
    }
    while (auto* e = ::readdir(d)) {
        if (is_id(e->d_name)) {
            ids.emplace_back(e->d_name);
        }
    }
    ::closedir(d);
    return ids;
}

nlohmann::ordered_json Store::load_config(const std::string& id) const {
    std::string p = path(id) + "/config.json";
    std::string text;
    try {
        text = fs::read_file(p, k_max_record);
    } catch (const SysError&) {
        if (!fs::exists(path(id))) {
            throw NoSuchContainer(id);
        }
        throw;
    }
    try {
        return nlohmann::ordered_json::parse(text);
    } catch (const std::exception& e) {
        throw Error(p + ": " + e.what());
    }
}

void Store::save_config(const std::string& id, const nlohmann::ordered_json& config) {
    write_json(path(id) + "/config.json", config);
}

std::string Store::name(const std::string& id) const {
    return strip_slash(load_config(id).value("Name", std::string()));
}

State Store::load_state(const std::string& id) const {
    std::string p = path(id) + "/state.json";
    auto read = [&] {
        std::string text;
        try {
            text = fs::read_file(p, k_max_record);
        } catch (const SysError&) {
            if (!fs::exists(path(id))) {
                throw NoSuchContainer(id);
            }
            throw;
        }
        try {
            return State::from_json(nlohmann::json::parse(text));
        } catch (const std::exception& e) {
            // Torn by a crash (state writes are not synced): it is not running.
            State s;
            s.status = "exited";
            s.exit_code = 137;
            s.error = p + " could not be read: " + e.what();
            return s;
        }
    };
    State s = read();
    if (!s.running() || monitor_alive(id)) {
        return s;
    }
    // The monitor is gone: its container died with it (PID 1 has the
    // monitor as parent with PDEATHSIG). Settle it under the lock, reading
    // again: the monitor may have written its last state meanwhile.
    // When the caller (or another process) holds the lock, the corrected
    // state is returned without writing it.
    std::string lp = path(id) + "/lock";
    UniqueFd fd(::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    bool locked = fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0;
    if (locked) {
        s = read();
    }
    if (s.running() && !monitor_alive(id)) {
        s.status = "exited";
        s.exit_code = 137;
        s.pid = 0;
        s.error = "the container's monitor (pid " + std::to_string(s.monitor_pid) + ") died";
        s.finished_at = now_rfc3339nano();
        s.monitor_pid = 0;
        if (locked) {
            save_state(id, s);
        }
    }
    return s;
}

void Store::save_state(const std::string& id, const State& state) const {
    write_json_nosync(path(id) + "/state.json", state.to_json());
}

Lock Store::lock(const std::string& id) const {
    std::string p = path(id) + "/lock";
    UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) {
        if (errno == ENOENT) {
            throw NoSuchContainer(id);
        }
        throw_errno("open", p);
    }
    while (::flock(fd.get(), LOCK_EX) != 0) {
        if (errno != EINTR) {
            throw_errno("flock", p);
        }
    }
    return Lock(std::move(fd));
}

bool Store::monitor_alive(const std::string& id) const {
    std::string p = path(id) + "/monitor.lock";
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return false;
    }
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
        return false; // nobody holds it exclusively
    }
    return errno == EWOULDBLOCK;
}

void Store::rename(const std::string& id, const std::string& new_name_in) {
    std::string new_name = strip_slash(new_name_in);
    check_name(new_name);
    Lock l = lock(id);
    auto config = load_config(id);
    std::string old = strip_slash(config.value("Name", std::string()));
    if (old == new_name) {
        throw Error("Renaming a container with the same name as its current name");
    }
    std::string link = m_dir + "/names/" + new_name;
    if (::symlink(id.c_str(), link.c_str()) != 0) {
        if (errno == EEXIST) {
            std::string owner = read_link(link);
            if (is_id(owner) && !fs::exists(path(owner)) &&
                !fs::exists(m_dir + "/.creating-" + owner)) {
                ::unlink(link.c_str());
                if (::symlink(id.c_str(), link.c_str()) == 0) {
                    goto claimed;
                }
            }
            throw NameConflict("Conflict. The container name \"/" + new_name +
                               "\" is already in use by container \"" + owner +
                               "\". You have to remove (or rename) that container to be able to "
                               "reuse that name.");
        }
        throw_errno("symlink", link);
    }
claimed:
    config["Name"] = "/" + new_name;
    save_config(id, config);
    std::string old_link = m_dir + "/names/" + old;
    if (!old.empty() && read_link(old_link) == id) {
        ::unlink(old_link.c_str());
    }
    record_container_event(m_store_root, id, config, "rename", {{"oldName", "/" + old}});
}

void Store::remove(const std::string& id) {
    std::string name;
    nlohmann::json config = nlohmann::json::object();
    try {
        config = load_config(id);
        name = strip_slash(config.value("Name", std::string()));
    } catch (const NoSuchContainer&) {
        throw;
    } catch (const std::exception&) {
        // an unreadable config still goes
    }
    // Out of the listing first (one rename), then the slow part.
    std::string gone = m_dir + "/.removing-" + id;
    if (::rename(path(id).c_str(), gone.c_str()) != 0) {
        if (errno == ENOENT) {
            throw NoSuchContainer(id);
        }
        throw_errno("rename", path(id));
    }
    std::string link = m_dir + "/names/" + name;
    if (!name.empty() && read_link(link) == id) {
        ::unlink(link.c_str());
    }
    std::string pin = m_store_root + "/leases/pin-container-" + id;
    ::unlink(pin.c_str());
    fs::remove_all(gone);
    record_container_event(m_store_root, id, config, "destroy");
}

} // namespace strata::containers
