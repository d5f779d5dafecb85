// `strata build`: a Dockerfile and a context directory -> an image in the
// store (builder/build.hpp), with BuildKit-style progress on stderr.
//
// --progress plain (and auto when stderr is not a terminal) prints one line
// per event, as `docker build --progress=plain` does:
//   #3 [2/4] RUN make
//   #3 running: 1 file changed: modified main.c
//   #3 0.412 cc -o app main.c
//   #3 layer sha256:... 1.20MB (12 entries)
//   #3 DONE 2.1s
//   #4 [3/4] COPY app /usr/bin/ # or
//   #4 CACHED
// --progress tty (auto on a terminal) shows the same steps, with the running
// step's last output lines redrawn in place. --progress quiet prints only the
// image ID (and a failing step's output).
#include "cli/build.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"

#include "builder/add_source.hpp"
#include "builder/build.hpp"
#include "builder/output.hpp"
#include "builder/remote_cache.hpp"
#include "builder/ssh_agent.hpp"
#include "formats/compression.hpp"
#include "registry/transfer.hpp"
#include "snapshot/reference.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/scope.hpp"
#include "util/tempdir.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fcntl.h>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace strata::cli {

namespace {

struct BuildArgs : BuildSettings {
    std::string file;
    std::string progress = "auto";
    std::vector<std::string> outputs;
    bool explain_cache = false;
    std::string iidfile;
    bool quiet = false;
    std::vector<std::string> cache_from;
    std::vector<std::string> cache_to;
    std::string context;
};

// --cache-to / --cache-from: "type=registry,ref=R[,mode=min|max][,ignore-error=true]",
// or just "R" (as docker buildx takes --cache-from).
struct CacheSpec {
    snapshot::Reference ref;
    bool max = false;
    bool ignore_error = false;
};

CacheSpec parse_cache_spec(const std::string& text, const std::string& flag, bool exporting) {
    if (text.find('=') == std::string::npos) {
        return CacheSpec{snapshot::Reference::parse(text), false, false};
    }
    std::optional<snapshot::Reference> ref;
    std::string type;
    bool max = false;
    bool ignore_error = false;
    std::string unknown;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t comma = text.find(',', pos);
        std::string f =
            text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? text.size() + 1 : comma + 1;
        if (f.empty()) {
            continue;
        }
        auto eq = f.find('=');
        std::string k = f.substr(0, eq);
        std::string v = eq == std::string::npos ? "" : f.substr(eq + 1);
        if (k == "type") {
            type = v;
        } else if (k == "ref") {
            ref = snapshot::Reference::parse(v);
        } else if (k == "mode" && exporting) {
            if (v != "min" && v != "max") {
                throw UsageError(flag + " " + text + ": mode must be min or max, not \"" + v +
                                 "\"");
            }
            max = v == "max";
        } else if (k == "ignore-error" && exporting) {
            if (v != "true" && v != "false") {
                throw UsageError(flag + " " + text + ": ignore-error must be true or false");
            }
            ignore_error = v == "true";
        } else {
            unknown = unknown.empty() ? k : unknown;
        }
    }
    if (type != "registry") {
        throw UsageError(
            flag + " " + text + ": only type=registry is supported" +
            (type.empty() ? std::string(" (type= is missing)") : ", not type=" + type));
    }
    if (!unknown.empty()) {
        throw UsageError(flag + " " + text + ": unknown attribute \"" + unknown +
                         "\" (expected type, ref" + (exporting ? ", mode, ignore-error)" : ")"));
    }
    if (!ref) {
        throw UsageError(flag + " " + text + ": ref=REGISTRY/REPOSITORY[:TAG] is missing");
    }
    return CacheSpec{*ref, max, ignore_error};
}

// --explain-cache: a row per step, printed after the build.
struct ExplainRow {
    std::string step;
    std::string result;
    std::string reason;
};

