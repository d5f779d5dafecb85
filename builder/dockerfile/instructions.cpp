#include "builder/dockerfile/instructions.hpp"

#include "builder/dockerfile/error.hpp"
#include "util/text.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <climits>
#include <map>

namespace strata::dockerfile {

void fail_at(const Location& loc, const std::string& message, std::string_view needle) {
    int column = loc.column;
    if (!needle.empty()) {
        if (const auto pos = loc.text.find(needle); pos != std::string::npos) {
            column = static_cast<int>(pos) + 1;
        }
    }
    throw DockerfileError(loc.file, loc.line, column, message, loc.text);
}

namespace {

std::string upper(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return s;
}

std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1);
    std::vector<std::size_t> cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        prev[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            cur[j] = std::min(
                {prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string suggest(std::string_view word, const std::vector<std::string>& options,
                    const char* prefix = "") {
    std::string best;
    std::size_t best_d = 3;
    for (const auto& o : options) {
        const std::size_t d = edit_distance(lower(std::string(word)), lower(o));
        if (d < best_d) {
            best_d = d;
            best = o;
        }
    }
    return best.empty() ? std::string() : fmt::format(" (did you mean {}{}?)", prefix, best);
}

const std::vector<std::string>& all_instructions() {
    static const std::vector<std::string> names = {
        "ADD",    "ARG",   "CMD",         "COPY",  "ENTRYPOINT", "ENV",
        "EXPOSE", "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
        "RUN",    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR"};
    return names;
}

// BuildKit's BFlags.
class Flags {
public:
    enum class Type { Bool, String, Strings };

    Flags(const std::vector<std::string>& args, const Location& loc, std::string ins)
        : m_args(args), m_loc(loc), m_ins(std::move(ins)) {}

    void add(const std::string& name, Type t) { m_defs[name] = t; }

    void parse() {
        for (const auto& arg : m_args) {
            m_current = arg.substr(0, arg.find('='));
            if (!arg.starts_with("--")) {
                fail(fmt::format("arg should start with -- : {}", arg));
            }
            if (arg == "--") {
                return;
            }
            const std::string body = arg.substr(2);
            const auto eq = body.find('=');
            const std::string name = body.substr(0, eq);
            const bool has_value = eq != std::string::npos;
            const std::string value = has_value ? body.substr(eq + 1) : std::string();
            auto it = m_defs.find(name);
            if (it == m_defs.end()) {
                std::vector<std::string> names;
                for (const auto& [n, t] : m_defs) {
                    names.push_back(n);
                }
                fail(fmt::format("unknown flag: --{}{}", name, suggest(name, names, "--")));
            }
            if (m_used.count(name) != 0 && it->second != Type::Strings) {
                fail(fmt::format("duplicate flag specified: --{}", name));
            }
            auto& slot = m_used[name];
            switch (it->second) {
            case Type::Bool: {
                if (has_value && value.empty()) {
                    fail(fmt::format("missing a value on flag: --{}", name));
                }
                const std::string v = lower(value);
                if (v == "true" || v.empty()) {
                    slot = {"true"};
                } else if (v == "false") {
                    slot = {"false"};
                } else {
                    fail(
                        fmt::format("expecting boolean value for flag --{}, not: {}", name, value));
                }
                break;
            }
            case Type::String:
                if (!has_value) {
                    fail(fmt::format("missing a value on flag: --{}", name));
                }
                slot = {value};
                break;
            case Type::Strings:
                if (!has_value) {
                    fail(fmt::format("missing a value on flag: --{}", name));
                }
                slot.push_back(value);
                break;
            }
        }
    }

    bool used(const std::string& name) const { return m_used.count(name) != 0; }
    std::string str(const std::string& name) const {
        auto it = m_used.find(name);
        return it == m_used.end() || it->second.empty() ? std::string() : it->second.back();
    }
    bool boolean(const std::string& name) const { return str(name) == "true"; }
    std::vector<std::string> strings(const std::string& name) const {
        auto it = m_used.find(name);
        return it == m_used.end() ? std::vector<std::string>{} : it->second;
    }

private:
    [[noreturn]] void fail(const std::string& msg) const {
        fail_at(m_loc, m_ins + ": " + msg, m_current);
    }

    const std::vector<std::string>& m_args;
    const Location& m_loc;
    std::string m_ins;
    std::map<std::string, Type> m_defs;
    std::map<std::string, std::vector<std::string>> m_used;
    std::string m_current;
};

CommandLine command_line(const Node& n, std::size_t skip = 0) {
    CommandLine c;
    std::vector<std::string> args = n.args();
    args.erase(args.begin(),
               args.begin() + static_cast<std::ptrdiff_t>(std::min(skip, args.size())));
    if (n.json) {
        c.args = std::move(args);
    } else {
        std::string joined;
        for (std::size_t i = 0; i < args.size(); ++i) {
            joined += (i ? " " : "") + args[i];
        }
        if (!args.empty()) {
            c.args.push_back(joined);
        }
        c.shell_form = true;
    }
    return c;
}

// ^[a-z][a-z0-9-_.]*$
bool valid_stage_name(std::string_view s) {
    if (s.empty() || !(s[0] >= 'a' && s[0] <= 'z')) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
}

// A heredoc name used as a COPY/ADD source ("<<EOF", "<<-EOF", "<<'EOF'").
std::optional<std::string> heredoc_source_name(const std::string& word,
                                               const std::vector<Heredoc>& docs) {
    if (word.find("<<") == std::string::npos) {
        return std::nullopt;
    }
    std::size_t i = 0;
    while (i < word.size() && word[i] >= '0' && word[i] <= '9') {
        ++i;
    }
    if (word.compare(i, 2, "<<") != 0) {
        return std::nullopt;
    }
    i += 2;
    if (i < word.size() && word[i] == '-') {
        ++i;
    }
    while (i < word.size() && (word[i] == ' ' || word[i] == '\t')) {
        ++i;
    }
    std::string name;
    for (; i < word.size(); ++i) {
        if (word[i] != '\'' && word[i] != '"') {
            name += word[i];
        }
    }
    for (const auto& d : docs) {
        if (d.name == name) {
            return name;
        }
    }
    return std::nullopt;
}

void require_args(const Location& loc, const std::string& ins, std::size_t n, std::size_t min,
                  std::size_t max) {
    if (n < min) {
        if (min == 1) {
            fail_at(loc, ins + " requires at least one argument");
        }
        fail_at(loc, fmt::format("{} requires at least {} arguments", ins, min));
    }
    if (n > max) {
        if (max == 1) {
            fail_at(loc, ins + " requires exactly one argument");
        }
        fail_at(loc, fmt::format("{} accepts at most {} arguments", ins, max));
    }
}

std::vector<KeyValue> key_values(const Node& n, const Location& loc, const std::string& ins) {
    const auto args = n.args();
    if (args.empty()) {
        fail_at(loc, ins + " requires at least one argument");
    }
    if (args.size() % 3 != 0) {
        fail_at(loc, "invalid number of arguments for " + ins);
    }
    std::vector<KeyValue> out;
    for (std::size_t i = 0; i < args.size(); i += 3) {
        if (args[i].empty()) {
            fail_at(loc, ins + " names must not be empty");
        }
        out.push_back({args[i], args[i + 1]});
    }
    return out;
}

InstructionData build(const Node& n, const std::string& kw, const Location& loc, char escape) {
    Flags flags(n.flags, loc, kw);
    const auto args = n.args();
    if (kw == "FROM") {
        flags.add("platform", Flags::Type::String);
        flags.parse();
        if (args.size() != 1 && args.size() != 3) {
            fail_at(loc, "FROM requires either one or three arguments");
        }
        FromInstr f;
        f.image = args[0];
        f.platform = flags.str("platform");
        if (args.size() == 3) {
            if (lower(args[1]) != "as") {
                fail_at(loc, fmt::format("FROM: expected \"AS\", got \"{}\"", args[1]));
            }
            f.stage_name = lower(args[2]);
            if (!valid_stage_name(f.stage_name)) {
                fail_at(loc, fmt::format("invalid name for build stage: \"{}\", name can't start "
                                         "with a number or contain symbols",
                                         args[2]));
            }
        }
        return f;
    }
    if (kw == "RUN") {
        flags.add("mount", Flags::Type::Strings);
        flags.add("network", Flags::Type::String);
        flags.add("security", Flags::Type::String);
        flags.parse();
        RunInstr r;
        r.cmd = command_line(n);
        if (r.cmd.args.empty()) {
            fail_at(loc, "RUN requires at least one argument");
        }
        r.heredocs = n.heredocs;
        r.mount_specs = flags.strings("mount");
        for (const auto& spec : r.mount_specs) {
            if (spec.empty()) {
                fail_at(loc,
                        "RUN: --mount needs a value, e.g. --mount=type=cache,target=/root/.cache");
            }
        }
        if (flags.used("network")) {
            r.network = flags.str("network");
            if (r.network != "default" && r.network != "none" && r.network != "host") {
                fail_at(loc,
                        fmt::format("RUN: unsupported network mode \"{}\" (default, none, host)",
                                    r.network));
            }
        }
        if (flags.used("security")) {
            r.security = flags.str("security");
            if (r.security != "sandbox" && r.security != "insecure") {
                fail_at(loc,
                        fmt::format("RUN: unsupported security mode \"{}\" (sandbox, insecure)",
                                    r.security));
            }
        }
        return r;
    }
    if (kw == "CMD" || kw == "ENTRYPOINT") {
        flags.parse();
        CommandLine c = command_line(n);
        if (kw == "CMD") {
            return CmdInstr{c};
        }
        return EntrypointInstr{c};
    }
    if (kw == "SHELL") {
        flags.parse();
        if (!n.json) {
            fail_at(loc, "SHELL requires the arguments to be in JSON form");
        }
        if (args.empty()) {
            fail_at(loc, "SHELL requires at least one argument");
        }
        return ShellInstr{args};
    }
    if (kw == "LABEL") {
        flags.parse();
        return LabelInstr{key_values(n, loc, kw)};
    }
    if (kw == "ENV") {
        flags.parse();
        return EnvInstr{key_values(n, loc, kw)};
    }
    if (kw == "EXPOSE") {
        flags.parse();
        require_args(loc, kw, args.size(), 1, SIZE_MAX);
        return ExposeInstr{args};
    }
    if (kw == "COPY" || kw == "ADD") {
        CopyInstr c;
        c.add = kw == "ADD";
        flags.add("exclude", Flags::Type::Strings);
        flags.add("chown", Flags::Type::String);
        flags.add("chmod", Flags::Type::String);
        flags.add("link", Flags::Type::Bool);
        if (c.add) {
            flags.add("keep-git-dir", Flags::Type::Bool);
            flags.add("checksum", Flags::Type::String);
            flags.add("unpack", Flags::Type::Bool);
        } else {
            flags.add("parents", Flags::Type::Bool);
            flags.add("from", Flags::Type::String);
        }
        flags.parse();
        if (args.size() < 2) {
            fail_at(loc, fmt::format("{} requires at least two arguments, but only {} provided. "
                                     "Destination could not be determined",
                                     kw, args.empty() ? "none was" : "one was"));
        }
        c.dest = args.back();
        for (std::size_t i = 0; i + 1 < args.size(); ++i) {
            if (!n.json) {
                if (auto name = heredoc_source_name(args[i], n.heredocs)) {
                    for (const auto& d : n.heredocs) {
                        if (d.name == *name) {
                            c.contents.push_back({d.name, d.content, d.expand, d.chomp});
                            break;
                        }
                    }
                    continue;
                }
            }
            c.sources.push_back(args[i]);
        }
        c.excludes = flags.strings("exclude");
        c.chown = flags.str("chown");
        c.chmod = flags.str("chmod");
        c.link = flags.boolean("link");
        if (c.add) {
            c.keep_git_dir = flags.boolean("keep-git-dir");
            c.checksum = flags.str("checksum");
            if (flags.used("unpack")) {
                c.unpack = flags.boolean("unpack");
            }
            if (flags.used("checksum") && c.checksum.empty()) {
                fail_at(loc, "ADD: --checksum needs a value such as sha256:<hex>");
            }
        } else {
            c.parents = flags.boolean("parents");
            c.from = flags.str("from");
            if (flags.used("from") && c.from.empty()) {
                fail_at(loc, "COPY: --from needs a stage name, stage index or image");
            }
        }
        return c;
    }
    if (kw == "VOLUME") {
        flags.parse();
        require_args(loc, kw, args.size(), 1, SIZE_MAX);
        for (const auto& a : args) {
            if (text::trim_space(a).empty()) {
                fail_at(loc, "VOLUME specified can not be an empty string");
            }
        }
        return VolumeInstr{args};
    }
    if (kw == "USER" || kw == "WORKDIR" || kw == "STOPSIGNAL" || kw == "MAINTAINER") {
        flags.parse();
        require_args(loc, kw, args.size(), 1, 1);
        if (kw == "USER") {
            return UserInstr{args[0]};
        }
        if (kw == "WORKDIR") {
            return WorkdirInstr{args[0]};
        }
        if (kw == "STOPSIGNAL") {
            return StopsignalInstr{args[0]};
        }
        return MaintainerInstr{args[0]};
    }
    if (kw == "ARG") {
        flags.parse();
        require_args(loc, kw, args.size(), 1, SIZE_MAX);
        ArgInstr a;
        for (const auto& w : args) {
            ArgDef d;
            const auto eq = w.find('=');
            d.name = w.substr(0, eq);
            if (eq != std::string::npos) {
                d.default_value = w.substr(eq + 1);
            }
            if (d.name.empty()) {
                fail_at(loc, fmt::format("ARG names can not be blank: {}", w));
            }
            a.args.push_back(std::move(d));
        }
        return a;
    }
    if (kw == "ONBUILD") {
        flags.parse();
        if (n.next.empty() || n.next[0].children.empty()) {
            fail_at(loc, "ONBUILD requires at least one argument");
        }
        const Node& trigger = n.next[0].children[0];
        const std::string tkw = upper(trigger.value);
        if (tkw == "ONBUILD") {
            fail_at(loc, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        }
        if (tkw == "FROM" || tkw == "MAINTAINER") {
            fail_at(loc, fmt::format("{} isn't allowed as an ONBUILD trigger", tkw));
        }
        if (std::find(all_instructions().begin(), all_instructions().end(), tkw) ==
            all_instructions().end()) {
            fail_at(loc, fmt::format("unknown instruction: {}{}", trigger.value,
                                     suggest(tkw, all_instructions())));
        }
        // Validate the trigger as an instruction of its own.
        Node t = trigger;
        t.heredocs = n.heredocs;
        (void)build(t, tkw, loc, escape);
        // The expression is the text after the ONBUILD keyword.
        std::string_view orig = text::trim_left_space(n.original);
        orig.remove_prefix(std::min(orig.size(), n.value.size()));
        return OnbuildInstr{std::string(text::trim_space(orig))};
    }
    if (kw == "HEALTHCHECK") {
        if (args.empty()) {
            fail_at(loc, "HEALTHCHECK requires at least one argument");
        }
        HealthcheckInstr h;
        const std::string typ = upper(args[0]);
        if (typ == "NONE") {
            flags.parse();
            if (args.size() != 1) {
                fail_at(loc, "HEALTHCHECK NONE takes no arguments");
            }
            h.test = {"NONE"};
            return h;
        }
        flags.add("interval", Flags::Type::String);
        flags.add("timeout", Flags::Type::String);
        flags.add("start-period", Flags::Type::String);
        flags.add("start-interval", Flags::Type::String);
        flags.add("retries", Flags::Type::String);
        flags.parse();
        if (typ != "CMD") {
            fail_at(loc, fmt::format("Unknown type \"{}\" in HEALTHCHECK (try CMD)", args[0]));
        }
        CommandLine c = command_line(n, 1);
        if (c.args.empty()) {
            fail_at(loc, "Missing command after HEALTHCHECK CMD");
        }
        h.test.push_back(c.shell_form ? "CMD-SHELL" : "CMD");
        h.test.insert(h.test.end(), c.args.begin(), c.args.end());
        auto interval = [&](const char* name) -> std::int64_t {
            const std::string v = flags.str(name);
            if (v.empty()) {
                return 0;
            }
            std::int64_t d = 0;
            try {
                d = parse_go_duration(v);
            } catch (const Error& e) {
                fail_at(loc, fmt::format("HEALTHCHECK --{}: {}", name, e.what()));
            }
            if (d == 0) {
                return 0;
            }
            if (d < 1000000) {
                fail_at(loc,
                        fmt::format("HEALTHCHECK: Interval \"{}\" cannot be less than 1ms", name));
            }
            return d;
        };
        h.interval_ns = interval("interval");
        h.timeout_ns = interval("timeout");
        h.start_period_ns = interval("start-period");
        h.start_interval_ns = interval("start-interval");
        if (const std::string r = flags.str("retries"); !r.empty()) {
            long long v = 0;
            std::size_t i = r[0] == '-' || r[0] == '+' ? 1 : 0;
            if (i == r.size()) {
                fail_at(loc, fmt::format("HEALTHCHECK --retries: invalid number \"{}\"", r));
            }
            for (; i < r.size(); ++i) {
                if (r[i] < '0' || r[i] > '9' || v > INT_MAX) {
                    fail_at(loc, fmt::format("HEALTHCHECK --retries: invalid number \"{}\"", r));
                }
                v = v * 10 + (r[i] - '0');
            }
            if (v > INT_MAX) {
                fail_at(loc, fmt::format("HEALTHCHECK --retries: out of range \"{}\"", r));
            }
            if (r[0] == '-' && v != 0) {
                fail_at(loc, fmt::format("--retries cannot be negative ({})", r));
            }
            h.retries = static_cast<int>(v);
        }
        return h;
    }
    fail_at(loc,
            fmt::format("unknown instruction: {}{}", n.value, suggest(kw, all_instructions())));
}

bool is_octal_mode(std::string_view s) {
    if (s.empty() || s.size() > 5) {
        return false;
    }
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '7') {
            return false;
        }
        v = v * 8 + static_cast<unsigned>(c - '0');
    }
    return v <= 07777;
}

// Symbolic chmod as BuildKit accepts it: [ugoa]*[+-=][rwxXst]* clauses, comma separated.
bool is_symbolic_mode(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    std::size_t i = 0;
    while (true) {
        while (i < s.size() && std::string_view("ugoa").find(s[i]) != std::string_view::npos) {
            ++i;
        }
        if (i >= s.size() || std::string_view("+-=").find(s[i]) == std::string_view::npos) {
            return false;
        }
        while (i < s.size() && std::string_view("+-=").find(s[i]) != std::string_view::npos) {
            ++i;
            while (i < s.size() &&
                   std::string_view("rwxXst").find(s[i]) != std::string_view::npos) {
                ++i;
            }
        }
        if (i == s.size()) {
            return true;
        }
        if (s[i] != ',') {
            return false;
        }
        ++i;
    }
}

bool valid_checksum(std::string_view s) {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos) {
        return false;
    }
    const std::string_view alg = s.substr(0, colon);
    const std::string_view hex = s.substr(colon + 1);
    std::size_t want = 0;
    if (alg == "sha256") {
        want = 64;
    } else if (alg == "sha384") {
        want = 96;
    } else if (alg == "sha512") {
        want = 128;
    } else {
        return false;
    }
    return hex.size() == want && std::all_of(hex.begin(), hex.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

bool valid_port_spec(std::string_view p) {
    std::string_view port = p;
    std::string_view proto;
    if (auto slash = p.find('/'); slash != std::string_view::npos) {
        port = p.substr(0, slash);
        proto = p.substr(slash + 1);
        const std::string lp = lower(std::string(proto));
        if (lp != "tcp" && lp != "udp" && lp != "sctp") {
            return false;
        }
    }
    auto number = [](std::string_view s) {
        if (s.empty() || s.size() > 5) {
            return -1;
        }
        int v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') {
                return -1;
            }
            v = v * 10 + (c - '0');
        }
        return v <= 65535 ? v : -1;
    };
    if (auto dash = port.find('-'); dash != std::string_view::npos) {
        const int a = number(port.substr(0, dash));
        const int b = number(port.substr(dash + 1));
        return a >= 0 && b >= 0 && a <= b;
    }
    return number(port) >= 0;
}

bool valid_signal(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return s.size() <= 2 && std::stoi(std::string(s)) >= 1 && std::stoi(std::string(s)) <= 64;
    }
    std::string u = upper(std::string(s));
    if (u.starts_with("SIG")) {
        u = u.substr(3);
    }
    static const std::array<const char*, 36> names = {
        "ABRT", "ALRM",   "BUS",  "CHLD",   "CLD",   "CONT", "FPE",  "HUP",    "ILL",
        "INT",  "IO",     "IOT",  "KILL",   "PIPE",  "POLL", "PROF", "PWR",    "QUIT",
        "SEGV", "STKFLT", "STOP", "SYS",    "TERM",  "TRAP", "TSTP", "TTIN",   "TTOU",
        "URG",  "USR1",   "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "UNUSED", "RTMIN"};
    if (std::find_if(names.begin(), names.end(), [&](const char* n) { return u == n; }) !=
        names.end()) {
        return true;
    }
    // RTMIN+n / RTMAX-n
    for (const char* base : {"RTMIN+", "RTMAX-"}) {
        if (u.starts_with(base) && u.size() > 6 && u.size() <= 8 &&
            std::all_of(u.begin() + 6, u.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return true;
        }
    }
    return false;
}

bool valid_platform(std::string_view p) {
    if (p.empty()) {
        return true;
    }
    int parts = 0;
    std::size_t b = 0;
    while (true) {
        auto e = p.find('/', b);
        std::string_view part = p.substr(b, e == std::string_view::npos ? p.size() - b : e - b);
        ++parts;
        if (part.empty() || !std::all_of(part.begin(), part.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '-' || c == '.';
            })) {
            return false;
        }
        if (e == std::string_view::npos) {
            break;
        }
        b = e + 1;
    }
    return parts <= 3;
}

bool valid_chown(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    const auto colon = s.find(':');
    if (colon != std::string_view::npos) {
        return colon > 0 && colon + 1 < s.size() &&
               s.find(':', colon + 1) == std::string_view::npos;
    }
    return true;
}

std::vector<std::string> split_csv(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (true) {
        std::string field;
        if (i < s.size() && s[i] == '"') {
            ++i;
            bool closed = false;
            while (i < s.size()) {
                if (s[i] == '"') {
                    if (i + 1 < s.size() && s[i + 1] == '"') {
                        field += '"';
                        i += 2;
                        continue;
                    }
                    ++i;
                    closed = true;
                    break;
                }
                field += s[i++];
            }
            if (!closed) {
                throw Error("extraneous or missing \" in quoted-field");
            }
            if (i < s.size() && s[i] != ',') {
                throw Error("extraneous or missing \" in quoted-field");
            }
        } else {
            while (i < s.size() && s[i] != ',') {
                if (s[i] == '"') {
                    throw Error("bare \" in non-quoted-field");
                }
                field += s[i++];
            }
        }
        out.push_back(std::move(field));
        if (i >= s.size()) {
            return out;
        }
        ++i; // ','
    }
}

std::optional<bool> parse_bool(std::string_view v) {
    const std::string l = lower(std::string(v));
    if (l == "1" || l == "t" || l == "true") {
        return true;
    }
    if (l == "0" || l == "f" || l == "false") {
        return false;
    }
    return std::nullopt;
}

std::uint32_t parse_u32(std::string_view v, int base, const char* what) {
    if (v.empty()) {
        throw Error(fmt::format("invalid {} \"{}\"", what, v));
    }
    std::uint64_t n = 0;
    for (char c : v) {
        const int d = c >= '0' && c <= '9' ? c - '0' : -1;
        if (d < 0 || d >= base) {
            throw Error(fmt::format("invalid {} \"{}\"", what, v));
        }
        n = n * static_cast<unsigned>(base) + static_cast<unsigned>(d);
        if (n > 0xFFFFFFFFu) {
            throw Error(fmt::format("{} \"{}\" is out of range", what, v));
        }
    }
    return static_cast<std::uint32_t>(n);
}

std::uint64_t parse_size(std::string_view v) {
    // Docker's units.RAMInBytes: number with optional b/k/m/g/t/p suffix (binary).
    std::size_t i = 0;
    std::uint64_t n = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
        if (n > (UINT64_MAX - 9) / 10) {
            throw Error(fmt::format("invalid size \"{}\"", v));
        }
        n = n * 10 + static_cast<unsigned>(v[i] - '0');
        ++i;
    }
    if (i == 0) {
        throw Error(fmt::format("invalid size \"{}\"", v));
    }
    std::string unit = lower(std::string(v.substr(i)));
    if (unit.ends_with("ib")) {
        unit = unit.substr(0, unit.size() - 2);
    } else if (unit.size() == 2 && unit.back() == 'b') {
        unit.pop_back();
    }
    int shift = 0;
    if (unit.empty() || unit == "b") {
        shift = 0;
    } else if (unit == "k") {
        shift = 10;
    } else if (unit == "m") {
        shift = 20;
    } else if (unit == "g") {
        shift = 30;
    } else if (unit == "t") {
        shift = 40;
    } else if (unit == "p") {
        shift = 50;
    } else {
        throw Error(fmt::format("invalid size \"{}\"", v));
    }
    if (shift != 0 && n > (UINT64_MAX >> shift)) {
        throw Error(fmt::format("size \"{}\" is out of range", v));
    }
    return n << shift;
}

std::string quote_json(const std::vector<std::string>& v) {
    nlohmann::json j = v;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::int64_t parse_go_duration(std::string_view s) {
    const std::string orig(s);
    auto bad = [&]() -> Error { return Error(fmt::format("invalid duration \"{}\"", orig)); };
    bool neg = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s == "0") {
        return 0;
    }
    if (s.empty()) {
        throw bad();
    }
    long double total = 0;
    while (!s.empty()) {
        long double v = 0;
        bool digits = false;
        while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
            v = v * 10 + (s[0] - '0');
            s.remove_prefix(1);
            digits = true;
        }
        if (!s.empty() && s[0] == '.') {
            s.remove_prefix(1);
            long double scale = 0.1L;
            while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
                v += (s[0] - '0') * scale;
                scale /= 10;
                s.remove_prefix(1);
                digits = true;
            }
        }
        if (!digits) {
            throw bad();
        }
        std::size_t u = 0;
        while (u < s.size() && s[u] != '.' && !(s[u] >= '0' && s[u] <= '9')) {
            ++u;
        }
        const std::string_view unit = s.substr(0, u);
        s.remove_prefix(u);
        long double mult = 0;
        if (unit == "ns") {
            mult = 1;
        } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
            mult = 1e3L;
        } else if (unit == "ms") {
            mult = 1e6L;
        } else if (unit == "s") {
            mult = 1e9L;
        } else if (unit == "m") {
            mult = 60e9L;
        } else if (unit == "h") {
            mult = 3600e9L;
        } else {
            throw Error(unit.empty()
                            ? fmt::format("missing unit in duration \"{}\"", orig)
                            : fmt::format("unknown unit \"{}\" in duration \"{}\"", unit, orig));
        }
        total += v * mult;
        if (total > 9.223372036854775807e18L) {
            throw Error(fmt::format("invalid duration \"{}\"", orig));
        }
    }
    const auto r = static_cast<std::int64_t>(total);
    return neg ? -r : r;
}

