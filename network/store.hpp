// The networks of a store, Docker's model: records, names, address
// management (IPAM) and the endpoints of containers attached to them.
//
//   <store>/networks/<id>/network.json           the record (`network inspect` without Containers)
//   <store>/networks/<id>/endpoints/<cid>.json   one per attached container; its owner (the
//                                                monitor, or `run --rm`) holds an flock on it
//                                                for the endpoint's life: a free lock is stale
//   <store>/networks/names/<name> -> <id>        the name claim (a symlink, atomic)
//   <store>/networks/lock                        flock for IPAM and bridge create/delete
//
// The predefined networks bridge, host and none exist from the first use.
#pragma once

#include "network/ipv4.hpp"
#include "util/fd.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::network {

// Docker's "network X not found".
class NetworkNotFound : public Error {
public:
    using Error::Error;
};

struct NetworkRecord {
    std::string id; // 64 hex
    std::string name;
    std::string created;                // RFC 3339 with nanoseconds
    std::string driver = "bridge";      // bridge, host, null
    std::optional<ipv4::Subnet> subnet; // bridge networks only
    ipv4::Address gateway;
    bool internal = false;
    // Docker's --attachable: recorded and shown; every local network takes
    // containers (it matters to swarm's overlay networks only).
    bool attachable = false;
    bool configured_subnet = false; // --subnet given (Docker allows --ip only then)
    std::map<std::string, std::string> labels;
    std::map<std::string, std::string> options;

    // The Linux bridge: strata0 for the default network, br-<12 hex of id> otherwise.
    std::string device() const;
    bool is_bridge() const { return driver == "bridge"; }
    bool predefined() const { return name == "bridge" || name == "host" || name == "none"; }
    // `network inspect`'s document without Containers.
    nlohmann::ordered_json to_json() const;
    // to_json and what only strata keeps (the file's content).
    nlohmann::ordered_json to_record() const;
    static NetworkRecord from_json(const nlohmann::json& j);
};

struct Endpoint {
    std::string container_id;
    std::string name; // the container's name (without '/')
    std::vector<std::string> aliases;
    ipv4::Address address;
    std::string mac;
    std::string endpoint_id; // 64 hex
    std::string host_veth;
    int owner = 0; // pid of the process holding the endpoint
    // Whether the address was asked for (--ip): Docker's IPAMConfig.
    bool static_address = false;

    nlohmann::ordered_json to_json() const;
    static Endpoint from_json(const nlohmann::json& j);
};

struct CreateOptions {
    std::string name;
    std::string driver = "bridge";
    std::string subnet;  // empty: picked
    std::string gateway; // empty: the subnet's first host
    bool internal = false;
    bool attachable = false;
    std::map<std::string, std::string> labels;
    std::map<std::string, std::string> options;
};

// An flock held for the object's life.
class FileLock {
public:
    FileLock(const std::string& path, bool exclusive);
    FileLock(FileLock&&) noexcept = default;
    FileLock& operator=(FileLock&&) noexcept = default;

private:
    UniqueFd m_fd;
};

class NetworkStore {
public:
    explicit NetworkStore(std::string store_root);

    const std::string& dir() const noexcept { return m_dir; }
    // The store-wide lock (IPAM, bridge devices).
    FileLock lock(bool exclusive = true) const;

    // Docker's `network create`; throws UsageError "network with name X
    // already exists", Error for a subnet that overlaps another network's.
    NetworkRecord create(const CreateOptions& o);
    // By name, full id or unique id prefix; nullopt when none.
    std::optional<NetworkRecord> find(std::string_view ref) const;
    // As find; throws NetworkNotFound "network X not found".
    NetworkRecord load(std::string_view ref) const;
    // Every network, by name.
    std::vector<NetworkRecord> list() const;
    // Removes the record and its name (call with lock() held); throws Error
    // with Docker's message when containers are attached, UsageError for a
    // predefined network. Returns the stale endpoints it swept (their veths
    // are the caller's to delete).
    std::vector<Endpoint> remove(const NetworkRecord& net);

    // Endpoints whose owner is alive (lock held); stale ones are left for sweep().
    std::vector<Endpoint> endpoints(const std::string& network_id) const;
    // The path of an endpoint's file.
    std::string endpoint_path(const std::string& network_id, const std::string& container_id) const;

    // Claims an address on net for a container and writes its endpoint,
    // whose file lock the returned fd holds. Call with lock() held.
    // requested: "" for the first free address, else that one (Docker's
    // messages when it is outside the subnet or in use).
    struct Claim {
        Endpoint endpoint;
        UniqueFd lock; // held while the endpoint lives
    };
    Claim claim(const NetworkRecord& net, const std::string& container_id,
                const std::string& container_name, const std::vector<std::string>& aliases,
                const std::string& requested, const std::string& host_veth);
    // Removes a claim's endpoint file (call with lock() held, before closing claim.lock).
    void release(const std::string& network_id, const std::string& container_id);

    // Endpoints whose owner died (lock free): removed from the store and
    // returned so that the caller deletes their veths. Call with lock() held.
    std::vector<Endpoint> sweep(const std::string& network_id);

private:
    void ensure_predefined();
    NetworkRecord write_new(NetworkRecord rec);
    ipv4::Subnet pick_subnet() const;

    std::string m_dir;
};

// Whether subnet overlaps a route of the calling thread's namespace
// (/proc/net/route, the default route excepted).
bool overlaps_host_route(const ipv4::Subnet& subnet);

std::string random_hex(std::size_t n);
std::string now_rfc3339nano();

} // namespace strata::network