// Plain and tty progress. Events arrive from several threads (stages build in
// parallel): everything is serialised by one mutex.
class Printer final : public builder::BuildEvents {
public:
    enum class Mode { plain, tty, quiet };
    explicit Printer(Mode mode) : m_mode(mode), m_t0(std::chrono::steady_clock::now()) {
        if (m_mode == Mode::tty) {
            // Each frame (clear, new lines, redraw) leaves in one write():
            // stderr is buffered while the live area is drawn and flushed at
            // the end of every frame (draw_live), so the terminal never shows
            // half a frame.
            std::setvbuf(stderr, nullptr, _IOFBF, 1 << 16);
            std::cerr.unsetf(std::ios::unitbuf);
            // Redraws the running steps' timers a few times a second.
            m_ticker = std::thread([this] {
                std::unique_lock<std::mutex> l(m_mu);
                while (!m_tick_cv.wait_for(l, std::chrono::milliseconds(250),
                                           [this] { return m_stopping; })) {
                    clear_live();
                    draw_live();
                }
                clear_live();
            });
        }
    }
    ~Printer() override { stop(); }
    Printer(const Printer&) = delete;
    Printer& operator=(const Printer&) = delete;

    // Ends the live area (before the final lines are printed).
    void stop() {
        {
            std::lock_guard<std::mutex> l(m_mu);
            m_stopping = true;
        }
        m_tick_cv.notify_all();
        if (m_ticker.joinable()) {
            m_ticker.join();
        }
        if (m_mode == Mode::tty) {
            std::cerr.flush(); // the last frame, then stderr unbuffered again
            std::cerr.setf(std::ios::unitbuf);
            std::setvbuf(stderr, nullptr, _IONBF, 0);
        }
    }

    void step_started(int id, const std::string& name) override {
        std::lock_guard<std::mutex> l(m_mu);
        m_steps[id].name = name;
        m_steps[id].t0 = std::chrono::steady_clock::now();
        m_explained[id] = ExplainRow{name, "-", ""}; // FROM: nothing looked up
        if (m_mode != Mode::quiet) {
            clear_live();
            std::cerr << "#" << id << " " << name << "\n";
            draw_live();
        }
    }
    void step_cached(int id) override {
        {
            std::lock_guard<std::mutex> l(m_mu);
            m_steps[id].cached = true;
            m_explained[id] = ExplainRow{m_steps[id].name, "CACHED", ""};
        }
        line(id, "CACHED");
    }
    void step_running(int id, const std::string& reason) override {
        {
            std::lock_guard<std::mutex> l(m_mu);
            m_explained[id] = ExplainRow{m_steps[id].name, "miss", reason};
        }
        line(id, "running: " + reason);
    }
    // Every step that was looked up in the cache, in step order.
    std::vector<ExplainRow> explained() {
        std::lock_guard<std::mutex> l(m_mu);
        std::vector<ExplainRow> out;
        for (const auto& [id, row] : m_explained) {
            out.push_back(row);
        }
        return out;
    }
    void step_output(int id, std::string_view data) override {
        std::lock_guard<std::mutex> l(m_mu);
        auto& s = m_steps[id];
        s.output.append(data);
        if (m_mode == Mode::quiet) {
            return;
        }
        s.pending.append(data);
        std::size_t nl;
        while ((nl = s.pending.find('\n')) != std::string::npos) {
            emit_output_line(id, s, s.pending.substr(0, nl));
            s.pending.erase(0, nl + 1);
        }
    }
    void step_note(int id, const std::string& note) override { line(id, note); }
    void step_packing(int id, std::uint64_t bytes) override {
        std::lock_guard<std::mutex> l(m_mu);
        auto it = m_steps.find(id);
        if (m_mode != Mode::tty || it == m_steps.end()) {
            return;
        }
        it->second.packed = bytes;
        clear_live();
        draw_live();
    }
    void step_done(int id, double seconds) override {
        flush_pending(id);
        bool cached = false;
        {
            std::lock_guard<std::mutex> l(m_mu);
            cached = m_steps[id].cached;
            if (m_live_id == id) {
                clear_live(); // the finished step's output tail goes away
                m_live_id = 0;
            }
        }
        if (!cached) {
            line(id, fmt::format("DONE {:.1f}s", seconds));
        }
        std::lock_guard<std::mutex> l(m_mu);
        m_steps.erase(id);
        if (m_mode == Mode::tty) {
            clear_live();
            m_live_id = 0;
        }
    }
    void step_failed(int id, const std::string& message, double seconds) override {
        flush_pending(id);
        std::lock_guard<std::mutex> l(m_mu);
        clear_live();
        m_live_id = 0;
        auto& s = m_steps[id];
        m_failed_name = s.name;
        m_failed_output = s.output;
        m_failed_shown = m_mode == Mode::plain;
        if (m_mode != Mode::quiet) {
            std::cerr << "#" << id << " ERROR " << fmt::format("{:.1f}s", seconds);
            if (!message.empty()) {
                std::cerr << ": " << message;
            }
            std::cerr << "\n";
        }
    }
    void message(const std::string& text) {
        std::lock_guard<std::mutex> l(m_mu);
        if (m_mode != Mode::quiet) {
            clear_live();
            std::cerr << text << "\n";
        }
    }
    // The failing step's whole output, framed as BuildKit frames it.
    void report_failure() {
        std::lock_guard<std::mutex> l(m_mu);
        if (m_failed_name.empty() || m_failed_output.empty()) {
            return;
        }
        std::cerr << "------\n > " << m_failed_name << ":\n" << m_failed_output;
        if (m_failed_output.back() != '\n') {
            std::cerr << "\n";
        }
        std::cerr << "------\n";
    }

private:
    struct StepState {
        std::string name;
        std::chrono::steady_clock::time_point t0;
        std::string pending;
        std::string output;
        std::deque<std::string> tail;
        bool cached = false;
        std::optional<std::uint64_t> packed; // layer bytes written so far
    };

