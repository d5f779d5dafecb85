#include "network/nat.hpp"

#include "util/error.hpp"
#include "util/fd.hpp"

#include <nftables/libnftables.h>
#include <nlohmann/json.hpp>

#include "util/shared_library.hpp"
#include <algorithm>
#include <cerrno>

#include <fcntl.h>
#include <mutex>
#include <set>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::network::nat {

namespace {

constexpr const char* k_tag = "strata:";
constexpr const char* k_lock_dir = "/run/strata";
constexpr const char* k_lock_path = "/run/strata/nat.lock";

// libnftables' entry points, found with dlsym in libnftables.so.1.
struct Api {
    strata::SharedLibrary lib{"libnftables.so.1", "libnftables1"};
    decltype(&::nft_ctx_new) ctx_new = nullptr;
    decltype(&::nft_ctx_free) ctx_free = nullptr;
    decltype(&::nft_ctx_buffer_output) buffer_output = nullptr;
    decltype(&::nft_ctx_get_output_buffer) get_output = nullptr;
    decltype(&::nft_ctx_buffer_error) buffer_error = nullptr;
    decltype(&::nft_ctx_get_error_buffer) get_error = nullptr;
    decltype(&::nft_ctx_output_set_flags) set_output_flags = nullptr;
    decltype(&::nft_run_cmd_from_buffer) run = nullptr;
};

Api load() {
    Api api;
    // A missing symbol gives the library up: api.lib.error() names it.
    (void)(api.lib.bind(api.ctx_new, "nft_ctx_new") && api.lib.bind(api.ctx_free, "nft_ctx_free") &&
           api.lib.bind(api.buffer_output, "nft_ctx_buffer_output") &&
           api.lib.bind(api.get_output, "nft_ctx_get_output_buffer") &&
           api.lib.bind(api.buffer_error, "nft_ctx_buffer_error") &&
           api.lib.bind(api.get_error, "nft_ctx_get_error_buffer") &&
           api.lib.bind(api.set_output_flags, "nft_ctx_output_set_flags") &&
           api.lib.bind(api.run, "nft_run_cmd_from_buffer"));
    return api;
}

const Api& api() {
    static const Api loaded = load();
    return loaded;
}

struct Result {
    int rc = 0;
    std::string output;
    std::string error;
};

// One nft command batch (atomic in the kernel). json: JSON output with handles.
Result run_nft(const std::string& commands, bool json = false) {
    const Api& a = api();
    if (!a.lib.loaded()) {
        throw Error(a.lib.error());
    }
    nft_ctx* ctx = a.ctx_new(NFT_CTX_DEFAULT);
    if (ctx == nullptr) {
        throw Error("libnftables: cannot create a context");
    }
    a.buffer_output(ctx);
    a.buffer_error(ctx);
    if (json) {
        a.set_output_flags(ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
    }
    Result r;
    r.rc = a.run(ctx, commands.c_str());
    const char* out = a.get_output(ctx);
    const char* err = a.get_error(ctx);
    r.output = out != nullptr ? out : "";
    r.error = err != nullptr ? err : "";
    a.ctx_free(ctx);
    return r;
}

void must(const std::string& commands) {
    Result r = run_nft(commands);
    if (r.rc != 0) {
        std::string msg = r.error;
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
            msg.pop_back();
        }
        throw Error("nftables refused the rules: " + (msg.empty() ? "error" : msg));
    }
}

// The cross-process lock (and a mutex for the threads of this one).
class Lock {
public:
    Lock() : m_guard(mutex()) {
        ::mkdir(k_lock_dir, 0700);
        m_fd.reset(::open(k_lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!m_fd) {
            throw_errno("open", k_lock_path);
        }
        while (::flock(m_fd.get(), LOCK_EX) != 0) {
            if (errno != EINTR) {
                throw_errno("flock", k_lock_path);
            }
        }
    }

private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    std::lock_guard<std::mutex> m_guard;
    UniqueFd m_fd;
};

const char* k_skeleton =
    "add table ip strata\n"
    "add chain ip strata prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
    "add chain ip strata output { type nat hook output priority -100; policy accept; }\n"
    "add chain ip strata postrouting { type nat hook postrouting priority srcnat; policy accept; "
    "}\n"
    "add chain ip strata forward { type filter hook forward priority filter; policy accept; }\n"
    "add chain ip strata isolate\n";

std::string comment(const std::string& owner) {
    return " comment \"" + std::string(k_tag) + owner + "\"\n";
}

// Owners and interface names go into nft's text: only the characters they
// can have (ids are hex, devices [A-Za-z0-9_.-]).
void check_word(const std::string& what, const std::string& value) {
    if (value.empty() || value.size() > 128) {
        throw Error("nat: invalid " + what + " '" + value + "'");
    }
    for (char c : value) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok) {
            throw Error("nat: invalid " + what + " '" + value + "'");
        }
    }
}

struct TaggedRule {
    std::string chain;
    long long handle = 0;
    std::string owner;
};

