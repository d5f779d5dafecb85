#include "builder/dockerfile/plan.hpp"

#include "builder/dockerfile/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <unordered_map>

namespace strata::dockerfile {

std::string host_platform() {
#if defined(__x86_64__)
    return "linux/amd64";
#elif defined(__aarch64__)
    return "linux/arm64";
#elif defined(__arm__)
    return "linux/arm/v7";
#elif defined(__i386__)
    return "linux/386";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
    return "linux/ppc64le";
#elif defined(__s390x__)
    return "linux/s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    return "linux/riscv64";
#else
    return "linux/unknown";
#endif
}

bool is_predefined_arg(std::string_view name) {
    static const char* const names[] = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                                        "FTP_PROXY",  "ftp_proxy",  "NO_PROXY",    "no_proxy",
                                        "ALL_PROXY",  "all_proxy"};
    return std::any_of(std::begin(names), std::end(names),
                       [&](const char* n) { return name == n; });
}

StageScope::StageScope(Env env, const std::map<std::string, std::string>* build_args,
                       const Env* global_args)
    : m_env(std::move(env)), m_build_args(build_args), m_global_args(global_args) {}

EnvLookup StageScope::lookup() const {
    return [this](std::string_view name) -> std::optional<std::string_view> {
        if (auto v = m_env.get(name)) {
            return v;
        }
        return m_args.get(name);
    };
}

void StageScope::apply(const Instruction& ins) {
    if (const auto* e = std::get_if<EnvInstr>(&ins.data)) {
        for (const auto& kv : e->env) {
            m_env.set(kv.key, kv.value);
        }
    } else if (const auto* a = std::get_if<ArgInstr>(&ins.data)) {
        for (const auto& def : a->args) {
            std::optional<std::string> value;
            if (m_build_args != nullptr) {
                if (auto it = m_build_args->find(def.name); it != m_build_args->end()) {
                    value = it->second;
                    m_consumed.insert(def.name);
                }
            }
            if (!value && def.default_value) {
                value = def.default_value;
            }
            if (!value && m_global_args != nullptr) {
                if (auto g = m_global_args->get(def.name)) {
                    value = std::string(*g);
                }
            }
            if (value) {
                m_args.set(def.name, *value);
            } else {
                m_args.unset(def.name);
            }
        }
    }
}

namespace {

std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s;
}

void set_platform_args(Env& env, const std::string& prefix, const std::string& platform) {
    env.set(prefix + "PLATFORM", platform);
    std::vector<std::string> parts;
    std::size_t b = 0;
    while (true) {
        auto e = platform.find('/', b);
        parts.push_back(platform.substr(b, e == std::string::npos ? std::string::npos : e - b));
        if (e == std::string::npos) {
            break;
        }
        b = e + 1;
    }
    env.set(prefix + "OS", parts.size() > 0 ? parts[0] : "");
    env.set(prefix + "ARCH", parts.size() > 1 ? parts[1] : "");
    env.set(prefix + "VARIANT", parts.size() > 2 ? parts[2] : "");
}

} // namespace