Mount parse_mount(std::string_view spec) {
    Mount m;
    m.raw = std::string(spec);
    const std::vector<std::string> fields = split_csv(spec);
    // The type decides the defaults, so find it first.
    for (const auto& f : fields) {
        const auto eq = f.find('=');
        if (lower(f.substr(0, eq)) == "type") {
            const std::string t = eq == std::string::npos ? "" : lower(f.substr(eq + 1));
            if (t == "bind") {
                m.type = Mount::Type::Bind;
            } else if (t == "cache") {
                m.type = Mount::Type::Cache;
            } else if (t == "tmpfs") {
                m.type = Mount::Type::Tmpfs;
            } else if (t == "secret") {
                m.type = Mount::Type::Secret;
            } else if (t == "ssh") {
                m.type = Mount::Type::Ssh;
            } else {
                throw Error(fmt::format("unsupported mount type \"{}\" (bind, cache, tmpfs, "
                                        "secret, ssh)",
                                        t));
            }
        }
    }
    m.read_only = m.type == Mount::Type::Bind;
    bool rw_set = false;
    for (const auto& f : fields) {
        const auto eq = f.find('=');
        const std::string key = lower(f.substr(0, eq));
        const bool has = eq != std::string::npos;
        const std::string val = has ? f.substr(eq + 1) : std::string();
        if (key == "type") {
            continue;
        }
        if (!has) {
            if (key == "readonly" || key == "ro") {
                m.read_only = true;
                rw_set = true;
                continue;
            }
            if (key == "readwrite" || key == "rw") {
                m.read_only = false;
                rw_set = true;
                continue;
            }
            if (key == "required") {
                m.required = true;
                continue;
            }
            throw Error(fmt::format("invalid field '{}' must be a key=value pair", f));
        }
        if (key == "target" || key == "dst" || key == "destination") {
            m.target = val;
        } else if (key == "source" || key == "src") {
            m.source = val;
        } else if (key == "from") {
            m.from = val;
        } else if (key == "readonly" || key == "ro" || key == "readwrite" || key == "rw") {
            auto b = parse_bool(val);
            if (!b) {
                throw Error(fmt::format("invalid value for {}: {}", key, val));
            }
            m.read_only = (key == "readonly" || key == "ro") ? *b : !*b;
            rw_set = true;
        } else if (key == "id") {
            m.id = val;
        } else if (key == "sharing") {
            const std::string s = lower(val);
            if (s == "shared") {
                m.sharing = Mount::Sharing::Shared;
            } else if (s == "private") {
                m.sharing = Mount::Sharing::Private;
            } else if (s == "locked") {
                m.sharing = Mount::Sharing::Locked;
            } else {
                throw Error(fmt::format("unsupported sharing value \"{}\"", val));
            }
        } else if (key == "mode") {
            m.mode = parse_u32(val, 8, "mode");
            if (*m.mode > 07777) {
                throw Error(fmt::format("mode \"{}\" is out of range", val));
            }
        } else if (key == "uid") {
            m.uid = parse_u32(val, 10, "uid");
        } else if (key == "gid") {
            m.gid = parse_u32(val, 10, "gid");
        } else if (key == "required") {
            auto b = parse_bool(val);
            if (!b) {
                throw Error(fmt::format("invalid value for required: {}", val));
            }
            m.required = *b;
        } else if (key == "size") {
            if (m.type != Mount::Type::Tmpfs) {
                throw Error("size is only valid for tmpfs mounts");
            }
            m.size = parse_size(val);
        } else if (key == "env") {
            if (m.type != Mount::Type::Secret) {
                throw Error("env is only valid for secret mounts");
            }
            m.env = val;
        } else {
            throw Error(fmt::format("unexpected key '{}' in '{}'", key, f));
        }
    }
    (void)rw_set;
    switch (m.type) {
    case Mount::Type::Bind:
    case Mount::Type::Cache:
    case Mount::Type::Tmpfs:
        if (m.target.empty()) {
            throw Error("mount needs a target (target=/path)");
        }
        break;
    case Mount::Type::Secret:
        if (m.id.empty() && m.target.empty() && m.env.empty()) {
            throw Error("secret mount needs an id, a target or env");
        }
        if (m.id.empty()) {
            const std::string& t = m.target.empty() ? m.env : m.target;
            m.id = t.substr(t.rfind('/') == std::string::npos ? 0 : t.rfind('/') + 1);
        }
        if (m.target.empty() && m.env.empty()) {
            m.target = "/run/secrets/" + m.id;
        }
        break;
    case Mount::Type::Ssh:
        if (m.id.empty()) {
            m.id = "default";
        }
        break;
    }
    if (m.type == Mount::Type::Cache && m.id.empty()) {
        m.id = m.target;
    }
    if (m.type != Mount::Type::Bind && m.type != Mount::Type::Cache && !m.from.empty()) {
        throw Error("from is only valid for bind and cache mounts");
    }
    if (!m.target.empty() && m.target[0] != '/') {
        // BuildKit resolves relative targets against WORKDIR; keep it, the executor does that.
    }
    return m;
}