    void line(int id, const std::string& text) {
        std::lock_guard<std::mutex> l(m_mu);
        if (m_mode == Mode::quiet) {
            return;
        }
        clear_live();
        std::cerr << "#" << id << " " << text << "\n";
        draw_live();
    }
    void flush_pending(int id) {
        std::lock_guard<std::mutex> l(m_mu);
        auto it = m_steps.find(id);
        if (it != m_steps.end() && !it->second.pending.empty() && m_mode != Mode::quiet) {
            emit_output_line(id, it->second, it->second.pending);
            it->second.pending.clear();
        }
    }
    void emit_output_line(int id, StepState& s, const std::string& text) {
        double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.t0).count();
        if (m_mode == Mode::plain) {
            std::cerr << "#" << id << " " << fmt::format("{:.3f}", t) << " " << text << "\n";
            return;
        }
        // tty: keep the last lines of the running step, redrawn in place.
        clear_live();
        // Only what the line shows on a terminal: no carriage returns, tabs or
        // escape sequences, which would break the count of lines to redraw.
        s.tail.push_back(terminal_text(text.substr(0, 4096)));
        if (s.tail.size() > k_tail_lines) {
            s.tail.pop_front();
        }
        m_live_id = id;
        draw_live();
    }
    void clear_live() {
        if (m_mode != Mode::tty || m_drawn == 0) {
            return;
        }
        for (int i = 0; i < m_drawn; ++i) {
            std::cerr << "\x1b[1A\x1b[2K";
        }
        m_drawn = 0;
    }
    // tty: below the finished lines, one line per running step (its name,
    // time so far and, while its layer is packed, the bytes written), and the
    // last output lines of the step that printed last.
    void draw_live() {
        if (m_mode != Mode::tty || m_stopping) {
            return;
        }
        auto now = std::chrono::steady_clock::now();
        std::size_t width = terminal_width();
        for (const auto& [id, s] : m_steps) {
            if (s.cached) {
                continue;
            }
            std::string text = fmt::format("=> #{} {} {:.1f}s", id, s.name,
                                           std::chrono::duration<double>(now - s.t0).count());
            if (s.packed) {
                text += " packing layer " + human_size(*s.packed);
            }
            const bool colour = use_colour();
            std::cerr << (colour ? "\x1b[34m" : "") << clip(text, width)
                      << (colour ? "\x1b[0m" : "") << "\n";
            ++m_drawn;
            if (id == m_live_id) {
                for (const auto& t : s.tail) {
                    std::cerr << (colour ? "\x1b[2m  " : "  ") << clip(t, width - 2)
                              << (colour ? "\x1b[0m" : "") << "\n";
                    ++m_drawn;
                }
            }
        }
        double total = std::chrono::duration<double>(now - m_t0).count();
        std::cerr << fmt::format("[+] Building {:.1f}s", total) << "\n";
        ++m_drawn;
        std::cerr.flush();
    }
    static std::size_t terminal_width() {
        struct winsize ws {};
        if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) {
            return ws.ws_col - 1;
        }
        return 79;
    }
    // At most width columns (wcwidth), never cutting a character: a wrapped
    // line would break the count of lines to redraw.
    static std::string clip(const std::string& s, std::size_t width) {
        return clip_to_width(s, width);
    }
    // NO_COLOR (https://no-color.org): set and not empty turns colour off.
    static bool use_colour() {
        const char* v = std::getenv("NO_COLOR");
        return v == nullptr || *v == '\0';
    }

    static constexpr std::size_t k_tail_lines = 6;
    Mode m_mode;
    std::chrono::steady_clock::time_point m_t0;
    std::mutex m_mu;
    std::map<int, StepState> m_steps;
    int m_live_id = 0;
    int m_drawn = 0;
    bool m_stopping = false;
    std::condition_variable m_tick_cv;
    std::thread m_ticker;
    std::string m_failed_name;
    std::string m_failed_output;
    bool m_failed_shown = false;
    std::map<int, ExplainRow> m_explained;
};

