// The classic builder's JSON stream of POST /build (what dockerd's builder
// without BuildKit sends and the docker CLI prints), made from strata's
// build events (builder::BuildEvents):
//   {"stream":"Step 2/4 : RUN make"} {"stream":"\n"}
//   {"stream":" ---> Using cache\n"} or the step's output as it comes
//   {"aux":{"ID":"sha256:..."}} {"stream":"Successfully built 0123456789ab\n"}
//   {"stream":"Successfully tagged app:latest\n"}
// and a failure as {"errorDetail":{"code":N,"message":M},"error":M}.
//
// Steps are numbered over the Dockerfile's instructions as the classic
// builder numbers them (global ARGs, then every stage up to the target;
// the `labels` parameter adds a last LABEL step) and shown in that order,
// though strata runs independent stages at once: a later stage's events
// wait until the earlier steps are shown. strata makes no intermediate
// images or containers, so there are no " ---> Running in" lines and no
// " ---> ID" line but after the last step (the image built). Stages the target does not need are
// not built (as BuildKit) and not shown.
#pragma once

#include "api/http.hpp"
#include "builder/build.hpp"
#include "cli/build.hpp"

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace strata::cli::serve {

class ClassicBuildStream final : public builder::BuildEvents {
public:
    // emit sends one JSON message (the endpoint starts the response on the
    // first); quiet (q=1) holds every message back: only the ID is sent on
    // success, everything on failure, as dockerd does.
    ClassicBuildStream(std::function<void(const nlohmann::ordered_json&)> emit, bool quiet);

    // Reads the steps from o's Dockerfile text (plan with its build args and
    // target); `labels` are the build's --label ones. Throws what the
    // Dockerfile's parse throws (nothing is sent then).
    void prepare(const builder::BuildOptions& o, const std::map<std::string, std::string>& labels);

    void step_started(int id, const std::string& name) override;
    void step_cached(int id) override;
    void step_running(int id, const std::string& reason) override;
    void step_output(int id, std::string_view data) override;
    void step_note(int id, const std::string& note) override;
    void step_done(int id, double seconds) override;
    void step_failed(int id, const std::string& message, double seconds) override;
    void config_instruction(std::size_t stage, int pos, bool cached) override;

    // A line of the build's own ("pulling busybox"), shown as it comes.
    void message(const std::string& text);
    // True once anything was sent or held back: errors then go in the stream.
    bool started() const;
    // The build failed: what is left of the steps, then the error message.
    void fail(const std::exception& e);
    // The build succeeded: the remaining steps, the ID, the tags (as given,
    // familiar: "app:latest").
    void succeed(const builder::BuildResult& r, const std::vector<std::string>& tags);

    // dockerd's message for a failed RUN ("The command '/bin/sh -c make'
    // returned a non-zero code: 2") from strata's StepError text, and the
    // exit code; nullopt when the error is not a process's exit.
    static std::optional<std::pair<std::string, int>> run_failure(const std::string& what,
                                                                  int exit_code);

private:
    struct Line {
        int stage = -1; // -1: a global ARG
        int pos = 0;    // the builder's position in the stage (FROM is 1)
        std::string text;
        bool shown = false; // the builder reports it as a step
        int number = 0;     // the classic Step number
    };
    struct Slot {
        bool started = false;
        bool done = false;
        std::string held; // events that came before the line's turn
    };
    void send(const std::string& text);
    void pump();
    void emit_line_header(const Line& l);
    std::pair<int, int> locate(const std::string& name);

    std::function<void(const nlohmann::ordered_json&)> m_emit;
    bool m_quiet;
    std::vector<nlohmann::ordered_json> m_held_messages; // quiet
    bool m_sent = false;
    mutable std::mutex m_mu;
    std::vector<Line> m_lines;
    int m_total = 0;
    std::size_t m_cursor = 0;
    bool m_header_sent = false; // for m_lines[m_cursor]
    std::map<std::pair<int, int>, Slot> m_slots;
    std::map<int, std::pair<int, int>> m_ids; // builder step id -> (stage, pos)
    std::map<int, int> m_trigger_offset;      // stage -> ONBUILD steps seen
    std::map<std::string, int> m_stage_by_label;
    bool m_multi_stage = false;
    std::map<std::pair<int, int>, bool> m_config_cached; // (stage, pos) -> cached
    static constexpr int k_label_pos = 1 << 20;          // the --label step's position
    bool m_all_done = false;                             // the build succeeded: every line is shown
};

// The parameters of POST /build, as strata build's settings.
struct BuildQuery {
    BuildSettings settings;
    std::string dockerfile; // in the context; "" for Dockerfile
    bool quiet = false;
    std::map<std::string, std::string> labels;
};
// Parses them; HttpError 400 naming a parameter strata cannot honour (a
// zero or empty value, as the docker CLI sends them, is no request).
BuildQuery parse_build_query(const api::Request& req);

} // namespace strata::cli::serve
