#include "builder/image_config.hpp"

#include "util/error.hpp"
#include "util/root.hpp"
#include "util/text.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <type_traits>
#include <variant>

namespace strata::builder {

using dockerfile::Instruction;

formats::ImageConfig scratch_config() {
    formats::ImageConfig cfg;
    formats::Platform p = formats::host_platform();
    cfg.architecture = p.architecture;
    cfg.os = p.os;
    cfg.variant = p.variant;
    cfg.config.env = {k_default_path_env};
    cfg.config.working_dir = "/";
    return cfg;
}

std::vector<std::string> effective_shell(const formats::ImageConfig& cfg) {
    if (!cfg.config.shell.empty()) {
        return cfg.config.shell;
    }
    return {"/bin/sh", "-c"};
}

void set_env(std::vector<std::string>& env, const std::string& name, const std::string& value) {
    for (auto& e : env) {
        auto eq = e.find('=');
        if (e.compare(0, eq, name) == 0 &&
            (eq == name.size() || (eq == std::string::npos && e == name))) {
            e = name + "=" + value;
            return;
        }
    }
    env.push_back(name + "=" + value);
}

std::optional<std::string> get_env(const std::vector<std::string>& env, const std::string& name) {
    for (const auto& e : env) {
        auto eq = e.find('=');
        if (eq != std::string::npos && eq == name.size() && e.compare(0, eq, name) == 0) {
            return e.substr(eq + 1);
        }
    }
    return std::nullopt;
}

std::string resolve_workdir(const formats::ImageConfig& cfg, const std::string& path) {
    std::string p = path;
    if (p.empty() || p[0] != '/') {
        std::string base = cfg.config.working_dir.empty() ? "/" : cfg.config.working_dir;
        p = base + "/" + p;
    }
    return clean_path(p);
}

runner::RunSpec image_run_spec(const formats::ImageConfig& cfg, const RunOverrides& o) {
    const auto& cc = cfg.config;
    runner::RunSpec spec;
    // Docker: --entrypoint replaces the image's Entrypoint and drops its Cmd.
    std::vector<std::string> argv;
    if (o.entrypoint) {
        if (!o.entrypoint->empty()) {
            argv.push_back(*o.entrypoint);
        }
    } else if (cc.entrypoint) {
        argv = *cc.entrypoint;
    }
    if (!o.command.empty()) {
        argv.insert(argv.end(), o.command.begin(), o.command.end());
    } else if (!o.entrypoint && cc.cmd) {
        argv.insert(argv.end(), cc.cmd->begin(), cc.cmd->end());
    }
    if (argv.empty()) {
        throw UsageError("no command specified: the image has no Entrypoint or Cmd");
    }
    spec.argv = argv;
    spec.env = cc.env;
    spec.cwd = !o.workdir.empty() ? o.workdir : cc.working_dir.empty() ? "/" : cc.working_dir;
    spec.user = !o.user.empty() ? o.user : cc.user;
    return spec;
}

void override_env(std::vector<std::string>& env, const std::vector<std::string>& overrides) {
    for (const auto& item : overrides) {
        std::size_t eq = item.find('=');
        if (eq == std::string::npos) {
            std::erase_if(env,
                          [&](const std::string& e) { return e.substr(0, e.find('=')) == item; });
            continue;
        }
        set_env(env, item.substr(0, eq), item.substr(eq + 1));
    }
}

std::string go_quote_list(const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i > 0) {
            out += ' ';
        }
        out += text::go_quote(v[i]);
    }
    return out + "]";
}

namespace {

// Go's %v of a []string: [a b].
std::string go_list(const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        out += (i > 0 ? " " : "") + v[i];
    }
    return out + "]";
}

// Go's fmtFrac/fmtInt as used by Duration.String.
std::string frac(std::uint64_t v, int prec, std::uint64_t& rest) {
    std::string digits;
    bool print = false;
    for (int i = 0; i < prec; ++i) {
        int digit = static_cast<int>(v % 10);
        print = print || digit != 0;
        if (print) {
            digits.insert(digits.begin(), static_cast<char>('0' + digit));
        }
        v /= 10;
    }
    if (print) {
        digits.insert(digits.begin(), '.');
    }
    rest = v;
    return digits;
}