void print_explain_table(const std::vector<ExplainRow>& rows) {
    std::vector<std::vector<std::string>> t{{"STEP", "CACHE", "REASON"}};
    for (const auto& r : rows) {
        t.push_back({r.step, r.result, r.reason.empty() ? "-" : r.reason});
    }
    std::size_t w0 = 0, w1 = 0;
    for (const auto& r : t) {
        w0 = std::max(w0, r[0].size());
        w1 = std::max(w1, r[1].size());
    }
    for (const auto& r : t) {
        std::cerr << fmt::format("{:<{}}   {:<{}}   {}\n", r[0], w0, r[1], w1, r[2]);
    }
}

void print_dockerfile_excerpt(const std::string& path, const std::optional<std::string>& given,
                              int line) {
    std::string text;
    if (given) {
        text = *given;
    } else {
        try {
            text = fs::read_file(path, 16 << 20);
        } catch (const Error&) {
            return;
        }
    }
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t nl = text.find('\n', pos);
        lines.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
        if (nl == std::string::npos) {
            break;
        }
        pos = nl + 1;
    }
    int from = std::max(1, line - 2);
    int to = std::min(static_cast<int>(lines.size()), line + 2);
    std::cerr << "--------------------\n";
    for (int i = from; i <= to; ++i) {
        std::cerr << fmt::format("{:>4} | {}{}\n", i, i == line ? ">>> " : "", lines[i - 1]);
    }
    std::cerr << "--------------------\n";
}

