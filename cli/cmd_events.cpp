// strata events: the store's event journal (util/event_log.hpp) as `docker
// events` prints it: past events with --since, then new ones as they come
// until --until or Ctrl-C; --filter and --format as Docker's.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/template.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/go_time.hpp"

#include <chrono>
#include <ctime>
#include <iostream>
#include <memory>

namespace strata::cli {

namespace {

struct EventsOpts {
    std::string since;
    std::string until;
    std::vector<std::string> filters;
    std::string format;
};

// Go's "2006-01-02T15:04:05.000000000Z07:00" in local time, as the docker CLI.
std::string rfc3339_nano_fixed(std::int64_t nanos) {
    return format_go_time(nanos, TimeZoneStyle::local, TimeFraction::nine);
}

// docker/cli's printOutput: time, type, action, actor, (sorted attributes).
std::string default_line(const events::Event& e) {
    std::string out =
        rfc3339_nano_fixed(e.time_nano) + " " + e.type + " " + e.action + " " + e.actor_id;
    if (!e.attributes.empty()) {
        out += " (";
        bool first = true;
        for (const auto& [k, v] : e.attributes) { // std::map: sorted as Go's sort.Strings
            out += (first ? "" : ", ") + k + "=" + v;
            first = false;
        }
        out += ")";
    }
    return out;
}

void run_events(Context& ctx, const EventsOpts& o) {
    std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    events::EventQuery q;
    if (!o.since.empty()) {
        q.since = events::parse_time_argument(o.since, now);
    }
    if (!o.until.empty()) {
        q.until = events::parse_time_argument(o.until, now);
        if (q.until < std::max<std::int64_t>(q.since, 0)) {
            throw UsageError("`since` time (" + o.since + ") cannot be after `until` time (" +
                             o.until + ")");
        }
    }
    for (const auto& f : o.filters) {
        if (f.find('=') == std::string::npos) {
            throw UsageError("bad format of filter (expected name=value)");
        }
    }
    q.filter = events::EventFilter(o.filters);
    std::optional<Template> tmpl;
    if (!o.format.empty()) {
        tmpl = Template::parse(o.format == "json" ? "{{json .}}" : o.format);
    }
    events::read_events(
        ctx.store_root(), q,
        [&](const events::Event& e) {
            if (tmpl) {
                std::cout << tmpl->execute(e.to_json()) << "\n";
            } else {
                std::cout << default_line(e) << "\n";
            }
            std::cout.flush();
            return static_cast<bool>(std::cout);
        },
        [] { return false; });
}

} // namespace

void register_events(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<EventsOpts>();
    auto* cmd = app.add_subcommand("events", "Get real time events from the store");
    cmd->add_option("--since", o->since,
                    "Show events since a time (RFC 3339, date, seconds) or duration (10m)");
    cmd->add_option("--until", o->until, "Stream events until this time or duration");
    cmd->add_option("-f,--filter", o->filters,
                    "Filter output based on conditions provided (type=, event=, container=, "
                    "image=, label=, network=, volume=)");
    cmd->add_option("--format", o->format, "Format output using a Go template, or json");
    cmd->callback([&ctx, o] { run_events(ctx, *o); });
}

} // namespace strata::cli
