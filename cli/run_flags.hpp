// Docker's spellings of the run flags that only the CLI reads: --env-file,
// --mount and --add-host. Each throws UsageError naming the flag and value.
#pragma once

#include "containers/volumes.hpp"
#include "formats/oci.hpp"
#include "network/ports.hpp"
#include "runner/runner.hpp"
#include "snapshot/lazy_index.hpp"
#include "snapshot/store.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <iosfwd>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace CLI {
class App;
}

namespace strata::cli {

// The variables of an --env-file as docker reads it (opts.ParseEnvFile):
// K=V lines (V verbatim: no quotes removed, no expansion), lines starting
// with # (after leading white space) and empty lines ignored, a bare K takes
// `lookup(K)` and is dropped when that is unset. A name with white space,
// an empty name or bytes that are not UTF-8 are errors naming the line.
std::vector<std::string>
parse_env_file(const std::string& path,
               const std::function<std::optional<std::string>(const std::string&)>& lookup);
std::vector<std::string>
parse_env_text(std::string_view text, const std::string& path,
               const std::function<std::optional<std::string>(const std::string&)>& lookup);

// --mount type=bind|volume|tmpfs,source=..,target=..,readonly,tmpfs-size=..,
// tmpfs-mode=..,volume-nocopy,volume-opt=K=V,volume-label=K=V as docker's
// (field names and aliases: src/source, dst/destination/target,
// ro/readonly[=true|false]). A relative bind source is made absolute from
// the current directory and must exist. type=volume is docker's default; a
// volume without a source is anonymous.
using MountFlag = std::variant<runner::Mount, containers::VolumeRequest>;
MountFlag parse_mount(std::string_view value);

// -v / --volume [SRC:]DST[:OPTS] as docker reads it on Linux: SRC a host
// path (absolute, or starting with "." and made absolute) is a bind mount
// (OPTS ro, rw); any other SRC is a volume name (OPTS ro, rw, nocopy; z and
// Z are accepted and ignored); DST alone is an anonymous volume.
MountFlag parse_volume_flag(std::string_view value);

// The volumes of one one-shot `strata run`, as Docker gives them to a
// container: the -v and --mount flags (binds and tmpfs go to spec.mounts
// at once, volumes are made when missing and put in use), then, in
// prepare(), an anonymous volume for each of the image's VOLUME entries
// that no mount covers, the local driver's mounts and the copy-up of the
// image's content into empty volumes. With remove_anonymous (run --rm) the
// anonymous volumes made for the container go when it ends.
class RunVolumes {
public:
    RunVolumes(const snapshot::Store& store, const formats::ImageConfig& image,
               const std::vector<std::string>& volume_flags,
               const std::vector<std::string>& mount_flags, bool remove_anonymous,
               runner::RunSpec& spec, const std::string& container_id = {});
    RunVolumes(const RunVolumes&) = delete;
    RunVolumes& operator=(const RunVolumes&) = delete;
    ~RunVolumes();

    // Once spec.rootfs is the container's mounted root, in strata's own
    // mount namespace; adds the volumes' mounts to spec (sorted as Docker
    // sorts mounts: by the depth of their target).
    void prepare(runner::RunSpec& spec);

    // prepare() for a container recorded now (create, run -d): the copy-up
    // reads the image's layers (stacked read-only in a child process), the
    // local driver's options become the container's own
    // mounts (ContainerVolumes::record_mounts), and config (the record's
    // Docker inspect document) gets the volumes in Mounts and HostConfig.
    // lazy: the run's --lazy / --no-lazy, which the monitor will follow.
    void prepare_record(runner::RunSpec& spec, snapshot::Store& store, const snapshot::Image& img,
                        snapshot::LazyMode lazy);
    void record(nlohmann::ordered_json& config) const;

    // --volumes-from CONTAINER[:ro|:rw]: the volumes and binds of a
    // recorded container (its config.json's Mounts) at the same targets,
    // read-only or read-write as asked (default: as they are there). A
    // target the flags already mount keeps the flag's mount. Throws
    // NoSuchContainer for an unknown container.
    void add_volumes_from(const std::vector<std::string>& from, runner::RunSpec& spec);

private:
    std::vector<containers::VolumeRequest> image_requests(const runner::RunSpec& spec) const;
    static void sort_mounts(runner::RunSpec& spec);