BuildPlan plan(const ParseResult& ast, const PlanOptions& opts) {
    BuildPlan p;
    const std::string build_platform =
        opts.build_platform.empty() ? host_platform() : opts.build_platform;
    const std::string target_platform =
        opts.target_platform.empty() ? build_platform : opts.target_platform;
    set_platform_args(p.global_values, "BUILD", build_platform);
    set_platform_args(p.global_values, "TARGET", target_platform);

    std::set<std::string> consumed;
    const auto& nodes = ast.root.children;
    std::size_t i = 0;

    // Global ARGs before the first FROM.
    for (; i < nodes.size(); ++i) {
        Instruction ins = to_instruction(nodes[i], ast);
        if (std::holds_alternative<FromInstr>(ins.data)) {
            break;
        }
        if (!std::holds_alternative<ArgInstr>(ins.data)) {
            fail_at(ins.loc, fmt::format("{} before the first FROM: only ARG may come before FROM "
                                         "(no build stage in current context)",
                                         ins.keyword));
        }
        expand(ins, p.global_values.lookup(), opts.limits);
        for (const auto& def : std::get<ArgInstr>(ins.data).args) {
            p.global_args.push_back(def);
            std::optional<std::string> value = def.default_value;
            if (auto it = opts.build_args.find(def.name); it != opts.build_args.end()) {
                value = it->second;
                consumed.insert(def.name);
            }
            // A global ARG without a value changes nothing (BuildKit's
            // buildMetaArgs): `ARG TARGETARCH` keeps the automatic value.
            if (value) {
                p.global_values.set(def.name, *value);
            }
        }
    }
    if (i >= nodes.size()) {
        const int line = nodes.empty() ? 1 : nodes.back().start_line;
        throw DockerfileError(ast.file, line, 1, "the Dockerfile has no FROM: no stages to build",
                              std::string(ast.line_text(line)));
    }

    // Split into stages.
    std::vector<std::vector<const Node*>> stage_nodes;
    std::unordered_map<std::string, std::size_t> by_name;
    for (; i < nodes.size(); ++i) {
        Instruction ins = to_instruction(nodes[i], ast);
        if (auto* f = std::get_if<FromInstr>(&ins.data)) {
            Stage s;
            s.index = p.stages.size();
            s.name = f->stage_name;
            expand(ins, p.global_values.lookup(), opts.limits);
            const FromInstr& ef = std::get<FromInstr>(ins.data);
            if (!s.name.empty()) {
                if (auto it = by_name.find(s.name); it != by_name.end()) {
                    fail_at(ins.loc, fmt::format("duplicate stage name \"{}\" (first defined on "
                                                 "line {})",
                                                 s.name, p.stages[it->second].from.loc.line));
                }
            }
            // FROM <name> refers to an earlier stage only; later names are images.
            if (auto it = by_name.find(lower(ef.image)); it != by_name.end()) {
                s.base_stage = it->second;
                s.deps.push_back({it->second, ins.loc, "FROM"});
            }
            if (!s.name.empty()) {
                by_name.emplace(s.name, s.index);
            }
            s.from = std::move(ins);
            p.stages.push_back(std::move(s));
            stage_nodes.emplace_back();
            continue;
        }
        stage_nodes.back().push_back(&nodes[i]);
        p.stages.back().instructions.push_back(std::move(ins));
    }

    auto resolve = [&](const std::string& ref, const Location& loc,
                       const char* how) -> std::optional<std::size_t> {
        if (!ref.empty() &&
            std::all_of(ref.begin(), ref.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            if (ref.size() > 9 || std::stoul(ref) >= p.stages.size()) {
                fail_at(loc, fmt::format("{}={}: stage index out of bounds (the Dockerfile has {} "
                                         "stages)",
                                         how, ref, p.stages.size()));
            }
            return static_cast<std::size_t>(std::stoul(ref));
        }
        if (auto it = by_name.find(lower(ref)); it != by_name.end()) {
            return it->second;
        }
        return std::nullopt;
    };

    // Expand each stage in order; a base stage always comes earlier.
    std::vector<std::set<std::string>> stage_consumed(p.stages.size());
    for (Stage& s : p.stages) {
        StageScope scope(s.base_stage ? p.stages[*s.base_stage].final_env : Env{}, &opts.build_args,
                         &p.global_values);
        if (s.base_stage) {
            const Stage& base = p.stages[*s.base_stage];
            for (std::size_t k = 0; k < base.instructions.size(); ++k) {
                if (!std::holds_alternative<OnbuildInstr>(base.instructions[k].data)) {
                    continue;
                }
                const Node& onbuild = *stage_nodes[base.index][k];
                Node trigger = onbuild.next.at(0).children.at(0);
                trigger.heredocs = onbuild.heredocs;
                trigger.start_line = onbuild.start_line;
                trigger.end_line = onbuild.end_line;
                trigger.column = onbuild.column;
                s.triggers.push_back(to_instruction(trigger, ast));
            }
        }
        auto run = [&](const Instruction& ins) {
            Instruction e = ins;
            expand(e, scope.lookup(), opts.limits);
            scope.apply(e);
            if (const auto* c = std::get_if<CopyInstr>(&e.data); c != nullptr && !c->from.empty()) {
                if (auto dep = resolve(c->from, e.loc, "COPY --from")) {
                    s.deps.push_back({*dep, e.loc, "COPY --from"});
                } else {
                    s.external_images.push_back(c->from);
                }
            }
            if (const auto* r = std::get_if<RunInstr>(&e.data)) {
                for (const auto& m : r->mounts) {
                    if (m.from.empty()) {
                        continue;
                    }
                    if (auto dep = resolve(m.from, e.loc, "RUN --mount from")) {
                        s.deps.push_back({*dep, e.loc, "RUN --mount from="});
                    } else {
                        s.external_images.push_back(m.from);
                    }
                }
            }
            s.expanded.push_back(std::move(e));
        };
        for (const auto& t : s.triggers) {
            run(t);
        }
        for (const auto& ins : s.instructions) {
            run(ins);
        }
        s.final_env = scope.env();
        stage_consumed[s.index] = scope.consumed();
    }

    // Cycles anywhere in the graph are errors, needed or not (iterative DFS: a
    // Dockerfile may have very many stages).
    {
        std::vector<int> color(p.stages.size(), 0);
        std::vector<std::pair<std::size_t, std::size_t>> stack; // (stage, next dep)
        for (std::size_t root = 0; root < p.stages.size(); ++root) {
            if (color[root] != 0) {
                continue;
            }
            stack.emplace_back(root, 0);
            color[root] = 1;
            while (!stack.empty()) {
                auto& [n, k] = stack.back();
                const auto& deps = p.stages[n].deps;
                if (k >= deps.size()) {
                    color[n] = 2;
                    stack.pop_back();
                    continue;
                }
                const Dependency& d = deps[k++];
                if (color[d.stage] == 1) {
                    const Stage& st = p.stages[d.stage];
                    fail_at(d.where,
                            fmt::format("circular dependency detected on stage: {}",
                                        st.name.empty() ? std::to_string(st.index) : st.name));
                }
                if (color[d.stage] == 0) {
                    color[d.stage] = 1;
                    stack.emplace_back(d.stage, 0);
                }
            }
        }
    }

    // Target and the stages it needs.
    p.target = p.stages.size() - 1;
    if (!opts.target.empty()) {
        const std::string t = lower(opts.target);
        bool found = false;
        for (const Stage& s : p.stages) {
            if (s.name == t) {
                p.target = s.index;
                found = true;
            }
        }
        if (!found) {
            std::string names;
            for (const Stage& s : p.stages) {
                if (!s.name.empty()) {
                    names += (names.empty() ? "" : ", ") + s.name;
                }
            }
            throw Error(fmt::format("{}: target stage \"{}\" could not be found (stages: {})",
                                    ast.file, opts.target, names.empty() ? "none named" : names));
        }
    }
    // Post-order over the target's dependencies (lowest stage index first), so that
    // every stage comes after the stages it needs.
    {
        std::vector<std::pair<std::size_t, std::vector<std::size_t>>> stack;
        auto push = [&](std::size_t n) {
            p.stages[n].needed = true;
            std::vector<std::size_t> deps;
            for (const Dependency& d : p.stages[n].deps) {
                deps.push_back(d.stage);
            }
            std::sort(deps.begin(), deps.end(), std::greater<>());
            stack.emplace_back(n, std::move(deps));
        };
        push(p.target);
        while (!stack.empty()) {
            auto& [n, deps] = stack.back();
            if (deps.empty()) {
                p.order.push_back(n);
                stack.pop_back();
                continue;
            }
            const std::size_t d = deps.back();
            deps.pop_back();
            if (!p.stages[d].needed) {
                push(d);
            }
        }
    }

    for (const Stage& s : p.stages) {
        if (s.needed) {
            consumed.insert(stage_consumed[s.index].begin(), stage_consumed[s.index].end());
        }
    }
    for (const auto& [k, v] : opts.build_args) {
        if (consumed.count(k) == 0 && !is_predefined_arg(k)) {
            p.unused_build_args.push_back(k);
        }
    }
    return p;
}

} // namespace strata::dockerfile