// Go's strconv.QuoteRune for a small int (%q of an int).
std::string go_quote_rune(int r) {
    if (r >= 0x20 && r < 0x7f) {
        if (r == '\'' || r == '\\') {
            return std::string("'\\") + static_cast<char>(r) + "'";
        }
        return std::string("'") + static_cast<char>(r) + "'";
    }
    switch (r) {
    case '\a':
        return "'\\a'";
    case '\b':
        return "'\\b'";
    case '\f':
        return "'\\f'";
    case '\n':
        return "'\\n'";
    case '\r':
        return "'\\r'";
    case '\t':
        return "'\\t'";
    case '\v':
        return "'\\v'";
    default:
        break;
    }
    if (r >= 0 && r < 0x80) {
        return fmt::format("'\\x{:02x}'", r);
    }
    std::string s;
    text::append_utf8(s, static_cast<char32_t>(r));
    return "'" + s + "'";
}

std::vector<std::string> expand_port_range(const std::string& spec) {
    std::string proto = "tcp";
    std::string ports = spec;
    if (auto slash = spec.find('/'); slash != std::string::npos) {
        proto = spec.substr(slash + 1);
        ports = spec.substr(0, slash);
    }
    for (auto& c : proto) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    unsigned long lo = 0;
    unsigned long hi = 0;
    if (auto dash = ports.find('-'); dash != std::string::npos) {
        lo = std::strtoul(ports.substr(0, dash).c_str(), nullptr, 10);
        hi = std::strtoul(ports.substr(dash + 1).c_str(), nullptr, 10);
    } else {
        lo = hi = std::strtoul(ports.c_str(), nullptr, 10);
    }
    if (hi < lo || hi > 65535) {
        throw Error("invalid port range \"" + spec + "\"");
    }
    std::vector<std::string> out;
    for (unsigned long p = lo; p <= hi; ++p) {
        out.push_back(std::to_string(p) + "/" + proto);
    }
    return out;
}

std::vector<std::string> command_argv(const formats::ImageConfig& cfg,
                                      const dockerfile::CommandLine& cmd) {
    if (!cmd.shell_form) {
        return cmd.args;
    }
    auto argv = effective_shell(cfg);
    argv.insert(argv.end(), cmd.args.begin(), cmd.args.end());
    return argv;
}

} // namespace

std::string go_duration(std::int64_t ns) {
    if (ns == 0) {
        return "0s";
    }
    bool neg = ns < 0;
    std::uint64_t u =
        neg ? static_cast<std::uint64_t>(-(ns + 1)) + 1 : static_cast<std::uint64_t>(ns);
    std::string out;
    if (u < 1000000000ULL) {
        int prec = 0;
        std::string unit;
        if (u < 1000ULL) {
            return (neg ? "-" : "") + std::to_string(u) + "ns";
        } else if (u < 1000000ULL) {
            prec = 3;
            unit = "µs";
        } else {
            prec = 6;
            unit = "ms";
        }
        std::uint64_t rest = 0;
        std::string f = frac(u, prec, rest);
        out = std::to_string(rest) + f + unit;
    } else {
        std::uint64_t rest = 0;
        std::string f = frac(u, 9, rest);
        std::uint64_t secs = rest;
        out = std::to_string(secs % 60) + f + "s";
        std::uint64_t mins = secs / 60;
        if (mins > 0) {
            out = std::to_string(mins % 60) + "m" + out;
            std::uint64_t hours = mins / 60;
            if (hours > 0) {
                out = std::to_string(hours) + "h" + out;
            }
        }
    }
    return (neg ? "-" : "") + out;
}

std::vector<std::string> run_argv(const formats::ImageConfig& cfg,
                                  const dockerfile::RunInstr& run) {
    if (!run.heredocs.empty() && run.cmd.shell_form && !run.cmd.args.empty()) {
        // Several heredocs, or a command around them: the shell reads the
        // bodies itself (BuildKit passes the whole text to the shell).
        std::string script = run.cmd.args[0];
        for (const auto& h : run.heredocs) {
            script += "\n" + h.content + h.name;
        }
        script += "\n";
        auto argv = effective_shell(cfg);
        argv.push_back(script);
        return argv;
    }
    return command_argv(cfg, run.cmd);
}

std::string run_history(const std::vector<std::string>& argv,
                        const std::vector<std::pair<std::string, std::string>>& args_in_scope) {
    std::vector<std::string> parts;
    if (!args_in_scope.empty()) {
        parts.push_back("|" + std::to_string(args_in_scope.size()));
        for (const auto& [k, v] : args_in_scope) {
            parts.push_back(k + "=" + v);
        }
    }
    parts.insert(parts.end(), argv.begin(), argv.end());
    std::string out = "RUN";
    for (const auto& p : parts) {
        out += " " + p;
    }
    return out;
}