// All of stdin, up to limit bytes, into an unlinked file in dir.
UniqueFd spool_stdin(const std::string& dir, std::uint64_t limit) {
    UniqueFd f(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!f) {
        throw_errno("open O_TMPFILE", dir);
    }
    const std::string spool = "stdin's copy in " + dir;
    std::uint64_t total = 0;
    fs::read_each(STDIN_FILENO, "stdin", 1 << 20, [&](const char* p, std::size_t n) {
        total += n;
        if (total > limit) {
            throw Error("stdin: more than " + human_size(limit) + " given as the build context");
        }
        fs::write_all(f.get(), spool, p, n);
    });
    if (::lseek(f.get(), 0, SEEK_SET) != 0) {
        throw_errno("lseek", "stdin");
    }
    return f;
}

std::string read_stdin_text(std::size_t limit) {
    std::string text;
    fs::read_each(STDIN_FILENO, "stdin", 1 << 16, [&](const char* p, std::size_t n) {
        text.append(p, n);
        if (text.size() > limit) {
            throw Error("stdin: a Dockerfile of more than " + human_size(limit));
        }
    });
    return text;
}

void run_build(Context& ctx, const BuildArgs& a) {
    builder::BuildOptions o;
    // `-` as the context: a tar (any compression) with the context, or a
    // Dockerfile and no context (as docker build -); `-f -`: the Dockerfile
    // from stdin with a context directory.
    snapshot::Store store = open_store(ctx);
    std::optional<TempDir> stdin_context;
    if (a.context == "-" && a.file == "-") {
        throw UsageError("invalid argument: can't use stdin for both build context and dockerfile");
    }
    if (a.context == "-") {
        stdin_context.emplace(store.tmp_dir(), "context-");
        o.context_label = "-";
        UniqueFd in = spool_stdin(store.tmp_dir(), std::uint64_t(64) << 30);
        context_from_stream(store, in.get(), a.file, stdin_context->path(), "stdin", o);
    } else {
        o.context_dir = a.context;
        o.dockerfile = a.file;
        if (a.file.empty()) {
            o.dockerfile = fs::join(a.context, "Dockerfile");
        } else if (a.file == "-") {
            o.dockerfile_text = read_stdin_text(16 << 20);
            o.dockerfile = fs::join(a.context, "Dockerfile");
        }
    }
    apply_build_settings(a, o);
    std::vector<builder::OutputSpec> outputs;
    bool stdout_taken = false;
    for (const auto& out : a.outputs) {
        outputs.push_back(builder::parse_output(out));
        if (outputs.back().dest == "-") {
            if (stdout_taken) {
                throw UsageError("--output: only one output can go to stdout");
            }
            stdout_taken = true;
        }
    }
    if (stdout_taken && ::isatty(STDOUT_FILENO)) {
        throw UsageError("--output: refusing to write a tar to a terminal (redirect stdout)");
    }
    std::string pull = pull_policy(a.pull);
    std::vector<CacheSpec> cache_from;
    for (const auto& c : a.cache_from) {
        cache_from.push_back(parse_cache_spec(c, "--cache-from", false));
    }
    std::vector<CacheSpec> cache_to;
    for (const auto& c : a.cache_to) {
        cache_to.push_back(parse_cache_spec(c, "--cache-to", true));
    }

    Printer::Mode mode;
    std::string progress = a.quiet ? "quiet" : a.progress;
    if (progress == "plain") {
        mode = Printer::Mode::plain;
    } else if (progress == "tty") {
        mode = Printer::Mode::tty;
    } else if (progress == "quiet") {
        mode = Printer::Mode::quiet;
    } else if (progress == "auto") {
        mode = ::isatty(STDERR_FILENO) ? Printer::Mode::tty : Printer::Mode::plain;
    } else {
        throw UsageError("--progress must be auto, plain, tty or quiet, not \"" + progress + "\"");
    }
    Printer printer(mode);
    o.events = &printer;

    BaseImageFetcher fetcher(store, pull, a.tls_verify,
                             [&printer](const std::string& m) { printer.message(m); });
    fetcher.install(o);

    // --cache-from: a cache that cannot be read is a warning, as in BuildKit;
    // the build goes on without it.
    std::vector<std::unique_ptr<builder::RegistryCacheSource>> sources;
    for (const auto& c : cache_from) {
        printer.message("importing cache manifest from " + c.ref.full());
        try {
            sources.push_back(std::make_unique<builder::RegistryCacheSource>(
                c.ref, registry::client_options_for(c.ref.domain(), a.tls_verify)));
            printer.message(fmt::format("imported cache {} ({} records)",
                                        sources.back()->manifest_digest().str(),
                                        sources.back()->records()));
            o.cache_from.push_back(sources.back().get());
        } catch (const std::exception& e) {
            printer.message("WARNING: --cache-from " + c.ref.full() + ": " + e.what() +
                            " (building without it)");
        }
    }

    // Ctrl-C / SIGTERM / SIGHUP: blocked in every thread and taken by one
    // thread that cancels the build, so that mounts and temporary
    // directories are cleaned up on the way out.
    builder::Cancellation cancellation;
    o.cancellation = &cancellation;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigset_t old_mask;
    pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);
    std::atomic<bool> finished{false};
    std::atomic<int> got_signal{0};
    std::thread sig_thread([&] {
        while (true) {
            int sig = 0;
            if (sigwait(&sigs, &sig) != 0 || finished) {
                return;
            }
            got_signal = sig;
            cancellation.cancel();
        }
    });
    auto stop_sig_thread = ScopeExit([&] {
        finished = true;
        pthread_kill(sig_thread.native_handle(), SIGTERM);
        sig_thread.join();
        pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    });

    auto t0 = std::chrono::steady_clock::now();
    builder::BuildResult r;
    try {
        r = builder::build(store, o);
        printer.stop();
    } catch (const builder::Cancelled&) {
        printer.stop();
        printer.message("build cancelled");
        ctx.exit_code = 128 + (got_signal ? got_signal.load() : SIGINT);
        return;
    } catch (const builder::StepError& e) {
        printer.stop();
        if (mode != Printer::Mode::plain || e.exit_code() >= 0) {
            printer.report_failure();
        }
        print_dockerfile_excerpt(o.dockerfile, o.dockerfile_text, e.line());
        throw Error("failed to solve: " + std::string(e.what()));
    }
    for (const auto& w : r.warnings) {
        printer.message(w);
    }
    for (const auto& spec : outputs) {
        if (spec.type == "store") {
            continue;
        }
        printer.message("exporting to " + spec.type + " " +
                        (spec.dest == "-" ? "stdout" : spec.dest));
        builder::write_output(store, r.manifest, a.tags, spec);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printer.message(fmt::format("writing image {} done ({} steps run, {} cached, {:.2f}s)",
                                r.image_id.str(), r.steps_run, r.steps_cached, secs));
    for (const auto& t : a.tags) {
        printer.message("naming to " + snapshot::Reference::parse(t).full() + " done");
    }
    if (!a.iidfile.empty()) {
        fs::write_file_atomic(a.iidfile, r.image_id.str());
    }
    if (a.explain_cache) {
        print_explain_table(printer.explained());
    }
    if (mode == Printer::Mode::quiet) {
        // stdout carries only the tar when an output goes there (BuildKit
        // prints no ID then either): the ID goes to stderr.
        (stdout_taken ? std::cerr : std::cout) << r.image_id.str() << "\n";
    }
    // --cache-to: after the image is built and named; a failure fails the
    // command (unless ignore-error=true) but leaves the image.
    builder::BuildCache cache(store.cache_dir());
    for (const auto& c : cache_to) {
        printer.message("exporting cache to " + c.ref.full());
        try {
            registry::TransferOptions t;
            t.client = registry::client_options_for(c.ref.domain(), a.tls_verify);
            auto e0 = std::chrono::steady_clock::now();
            builder::CacheExport ex = builder::export_cache(
                store, cache, c.max ? r.all_cache_keys : r.cache_keys, c.ref, t);
            double esecs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
            printer.message(fmt::format(
                "exporting cache to {} done: manifest {} ({} records, {} layers; "
                "{} uploaded, {} already there, {:.1f}s)",
                c.ref.full(), ex.manifest.str(), ex.records, ex.layers,
                ex.push.blobs_uploaded + ex.push.blobs_mounted, ex.push.blobs_existed, esecs));
        } catch (const std::exception& e) {
            if (c.ignore_error) {
                printer.message("WARNING: --cache-to " + c.ref.full() + ": " + e.what());
                continue;
            }
            throw Error("--cache-to " + c.ref.full() + ": exporting the build cache failed: " +
                        e.what() + " (the image " + r.image_id.str() + " was built)");
        }
    }
}

} // namespace

