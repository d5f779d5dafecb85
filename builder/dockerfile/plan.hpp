// Stage planning: splits a parsed Dockerfile into stages, resolves global ARGs and
// build args with Docker's scope rules, expands every instruction as it will run,
// builds the stage graph (FROM <stage>, COPY --from, RUN --mount from=), rejects
// cycles and marks the stages the target does not need.
//
//   ParseResult ast = parse(bytes, "Dockerfile");
//   PlanOptions o; o.build_args["VERSION"] = "1.2"; o.target = "release";
//   BuildPlan p = plan(ast, o);
//   for (std::size_t i : p.order) {           // needed stages, dependencies first
//       const Stage& s = p.stages[i];
//       s.base_stage;                          // FROM <earlier stage>, or nullopt: s.from.image
//       for (const Instruction& ins : s.instructions) { ... }   // typed, not expanded
//       for (const Instruction& ins : s.expanded) { ... }       // as `strata parse` shows
//   }
//
// The executor re-expands s.instructions with a StageScope seeded with the base image's
// ENV (unknown here: an external base contributes no ENV to s.expanded), calling
// scope.apply() after each instruction so that ARG and ENV take effect in order.
#pragma once

#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/dockerfile/shell.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace strata::dockerfile {

struct PlanOptions {
    std::map<std::string, std::string> build_args; // --build-arg K=V
    std::string target;                            // --target; empty: the last stage
    std::string build_platform;                    // empty: the host ("linux/amd64")
    std::string target_platform;                   // empty: build_platform
    ShellExpander::Options limits;                 // expansion limits
};

// The platform strata runs on, as os/arch[/variant].
std::string host_platform();

// Variables visible while a stage's instructions run: ENV wins over ARG.
class StageScope {
public:
    StageScope() = default;
    // env: inherited ENV (base stage or image config), "K=V" or pairs.
    StageScope(Env env, const std::map<std::string, std::string>* build_args,
               const Env* global_args);

    EnvLookup lookup() const;
    // Applies an expanded ENV or ARG; other instructions change nothing.
    void apply(const Instruction& expanded);
    const Env& env() const { return m_env; }
    const Env& args() const { return m_args; }
    // Build args that an ARG in this scope consumed.
    const std::set<std::string>& consumed() const { return m_consumed; }

private:
    Env m_env;
    Env m_args;
    const std::map<std::string, std::string>* m_build_args = nullptr;
    const Env* m_global_args = nullptr;
    std::set<std::string> m_consumed;
};

struct Dependency {
    std::size_t stage; // index into BuildPlan::stages
    Location where;    // the FROM / COPY / RUN that needs it
    std::string how;   // "FROM", "COPY --from", "RUN --mount from="
};

struct Stage {
    std::size_t index = 0;
    std::string name;                         // lower case; empty when unnamed
    Instruction from;                         // the FROM, expanded with the global ARGs
    std::optional<std::size_t> base_stage;    // FROM <an earlier stage>
    std::vector<Instruction> triggers;        // ONBUILD triggers inherited from a base stage
    std::vector<Instruction> instructions;    // after FROM, typed, not expanded
    std::vector<Instruction> expanded;        // same, expanded in order (ENV/ARG applied)
    std::vector<std::string> external_images; // COPY --from / mount from= images
    std::vector<Dependency> deps;
    bool needed = false; // the target needs this stage
    Env final_env;       // ENV at the end of the stage (known part)
};

struct BuildPlan {
    std::vector<ArgDef> global_args; // ARGs before the first FROM, as declared
    Env global_values;               // their values after build args and expansion
    std::vector<Stage> stages;
    std::size_t target = 0;
    std::vector<std::size_t> order;             // needed stages, each after its dependencies
    std::vector<std::string> unused_build_args; // given but consumed by no needed stage
};

BuildPlan plan(const ParseResult& ast, const PlanOptions& opts = PlanOptions{});

// Build args Docker accepts without an ARG declaration (proxy settings).
bool is_predefined_arg(std::string_view name);

} // namespace strata::dockerfile