std::string apply_metadata(formats::ImageConfig& cfg, const Instruction& ins, bool& cmd_set) {
    auto& c = cfg.config;
    return std::visit(
        [&](const auto& d) -> std::string {
            using T = std::decay_t<decltype(d)>;
            if constexpr (std::is_same_v<T, dockerfile::EnvInstr>) {
                std::string h = "ENV";
                for (const auto& kv : d.env) {
                    set_env(c.env, kv.key, kv.value);
                    h += " " + kv.key + "=" + kv.value;
                }
                return h;
            } else if constexpr (std::is_same_v<T, dockerfile::LabelInstr>) {
                std::string h = "LABEL";
                for (const auto& kv : d.labels) {
                    c.labels[kv.key] = kv.value;
                    h += " " + kv.key + "=" + kv.value;
                }
                return h;
            } else if constexpr (std::is_same_v<T, dockerfile::UserInstr>) {
                c.user = d.user;
                return "USER " + d.user;
            } else if constexpr (std::is_same_v<T, dockerfile::WorkdirInstr>) {
                c.working_dir = resolve_workdir(cfg, d.path);
                return "WORKDIR " + c.working_dir;
            } else if constexpr (std::is_same_v<T, dockerfile::CmdInstr>) {
                c.cmd = command_argv(cfg, d.cmd);
                cmd_set = true;
                return "CMD " + go_quote_list(*c.cmd);
            } else if constexpr (std::is_same_v<T, dockerfile::EntrypointInstr>) {
                c.entrypoint = command_argv(cfg, d.cmd);
                if (!cmd_set) {
                    c.cmd.reset();
                }
                return "ENTRYPOINT " + go_quote_list(*c.entrypoint);
            } else if constexpr (std::is_same_v<T, dockerfile::ExposeInstr>) {
                std::string h = "EXPOSE";
                for (const auto& p : d.ports) {
                    for (auto& e : expand_port_range(p)) {
                        c.exposed_ports.insert(e);
                    }
                    h += " " + p;
                }
                return h;
            } else if constexpr (std::is_same_v<T, dockerfile::VolumeInstr>) {
                for (const auto& p : d.paths) {
                    c.volumes.insert(p);
                }
                return "VOLUME " + go_list(d.paths);
            } else if constexpr (std::is_same_v<T, dockerfile::StopsignalInstr>) {
                c.stop_signal = d.signal;
                return "STOPSIGNAL " + d.signal;
            } else if constexpr (std::is_same_v<T, dockerfile::HealthcheckInstr>) {
                formats::Healthcheck hc;
                hc.test = d.test;
                hc.interval = d.interval_ns;
                hc.timeout = d.timeout_ns;
                hc.start_period = d.start_period_ns;
                hc.start_interval = d.start_interval_ns;
                hc.retries = d.retries;
                c.healthcheck = hc;
                return "HEALTHCHECK &{" + go_quote_list(hc.test) + " " +
                       text::go_quote(go_duration(hc.interval)) + " " +
                       text::go_quote(go_duration(hc.timeout)) + " " +
                       text::go_quote(go_duration(hc.start_period)) + " " +
                       text::go_quote(go_duration(hc.start_interval)) + " " +
                       go_quote_rune(hc.retries) + "}";
            } else if constexpr (std::is_same_v<T, dockerfile::ShellInstr>) {
                c.shell = d.shell;
                return "SHELL " + go_list(d.shell);
            } else if constexpr (std::is_same_v<T, dockerfile::OnbuildInstr>) {
                c.on_build.push_back(d.expression);
                return "ONBUILD " + d.expression;
            } else if constexpr (std::is_same_v<T, dockerfile::MaintainerInstr>) {
                cfg.author = d.name;
                return "MAINTAINER " + d.name;
            } else if constexpr (std::is_same_v<T, dockerfile::ArgInstr>) {
                std::string h = "ARG";
                for (const auto& a : d.args) {
                    h += " " + a.name;
                    if (a.default_value) {
                        h += "=" + *a.default_value;
                    }
                }
                return h;
            } else {
                throw Error(ins.keyword + " is not a metadata instruction");
            }
        },
        ins.data);
}

} // namespace strata::builder
