// The store's event journal: what happened to containers, images, networks
// and volumes, as dockerd's events (`docker events`, GET /events). strata
// has no daemon to hold them, so every strata process that changes the
// store (the CLI, strata serve, a container's monitor) appends them to
// <store>/events.jsonl, one dockerd event message (API 1.41) a line, and
// readers follow the file. The journal is bounded: past 1 MiB the file is
// renamed to events.jsonl.1 (the one before is dropped), so recent history
// stays readable with --since, as dockerd keeps its last events in memory.
// containers/events.hpp adds containers' events with dockerd's attributes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace strata::events {

struct Event {
    std::string type;   // "container", "image", "network", "volume"
    std::string action; // "create", "start", "die", "tag", "connect"...
    std::string actor_id;
    std::map<std::string, std::string> attributes;
    std::int64_t time_nano = 0; // since the epoch

    // dockerd's message: Type, Action, Actor {ID, Attributes}, scope
    // "local", time, timeNano, and for containers and images the old
    // status/id/from fields the docker CLI still prints from.
    nlohmann::ordered_json to_json() const;
    static Event from_json(const nlohmann::json& j); // throws on a malformed line
};

// Appends an event (time: now). Never throws: an event that cannot be
// written is dropped, since what it tells of has already happened.
void record_event(const std::string& store_root, std::string type, std::string action,
                  std::string actor_id, std::map<std::string, std::string> attributes = {});

// dockerd's event filters ("type=container", "event=start", "container=NAME
// or ID", "image=", "label=KEY" or "label=KEY=VALUE", "network=", "volume=",
// "scope=local"): values of one key are alternatives, keys must all match;
// a key dockerd does not know is taken and matches everything, as there.
class EventFilter {
public:
    EventFilter() = default;
    explicit EventFilter(const std::vector<std::string>& filters);
    bool matches(const Event& e) const;

private:
    std::map<std::string, std::vector<std::string>> m_by_key;
};

// A time as dockerd's events and logs take it: seconds since the epoch with
// an optional fraction ("1700000000", "1700000000.5"), which the docker CLI
// sends for --since/--until whatever the user wrote; or RFC 3339
// ("2024-05-01T10:00:00Z", "...+02:00"). In nanoseconds; throws UsageError
// naming the text.
std::int64_t parse_event_time(const std::string& text);

// A --since/--until argument as the docker CLI reads it (GetTimestamp): a
// Go duration before `now_nano` ("10m", "1h30m", "1.5s"), an RFC 3339 time
// or a date, in local time when it names no zone ("2024-05-01",
// "2024-05-01T10:00", "2024-05-01T10:00:00.5"), or seconds since the epoch.
// In nanoseconds; throws UsageError naming the text.
std::int64_t parse_time_argument(const std::string& text, std::int64_t now_nano);

struct EventQuery {
    std::int64_t since = -1; // -1: only events from now on
    std::int64_t until = 0;  // 0: no end (follow)
    EventFilter filter;
};

// The events the query selects, oldest first, given to `sink` (false
// ends). Past ones come from the journal; then, until `until` passes or
// `stop()` says so (asked about every quarter second), new ones as they are
// written. With an `until` in the past it returns after the journal.
void read_events(const std::string& store_root, const EventQuery& query,
                 const std::function<bool(const Event&)>& sink, const std::function<bool()>& stop);

} // namespace strata::events