Instruction to_instruction(const Node& node, const ParseResult& ast) {
    Instruction ins;
    ins.keyword = upper(node.value);
    ins.original = std::string(text::trim_space(node.original));
    ins.loc.file = ast.file;
    ins.loc.line = node.start_line;
    ins.loc.end_line = node.end_line;
    ins.loc.column = node.column;
    ins.loc.text = std::string(ast.line_text(node.start_line));
    ins.escape = ast.escape;
    ins.data = build(node, ins.keyword, ins.loc, ast.escape);
    return ins;
}

Instruction parse_trigger(std::string_view expression, const Location& where, char escape) {
    std::string src;
    if (escape == '`') {
        src = "# escape=`\n";
    }
    src += std::string(expression);
    ParseResult ast;
    try {
        ast = parse(src, where.file);
    } catch (const DockerfileError& e) {
        fail_at(where, fmt::format("ONBUILD trigger \"{}\" from the base image: {}", expression,
                                   e.message()));
    }
    if (ast.root.children.size() != 1) {
        fail_at(where, fmt::format("ONBUILD trigger \"{}\" from the base image is not one "
                                   "instruction",
                                   expression));
    }
    const Node& n = ast.root.children[0];
    const std::string kw = upper(n.value);
    if (kw == "ONBUILD" || kw == "FROM" || kw == "MAINTAINER") {
        fail_at(where, fmt::format("{} isn't allowed as an ONBUILD trigger", kw));
    }
    Instruction ins;
    ins.keyword = kw;
    ins.original = std::string(text::trim_space(n.original));
    ins.loc = where;
    ins.escape = escape;
    try {
        ins.data = build(n, kw, where, escape);
    } catch (const DockerfileError& e) {
        fail_at(where, fmt::format("ONBUILD trigger \"{}\" from the base image: {}", expression,
                                   e.message()));
    }
    return ins;
}

