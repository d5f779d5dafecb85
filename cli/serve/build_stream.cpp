// The classic builder's stream from strata's build events (build_stream.hpp).
#include "cli/serve/build_stream.hpp"

#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/dockerfile/plan.hpp"

#include <algorithm>
#include <cctype>

namespace strata::cli::serve {

namespace df = strata::dockerfile;
using nlohmann::ordered_json;

ClassicBuildStream::ClassicBuildStream(std::function<void(const ordered_json&)> emit, bool quiet)
    : m_emit(std::move(emit)), m_quiet(quiet) {}

void ClassicBuildStream::prepare(const builder::BuildOptions& o,
                                 const std::map<std::string, std::string>& labels) {
    df::ParseResult ast = df::parse(o.dockerfile_text.value_or(""), "Dockerfile");
    df::PlanOptions po;
    po.build_args = o.build_args;
    po.target = o.target;
    df::BuildPlan plan = df::plan(ast, po);
    std::lock_guard l(m_mu);
    m_lines.clear();
    // Global ARGs: the AST's instructions before the first FROM.
    for (const auto& node : ast.root.children) {
        if (node.keyword() == "from") {
            break;
        }
        if (node.keyword() == "arg") {
            m_lines.push_back(Line{-1, 0, node.original, false, 0});
        }
    }
    m_multi_stage = plan.stages.size() > 1;
    for (std::size_t i = 0; i < plan.stages.size() && i <= plan.target; ++i) {
        const df::Stage& s = plan.stages[i];
        int stage = static_cast<int>(i);
        m_stage_by_label[s.name.empty() ? "stage-" + std::to_string(i) : s.name] = stage;
        m_lines.push_back(Line{stage, 1, s.from.original, s.needed, 0});
        int pos = 2;
        for (const auto& ins : s.instructions) {
            bool shown = ins.keyword == "RUN" || ins.keyword == "COPY" || ins.keyword == "ADD" ||
                         ins.keyword == "WORKDIR";
            m_lines.push_back(Line{stage, pos++, ins.original, shown && s.needed, 0});
        }
    }
    if (!labels.empty()) {
        std::string text = "LABEL";
        for (const auto& [k, v] : labels) {
            text += " " + k + "=" + v;
        }
        m_lines.push_back(Line{static_cast<int>(std::min(plan.target, plan.stages.size() - 1)),
                               k_label_pos, text, false, 0});
    }
    int n = 0;
    for (auto& line : m_lines) {
        line.number = ++n;
    }
    m_total = n;
    // Stages the target does not need are not built: their lines go.
    std::vector<Line> kept;
    for (const auto& line : m_lines) {
        if (line.stage < 0 || plan.stages[static_cast<std::size_t>(line.stage)].needed) {
            kept.push_back(line);
        }
    }
    m_lines = std::move(kept);
}

void ClassicBuildStream::send(const std::string& text) {
    ordered_json j = {{"stream", text}};
    if (m_quiet) {
        m_held_messages.push_back(std::move(j));
        return;
    }
    m_sent = true;
    m_emit(j);
}

bool ClassicBuildStream::started() const {
    std::lock_guard l(m_mu);
    return m_sent || !m_held_messages.empty();
}

// "[stage-1 2/5] RUN make" or "[2/5] RUN make": (stage, position); an
// ONBUILD trigger counts in the stage's positions after its FROM.
std::pair<int, int> ClassicBuildStream::locate(const std::string& name) {
    if (name.empty() || name.front() != '[') {
        return {-2, 0};
    }
    auto close = name.find(']');
    std::string inside = name.substr(1, close == std::string::npos ? 0 : close - 1);
    std::string label;
    auto sp = inside.rfind(' ');
    if (sp != std::string::npos) {
        label = inside.substr(0, sp);
        inside = inside.substr(sp + 1);
    }
    int pos = std::atoi(inside.substr(0, inside.find('/')).c_str());
    int stage = 0;
    if (!label.empty()) {
        auto it = m_stage_by_label.find(label);
        if (it == m_stage_by_label.end()) {
            return {-2, 0};
        }
        stage = it->second;
    }
    std::string text = close == std::string::npos ? "" : name.substr(close + 2);
    if (text.starts_with("ONBUILD ")) {
        ++m_trigger_offset[stage];
        return {stage, 1}; // shown with the stage's FROM
    }
    return {stage, pos - m_trigger_offset[stage]};
}

void ClassicBuildStream::emit_line_header(const Line& l) {
    send("Step " + std::to_string(l.number) + "/" + std::to_string(m_total) + " : " + l.text);
    send("\n");
}

// Shows the lines in order as far as the events allow: a step's header once
// it started, what it held, and the next line once it is done.
void ClassicBuildStream::pump() {
    while (m_cursor < m_lines.size()) {
        const Line& l = m_lines[m_cursor];
        if (!l.shown) {
            // A config instruction of a stage is shown once the builder
            // applied it (with " ---> Using cache" when its record was
            // there); global ARGs and the --label step at once.
            std::optional<bool> cached;
            if (auto it = m_config_cached.find({l.stage, l.pos}); it != m_config_cached.end()) {
                cached = it->second;
            }
            bool waits = l.stage >= 0 && l.pos < k_label_pos && !m_all_done;
            if (waits && !cached) {
                return;
            }
            emit_line_header(l);
            if (cached && *cached) {
                send(" ---> Using cache\n");
            }
            m_header_sent = false;
            ++m_cursor;
            continue;
        }
        Slot& s = m_slots[{l.stage, l.pos}];
        if (!s.started && !m_all_done) {
            return;
        }
        if (!m_header_sent) {
            emit_line_header(l);
            m_header_sent = true;
        }
        if (!s.held.empty()) {
            send(s.held);
            s.held.clear();
        }
        if (!s.done && !m_all_done) {
            return;
        }
        m_header_sent = false;
        ++m_cursor;
    }
}

void ClassicBuildStream::step_started(int id, const std::string& name) {
    std::lock_guard l(m_mu);
    auto where = locate(name);
    m_ids[id] = where;
    Slot& s = m_slots[where];
    s.started = true;
    s.done = false; // an ONBUILD trigger reopens its stage's FROM
    pump();
}

void ClassicBuildStream::step_cached(int id) {
    std::lock_guard l(m_mu);
    auto it = m_ids.find(id);
    if (it == m_ids.end()) {
        return;
    }
    m_slots[it->second].held += " ---> Using cache\n";
    pump();
}

void ClassicBuildStream::step_running(int, const std::string&) {}

void ClassicBuildStream::step_output(int id, std::string_view data) {
    std::lock_guard l(m_mu);
    auto it = m_ids.find(id);
    if (it == m_ids.end()) {
        return;
    }
    m_slots[it->second].held.append(data);
    pump();
}

void ClassicBuildStream::step_note(int, const std::string&) {}

void ClassicBuildStream::config_instruction(std::size_t stage, int pos, bool cached) {
    std::lock_guard l(m_mu);
    m_config_cached[{static_cast<int>(stage), pos - m_trigger_offset[static_cast<int>(stage)]}] =
        cached;
    pump();
}

void ClassicBuildStream::step_done(int id, double) {
    std::lock_guard l(m_mu);
    auto it = m_ids.find(id);
    if (it == m_ids.end()) {
        return;
    }
    m_slots[it->second].done = true;
    pump();
}

void ClassicBuildStream::step_failed(int id, const std::string&, double) {
    std::lock_guard l(m_mu);
    auto it = m_ids.find(id);
    if (it == m_ids.end()) {
        return;
    }
    // Its header and output are shown (the steps before it are done).
    m_slots[it->second].started = true;
    pump();
}

void ClassicBuildStream::message(const std::string& text) {
    std::lock_guard l(m_mu);
    send(text + "\n");
}

std::optional<std::pair<std::string, int>> ClassicBuildStream::run_failure(const std::string& what,
                                                                           int exit_code) {
    const std::string open = "process \"";
    const std::string close = "\" did not complete successfully";
    auto a = what.find(open);
    auto b = what.rfind(close);
    if (exit_code < 0 || a == std::string::npos || b == std::string::npos || b < a) {
        return std::nullopt;
    }
    std::string cmd = what.substr(a + open.size(), b - a - open.size());
    return std::make_pair("The command '" + cmd +
                              "' returned a non-zero code: " + std::to_string(exit_code),
                          exit_code);
}

void ClassicBuildStream::fail(const std::exception& e) {
    std::lock_guard l(m_mu);
    // The failing step's header and output, not the steps after it.
    pump();
    std::string message = e.what();
    ordered_json detail = {{"message", message}};
    if (const auto* se = dynamic_cast<const builder::StepError*>(&e)) {
        if (auto rf = run_failure(se->what(), se->exit_code())) {
            message = rf->first;
            detail = {{"code", rf->second}, {"message", message}};
        }
    }
    for (auto& j : m_held_messages) {
        m_emit(j);
    }
    m_held_messages.clear();
    m_sent = true;
    m_emit(ordered_json{{"errorDetail", detail}, {"error", message}});
}

void ClassicBuildStream::succeed(const builder::BuildResult& r,
                                 const std::vector<std::string>& tags) {
    std::lock_guard l(m_mu);
    // What no event closed (metadata after the last step, the LABEL step).
    m_all_done = true;
    pump();
    std::string id = r.image_id.str();
    std::string short_id = id.substr(7, 12);
    if (m_quiet) {
        m_held_messages.clear();
        m_sent = true;
        m_emit(ordered_json{{"stream", id + "\n"}});
        return;
    }
    send(" ---> " + short_id + "\n");
    for (const auto& w : r.warnings) {
        send(w + "\n");
    }
    m_emit(ordered_json{{"aux", {{"ID", id}}}});
    send("Successfully built " + short_id + "\n");
    for (const auto& t : tags) {
        send("Successfully tagged " + t + "\n");
    }
}

} // namespace strata::cli::serve