// The rules of table ip strata that carry a tag (empty without the table).
std::vector<TaggedRule> tagged_rules() {
    Result r = run_nft("list table ip strata", true);
    std::vector<TaggedRule> out;
    if (r.rc != 0) {
        if (r.error.find("No such file or directory") != std::string::npos) {
            return out; // no table
        }
        throw Error("nft list table ip strata: " + r.error);
    }
    nlohmann::json doc = nlohmann::json::parse(r.output, nullptr, false);
    if (doc.is_discarded() || !doc.contains("nftables") || !doc["nftables"].is_array()) {
        throw Error("nft: unexpected JSON listing of table ip strata");
    }
    for (const auto& item : doc["nftables"]) {
        if (!item.contains("rule")) {
            continue;
        }
        const auto& rule = item["rule"];
        std::string c = rule.value("comment", std::string());
        if (c.rfind(k_tag, 0) != 0) {
            continue;
        }
        out.push_back({rule.value("chain", std::string()), rule.value("handle", 0LL),
                       c.substr(std::char_traits<char>::length(k_tag))});
    }
    return out;
}

// Deletes the rules for which drop(owner) is true; the table when no tagged
// rule is left. Call with the Lock held.
template <typename Pred> void delete_where(Pred drop) {
    std::vector<TaggedRule> rules = tagged_rules();
    std::string batch;
    std::size_t kept = 0;
    for (const auto& r : rules) {
        if (drop(r.owner)) {
            batch +=
                "delete rule ip strata " + r.chain + " handle " + std::to_string(r.handle) + "\n";
        } else {
            ++kept;
        }
    }
    if (kept == 0) {
        Result probe = run_nft("list table ip strata");
        if (probe.rc == 0) {
            batch = "delete table ip strata\n";
        }
    }
    if (!batch.empty()) {
        must(batch);
    }
}

} // namespace

std::string unavailable_reason() {
    const Api& a = api();
    if (!a.lib.loaded()) {
        return a.lib.error();
    }
    Result r = run_nft("list tables ip");
    if (r.rc != 0) {
        std::string msg = r.error;
        while (!msg.empty() && msg.back() == '\n') {
            msg.pop_back();
        }
        return "nftables: " + (msg.empty() ? std::string("the kernel refuses") : msg);
    }
    return "";
}

bool available() {
    return unavailable_reason().empty();
}

void add_network(const NetworkRules& net) {
    check_word("owner", net.owner);
    check_word("bridge", net.bridge);
    const std::string sub = net.subnet.str();
    const std::string br = "\"" + net.bridge + "\"";
    const std::string tag = comment(net.owner);
    std::string batch = k_skeleton;
    batch +=
        "add rule ip strata forward iifname " + br + " oifname != " + br + " jump isolate" + tag;
    batch += "add rule ip strata isolate oifname " + br + " drop" + tag;
    if (net.internal) {
        batch += "add rule ip strata forward iifname " + br + " oifname != " + br + " drop" + tag;
        batch += "add rule ip strata forward oifname " + br + " iifname != " + br + " drop" + tag;
    } else {
        batch += "add rule ip strata postrouting ip saddr " + sub + " oifname != " + br +
                 " masquerade" + tag;
        batch += "add rule ip strata postrouting ip saddr " + sub + " oifname " + br +
                 " ct status dnat masquerade" + tag;
    }
    Lock lock;
    delete_where([&](const std::string& o) { return o == net.owner; });
    must(batch);
}

void add_ports(const std::string& owner, ipv4::Address container_ip,
               const std::vector<PortBinding>& bound) {
    check_word("owner", owner);
    std::string rules;
    for (const auto& b : bound) {
        if (b.host_port == 0) {
            throw Error("nat: port " + b.key() + " has no host port chosen");
        }
        if (b.proto != "tcp" && b.proto != "udp") {
            throw Error("nat: unsupported protocol " + b.proto);
        }
        std::string daddr;
        if (!b.host_ip.empty()) {
            ipv4::Address a = ipv4::Address::parse(b.host_ip);
            if ((a.value >> 24) == 127) {
                continue; // the proxy's
            }
            daddr = "ip daddr " + a.str() + " ";
        }
        const std::string match = daddr + "fib daddr type local " + b.proto + " dport " +
                                  std::to_string(b.host_port) + " dnat to " + container_ip.str() +
                                  ":" + std::to_string(b.container_port) + comment(owner);
        rules += "add rule ip strata prerouting " + match;
        rules += "add rule ip strata output ip daddr != 127.0.0.0/8 " + match;
    }
    if (rules.empty()) {
        return;
    }
    Lock lock;
    must(k_skeleton + rules);
}

void remove_owner(const std::string& owner) {
    if (!api().lib.loaded()) {
        return; // nothing can have been added
    }
    Lock lock;
    delete_where([&](const std::string& o) { return o == owner; });
}

void keep_only(const std::vector<std::string>& live) {
    if (!api().lib.loaded()) {
        return;
    }
    std::set<std::string> keep(live.begin(), live.end());
    Lock lock;
    delete_where([&](const std::string& o) { return !keep.contains(o); });
}

std::vector<std::string> owners() {
    if (!api().lib.loaded()) {
        return {};
    }
    std::set<std::string> all;
    for (const auto& r : tagged_rules()) {
        all.insert(r.owner);
    }
    return {all.begin(), all.end()};
}

} // namespace strata::network::nat