std::string expand_heredoc(std::string_view body, const EnvLookup& env, char escape) {
    ShellExpander::Options o;
    o.escape = escape;
    o.skip_quotes = true;
    return ShellExpander(o).word(body, env);
}

void expand(Instruction& ins, const EnvLookup& env, ShellExpander::Options limits) {
    limits.escape = ins.escape;
    limits.raw_quotes = false;
    limits.raw_escapes = false;
    limits.skip_unset = false;
    limits.skip_quotes = false;
    const ShellExpander sh(limits);
    const Location& loc = ins.loc;
    auto word = [&](const std::string& w, const char* what) {
        try {
            return sh.word(w, env);
        } catch (const ExpansionError& e) {
            const std::string shown = w.size() > 80 ? w.substr(0, 80) + "..." : w;
            fail_at(
                loc,
                fmt::format("{}: cannot expand {} \"{}\": {}", ins.keyword, what, shown, e.what()),
                w);
        }
    };
    std::visit(
        [&](auto& d) {
            using T = std::decay_t<decltype(d)>;
            if constexpr (std::is_same_v<T, FromInstr>) {
                d.image = word(d.image, "image");
                if (d.image.empty()) {
                    fail_at(loc, "FROM: base name should not be blank");
                }
                d.platform = word(d.platform, "--platform");
                if (!valid_platform(d.platform)) {
                    fail_at(loc,
                            fmt::format("FROM: invalid --platform \"{}\" (os[/arch[/variant]])",
                                        d.platform));
                }
            } else if constexpr (std::is_same_v<T, RunInstr>) {
                d.mounts.clear();
                for (auto& spec : d.mount_specs) {
                    // Each field value is expanded; keys and separators are not.
                    std::string expanded;
                    try {
                        for (const auto& f : split_csv(spec)) {
                            const auto eq = f.find('=');
                            std::string field =
                                eq == std::string::npos
                                    ? f
                                    : f.substr(0, eq + 1) + word(f.substr(eq + 1), "--mount");
                            if (field.find_first_of(",\"") != std::string::npos) {
                                std::string q = "\"";
                                for (char c : field) {
                                    q += c == '"' ? std::string("\"\"") : std::string(1, c);
                                }
                                field = q + "\"";
                            }
                            expanded += (expanded.empty() ? "" : ",") + field;
                        }
                        d.mounts.push_back(parse_mount(expanded));
                    } catch (const DockerfileError&) {
                        throw;
                    } catch (const Error& e) {
                        fail_at(loc, fmt::format("RUN --mount={}: {}", spec, e.what()));
                    }
                }
            } else if constexpr (std::is_same_v<T, CopyInstr>) {
                for (auto& s : d.sources) {
                    s = word(s, "source");
                }
                d.dest = word(d.dest, "destination");
                d.from = word(d.from, "--from");
                d.chown = word(d.chown, "--chown");
                d.chmod = word(d.chmod, "--chmod");
                for (auto& e : d.excludes) {
                    e = word(e, "--exclude");
                }
                d.checksum = word(d.checksum, "--checksum");
                for (auto& c : d.contents) {
                    if (c.expand) {
                        try {
                            c.data = expand_heredoc(c.data, env, ins.escape);
                        } catch (const ExpansionError& e) {
                            fail_at(loc, fmt::format("{}: cannot expand heredoc {}: {}",
                                                     ins.keyword, c.path, e.what()));
                        }
                    }
                }
                if (!d.chown.empty() && !valid_chown(d.chown)) {
                    fail_at(loc, fmt::format("{}: invalid --chown \"{}\" (user[:group])",
                                             ins.keyword, d.chown));
                }
                if (!d.chmod.empty() && !is_octal_mode(d.chmod) && !is_symbolic_mode(d.chmod)) {
                    fail_at(loc, fmt::format("{}: invalid --chmod \"{}\" (octal such as 0755, or "
                                             "symbolic such as u+x)",
                                             ins.keyword, d.chmod));
                }
                if (!d.checksum.empty() && !valid_checksum(d.checksum)) {
                    fail_at(loc, fmt::format("ADD: invalid --checksum \"{}\" (sha256:<64 hex>, "
                                             "sha384:<96 hex> or sha512:<128 hex>)",
                                             d.checksum));
                }
                if (d.dest.empty()) {
                    fail_at(loc, ins.keyword + ": destination is empty");
                }
            } else if constexpr (std::is_same_v<T, EnvInstr> || std::is_same_v<T, LabelInstr>) {
                auto& kvs = [&]() -> std::vector<KeyValue>& {
                    if constexpr (std::is_same_v<T, EnvInstr>) {
                        return d.env;
                    } else {
                        return d.labels;
                    }
                }();
                for (auto& kv : kvs) {
                    kv.key = word(kv.key, "name");
                    kv.value = word(kv.value, "value");
                    if (kv.key.empty()) {
                        fail_at(loc, ins.keyword + ": name is empty after expansion");
                    }
                }
            } else if constexpr (std::is_same_v<T, ExposeInstr>) {
                std::vector<std::string> ports;
                for (const auto& p : d.ports) {
                    // An expansion may yield several ports ("$PORTS").
                    std::vector<std::string> ws;
                    try {
                        ws = sh.words(p, env);
                    } catch (const ExpansionError& e) {
                        fail_at(loc, fmt::format("EXPOSE: cannot expand \"{}\": {}", p, e.what()));
                    }
                    for (auto& w : ws) {
                        if (!valid_port_spec(w)) {
                            fail_at(
                                loc,
                                fmt::format(
                                    "EXPOSE: invalid port \"{}\" (port[-port][/tcp|udp|sctp])", w));
                        }
                        ports.push_back(std::move(w));
                    }
                }
                d.ports = std::move(ports);
            } else if constexpr (std::is_same_v<T, VolumeInstr>) {
                for (auto& p : d.paths) {
                    p = word(p, "path");
                    if (text::trim_space(p).empty()) {
                        fail_at(loc, "VOLUME specified can not be an empty string");
                    }
                }
            } else if constexpr (std::is_same_v<T, UserInstr>) {
                d.user = word(d.user, "user");
                if (d.user.empty()) {
                    fail_at(loc, "USER: user is empty after expansion");
                }
            } else if constexpr (std::is_same_v<T, WorkdirInstr>) {
                d.path = word(d.path, "path");
                if (d.path.empty()) {
                    fail_at(loc, "WORKDIR: path is empty after expansion");
                }
            } else if constexpr (std::is_same_v<T, StopsignalInstr>) {
                d.signal = word(d.signal, "signal");
                if (!valid_signal(d.signal)) {
                    fail_at(loc, fmt::format("STOPSIGNAL: invalid signal \"{}\"", d.signal));
                }
            } else if constexpr (std::is_same_v<T, ArgInstr>) {
                for (auto& a : d.args) {
                    a.name = word(a.name, "name");
                    if (a.default_value) {
                        a.default_value = word(*a.default_value, "default value");
                    }
                }
            }
        },
        ins.data);
}