void register_build(CLI::App& app, Context& ctx) {
    auto a = std::make_shared<BuildArgs>();
    auto* cmd = app.add_subcommand("build", "Build an image from a Dockerfile");
    cmd->add_option("-f,--file", a->file, "Dockerfile (default: CONTEXT/Dockerfile; - : stdin)");
    cmd->add_option("-t,--tag", a->tags, "Name the image NAME[:TAG] (repeatable)");
    cmd->add_option("--build-arg", a->build_args, "Set a build-time variable K=V (repeatable)");
    cmd->add_option("--target", a->target, "Build this stage (default: the last)");
    cmd->add_flag("--no-cache", a->no_cache, "Do not use the build cache");
    cmd->add_option("--network", a->network, "Network for RUN: none (default) or host");
    cmd->add_option("--secret", a->secrets, "Secret for RUN --mount=type=secret: id=ID,src=PATH");
    cmd->add_option(
        "--ssh", a->ssh,
        "ssh agent for RUN --mount=type=ssh: default|ID[=SOCKET] (default: $SSH_AUTH_SOCK)");
    cmd->add_option("--allow", a->allow,
                    "Grant an entitlement: network.host (RUN --network=host) or security.insecure "
                    "(RUN --security=insecure, a privileged step)");
    cmd->add_option("--progress", a->progress, "auto, plain, tty or quiet");
    cmd->add_flag("-q,--quiet", a->quiet, "Print only the image ID");
    cmd->add_option("-o,--output", a->outputs,
                    "Also write type=oci|docker|oci-archive|docker-archive|tar|local,dest=PATH "
                    "(- : the root filesystem as a tar on stdout)");
    cmd->add_option("--compression", a->compression,
                    "Layer compression: gzip (default), zstd, none");
    cmd->add_option("--label", a->labels, "Set an image label K=V (repeatable)");
    cmd->add_flag("--explain-cache", a->explain_cache,
                  "After the build, print a table of every step: CACHED or miss, and why");
    cmd->add_option("--platform", a->platform, "Target platform (only the host's)");
    cmd->add_option("--iidfile", a->iidfile, "Write the image ID to this file");
    cmd->add_option("--pull", a->pull,
                    "Pull FROM images: missing (default: when not in the store), always, never");
    cmd->add_option("--cache-from", a->cache_from,
                    "Use a build cache from a registry: type=registry,ref=REF (repeatable)");
    cmd->add_option("--cache-to", a->cache_to,
                    "Export the build cache to a registry: type=registry,ref=REF[,mode=min|max]");
    cmd->add_option("--tls-verify", a->tls_verify,
                    "Verify registry TLS certificates; false also allows plain HTTP")
        ->default_str("true");
    cmd->add_option(
           "CONTEXT", a->context,
           "Build context directory, or - (a tar, any compression, or a Dockerfile on stdin)")
        ->required();
    cmd->callback([&ctx, a] { run_build(ctx, *a); });
}

} // namespace strata::cli