    containers::VolumeStore m_store;
    containers::ContainerVolumes m_volumes;
    std::set<std::string> m_image_volumes;
    bool m_remove_anonymous;
    std::vector<std::string> m_volumes_from;
};

// --add-host NAME:IP or NAME=IP (IPv6 in brackets or bare, as docker); the
// address must be an IP address or host-gateway (kept as is: the gateway
// of the container's network replaces it at start, containers/network.hpp).
std::pair<std::string, std::string> parse_add_host(std::string_view value);

// Docker's resource flags on `run` and `create`, written into r as parsed:
// -m/--memory, --memory-swap (-1: unlimited), --memory-reservation (go-units
// RAMInBytes: 64m, 1.5g, 512k, 1024b), --cpus (a decimal: 1.5),
// -c/--cpu-shares, --cpuset-cpus, --cpuset-mems, --pids-limit (-1 or 0:
// unlimited), --blkio-weight (10..1000, 0: unset), --oom-kill-disable. A
// value that does not parse throws UsageError naming the flag.
void add_resource_flags(CLI::App* cmd, runner::Resources& r);

// The flags' values as Docker's daemon checks them (runner::verify_resources
// against this host): fills memory-swap's default, prints Docker's
// "WARNING: ..." on warn for each limit the host cannot apply (and drops
// it), throws UsageError with Docker's message for an invalid combination.
runner::Resources checked_resources(const runner::Resources& r, std::ostream& warn);

// HostConfig's fields for r, with Docker's names and values (Memory,
// MemorySwap, MemoryReservation, NanoCpus, CpuShares, CpuPeriod, CpuQuota,
// CpusetCpus, CpusetMems, PidsLimit (null when unset), BlkioWeight,
// OomKillDisable), as `docker inspect` shows them.
void resources_host_config(const runner::Resources& r, nlohmann::ordered_json& host);

// The pieces, for tests: go-units RAMInBytes (throws UsageError "FLAG:
// invalid size: 'TEXT'"), docker's --memory-swap ("-1" or a size), --cpus
// (a decimal number of cpus -> nano cpus; more than 9 decimals is "too precise").
std::int64_t parse_memory_bytes(const std::string& flag, const std::string& text);
std::int64_t parse_memory_swap(const std::string& flag, const std::string& text);
std::int64_t parse_nano_cpus(const std::string& flag, const std::string& text);

// --health-cmd, --health-interval, --health-timeout, --health-start-period,
// --health-start-interval, --health-retries, --no-healthcheck (Docker's).
struct HealthFlags {
    std::string cmd;
    std::string interval; // Go durations ("30s", "1m")
    std::string timeout;
    std::string start_period;
    std::string start_interval;
    int retries = 0;
    bool none = false;
    // The container's own check (Config.Healthcheck before the image's is
    // merged in), nullopt when no flag was given. Throws UsageError with
    // Docker's messages (negative values, --no-healthcheck with --health-*).
    std::optional<formats::Healthcheck> healthcheck() const;
};
void add_health_flags(CLI::App* cmd, HealthFlags& flags);

// -p/--publish and -P/--publish-all (Docker's; the grammar is
// network/ports.hpp's). The container's config keeps them as Docker does:
// HostConfig.PortBindings, HostConfig.PublishAllPorts, and the published
// ports added to Config.ExposedPorts; at each start the monitor publishes
// network::ports::bindings_for_start() of that config.
struct PublishFlags {
    std::vector<std::string> publish;
    bool publish_all = false;

    // The -p values parsed; UsageError with Docker's text ("invalid
    // containerPort: x").
    std::vector<network::PortBinding> bindings() const;
    // What to publish now (run --rm): the -p bindings and, with -P, every
    // exposed port not bound already.
    std::vector<network::PortBinding> for_start(const std::set<std::string>& exposed) const;
    // Into a container record (Docker's inspect document): HostConfig's
    // PortBindings and PublishAllPorts, Config.ExposedPorts.
    void record(nlohmann::ordered_json& config) const;
};
void add_publish_flags(CLI::App* cmd, PublishFlags& flags);

} // namespace strata::cli