std::string describe(const Instruction& ins) {
    std::string out = ins.keyword;
    std::visit(
        [&](const auto& d) {
            using T = std::decay_t<decltype(d)>;
            if constexpr (std::is_same_v<T, FromInstr>) {
                if (!d.platform.empty()) {
                    out += " --platform=" + d.platform;
                }
                out += " " + d.image;
                if (!d.stage_name.empty()) {
                    out += " AS " + d.stage_name;
                }
            } else if constexpr (std::is_same_v<T, RunInstr>) {
                for (const auto& m : d.mounts) {
                    out += " --mount=" + m.raw;
                }
                if (d.mounts.empty()) {
                    for (const auto& m : d.mount_specs) {
                        out += " --mount=" + m;
                    }
                }
                if (d.network != "default") {
                    out += " --network=" + d.network;
                }
                if (d.security != "sandbox") {
                    out += " --security=" + d.security;
                }
                out += d.cmd.shell_form ? " " + d.cmd.args.at(0) : " " + quote_json(d.cmd.args);
                for (const auto& h : d.heredocs) {
                    out += fmt::format(" (heredoc {}: {} bytes)", h.name, h.content.size());
                }
            } else if constexpr (std::is_same_v<T, CmdInstr> ||
                                 std::is_same_v<T, EntrypointInstr>) {
                if (!d.cmd.args.empty()) {
                    out += d.cmd.shell_form ? " " + d.cmd.args[0] : " " + quote_json(d.cmd.args);
                } else {
                    out += " []";
                }
            } else if constexpr (std::is_same_v<T, ShellInstr>) {
                out += " " + quote_json(d.shell);
            } else if constexpr (std::is_same_v<T, EnvInstr>) {
                for (const auto& kv : d.env) {
                    out += " " + kv.key + "=" + text::go_quote(kv.value);
                }
            } else if constexpr (std::is_same_v<T, LabelInstr>) {
                for (const auto& kv : d.labels) {
                    out += " " + text::go_quote(kv.key) + "=" + text::go_quote(kv.value);
                }
            } else if constexpr (std::is_same_v<T, ExposeInstr>) {
                for (const auto& p : d.ports) {
                    out += " " + p;
                }
            } else if constexpr (std::is_same_v<T, CopyInstr>) {
                if (!d.from.empty()) {
                    out += " --from=" + d.from;
                }
                if (!d.chown.empty()) {
                    out += " --chown=" + d.chown;
                }
                if (!d.chmod.empty()) {
                    out += " --chmod=" + d.chmod;
                }
                if (d.link) {
                    out += " --link";
                }
                if (d.parents) {
                    out += " --parents";
                }
                for (const auto& e : d.excludes) {
                    out += " --exclude=" + e;
                }
                if (!d.checksum.empty()) {
                    out += " --checksum=" + d.checksum;
                }
                if (d.keep_git_dir) {
                    out += " --keep-git-dir";
                }
                if (d.unpack) {
                    out += *d.unpack ? " --unpack" : " --unpack=false";
                }
                std::vector<std::string> srcs = d.sources;
                for (const auto& c : d.contents) {
                    srcs.push_back("<<" + c.path);
                }
                out += " " + quote_json(srcs) + " " + d.dest;
                for (const auto& c : d.contents) {
                    out += fmt::format(" (heredoc {}: {} bytes)", c.path, c.data.size());
                }
            } else if constexpr (std::is_same_v<T, VolumeInstr>) {
                out += " " + quote_json(d.paths);
            } else if constexpr (std::is_same_v<T, UserInstr>) {
                out += " " + d.user;
            } else if constexpr (std::is_same_v<T, WorkdirInstr>) {
                out += " " + d.path;
            } else if constexpr (std::is_same_v<T, ArgInstr>) {
                for (const auto& a : d.args) {
                    out += " " + a.name;
                    if (a.default_value) {
                        out += "=" + text::go_quote(*a.default_value);
                    }
                }
            } else if constexpr (std::is_same_v<T, OnbuildInstr>) {
                out += " " + d.expression;
            } else if constexpr (std::is_same_v<T, StopsignalInstr>) {
                out += " " + d.signal;
            } else if constexpr (std::is_same_v<T, HealthcheckInstr>) {
                auto dur = [](std::int64_t ns) {
                    if (ns % 1000000000 != 0) {
                        return ns % 1000000 == 0 ? fmt::format("{}ms", ns / 1000000)
                                                 : fmt::format("{}ns", ns);
                    }
                    std::int64_t s = ns / 1000000000;
                    std::string out;
                    if (s >= 3600) {
                        out += fmt::format("{}h", s / 3600);
                        s %= 3600;
                    }
                    if (s >= 60 || !out.empty()) {
                        out += fmt::format("{}m", s / 60);
                        s %= 60;
                    }
                    return out + fmt::format("{}s", s);
                };
                if (d.interval_ns) {
                    out += " --interval=" + dur(d.interval_ns);
                }
                if (d.timeout_ns) {
                    out += " --timeout=" + dur(d.timeout_ns);
                }
                if (d.start_period_ns) {
                    out += " --start-period=" + dur(d.start_period_ns);
                }
                if (d.start_interval_ns) {
                    out += " --start-interval=" + dur(d.start_interval_ns);
                }
                if (d.retries) {
                    out += fmt::format(" --retries={}", d.retries);
                }
                out += " " + quote_json(d.test);
            } else if constexpr (std::is_same_v<T, MaintainerInstr>) {
                out += " " + d.name;
            }
        },
        ins.data);
    return out;
}

} // namespace strata::dockerfile
