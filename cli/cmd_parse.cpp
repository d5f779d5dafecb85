// strata parse: parse, expand and plan a Dockerfile without running anything.
//
//   strata parse Dockerfile [--build-arg K=V]... [--target S]
//   strata parse --dump Dockerfile      (BuildKit's AST dump format)
#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/dockerfile/plan.hpp"
#include "cli/commands.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/text.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace strata::cli {

namespace {

struct ParseOptions {
    std::string file;
    std::vector<std::string> build_args;
    std::string target;
    std::string platform;
    bool dump = false;
};

std::string read_dockerfile(const std::string& file) {
    constexpr std::size_t k_max = 64u << 20;
    if (file == "-") {
        return fs::read_fd(STDIN_FILENO, "stdin", k_max);
    }
    return fs::read_file(file, k_max);
}

std::string stage_label(const dockerfile::Stage& s) {
    return s.name.empty() ? fmt::format("#{}", s.index)
                          : fmt::format("#{} \"{}\"", s.index, s.name);
}

void run_parse(const ParseOptions& o) {
    using namespace dockerfile;
    const std::string src = read_dockerfile(o.file);
    const std::string name = o.file == "-" ? "<stdin>" : o.file;
    ParseResult ast = parse(src, name);
    for (const auto& w : ast.warnings) {
        std::cerr << fmt::format("{}:{}: warning: {}\n", name, w.line, w.message);
    }
    if (o.dump) {
        std::cout << dump(ast.root) << "\n";
        return;
    }

    PlanOptions po;
    for (const auto& kv : o.build_args) {
        const auto eq = kv.find('=');
        if (eq == 0) {
            throw UsageError(fmt::format("--build-arg \"{}\": the name is empty", kv));
        }
        if (eq == std::string::npos) {
            // Docker takes the value from the environment, and ignores an unset name.
            if (const char* v = std::getenv(kv.c_str()); v != nullptr) {
                po.build_args[kv] = v;
            }
            continue;
        }
        po.build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    po.target = o.target;
    po.target_platform = o.platform;
    BuildPlan p = plan(ast, po);

    std::cout << fmt::format("# {}: {} stage{}, target {}\n", name, p.stages.size(),
                             p.stages.size() == 1 ? "" : "s", stage_label(p.stages[p.target]));
    for (const auto& d : ast.directives) {
        std::cout << fmt::format("# directive {}={}\n", d.name, d.value);
    }
    for (const auto& a : p.global_args) {
        auto v = p.global_values.get(a.name);
        std::cout << fmt::format("global ARG {}{}\n", a.name,
                                 v ? "=" + text::go_quote(*v) : std::string(" (unset)"));
    }
    // SHELL in effect per stage (inherited from a base stage), to show RUN's argv.
    std::vector<std::vector<std::string>> shells(p.stages.size());
    for (const Stage& s : p.stages) {
        std::cout << "\n";
        std::vector<std::string> shell =
            s.base_stage ? shells[*s.base_stage] : std::vector<std::string>{"/bin/sh", "-c"};
        std::cout << fmt::format("stage {}{}\n", stage_label(s),
                                 s.needed ? "" : "  (skipped: the target does not need it)");
        std::cout << fmt::format("  {:>4}: {}\n", s.from.loc.line, describe(s.from));
        if (!s.deps.empty()) {
            std::string deps;
            for (const auto& d : s.deps) {
                deps += fmt::format("{}{} ({} line {})", deps.empty() ? "" : ", ",
                                    stage_label(p.stages[d.stage]), d.how, d.where.line);
            }
            std::cout << "        needs: " << deps << "\n";
        }
        for (const auto& img : s.external_images) {
            std::cout << "        uses image: " << img << "\n";
        }
        for (std::size_t k = 0; k < s.expanded.size(); ++k) {
            const Instruction& ins = s.expanded[k];
            const bool trigger = k < s.triggers.size();
            std::string shown = describe(ins);
            if (const auto* sh = std::get_if<ShellInstr>(&ins.data)) {
                shell = sh->shell;
            } else if (const auto* run = std::get_if<RunInstr>(&ins.data);
                       run != nullptr && run->cmd.shell_form && !run->cmd.args.empty()) {
                std::vector<std::string> argv = shell;
                argv.push_back(run->cmd.args[0]);
                std::string quoted;
                for (const auto& a : argv) {
                    quoted += (quoted.empty() ? "" : ", ") + text::go_quote(a);
                }
                shown += "\n          argv: [" + quoted + "]";
            }
            std::cout << fmt::format("  {:>4}: {}{}\n", ins.loc.line, trigger ? "(ONBUILD) " : "",
                                     shown);
        }
        shells[s.index] = shell;
    }
    std::string order;
    for (std::size_t i : p.order) {
        order += (order.empty() ? "" : " -> ") + stage_label(p.stages[i]);
    }
    std::cout << "\nbuild order: " << order << "\n";
    if (!p.unused_build_args.empty()) {
        std::string names;
        for (const auto& n : p.unused_build_args) {
            names += (names.empty() ? "" : ", ") + n;
        }
        std::cerr << fmt::format("warning: build args not consumed by any needed stage: {}\n",
                                 names);
    }
}

} // namespace

void register_parse(CLI::App& app, Context&) {
    auto opts = std::make_shared<ParseOptions>();
    auto* cmd =
        app.add_subcommand("parse", "Parse, expand and plan a Dockerfile without running anything");
    cmd->add_option("file", opts->file, "The Dockerfile (- for standard input)")
        ->required()
        ->type_name("FILE");
    cmd->add_flag("--dump", opts->dump, "Print the AST in BuildKit's dump format");
    cmd->add_option("--build-arg", opts->build_args, "Set a build argument (K=V); repeatable")
        ->allow_extra_args(false)
        ->type_name("K=V");
    cmd->add_option("--target", opts->target, "The stage to build (default: the last one)")
        ->type_name("STAGE");
    cmd->add_option("--platform", opts->platform, "Target platform (default: the host's)")
        ->type_name("OS/ARCH");
    cmd->callback([opts] { run_parse(*opts); });
}

} // namespace strata::cli
