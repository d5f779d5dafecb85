#include "cli/commit_changes.hpp"

#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/image_config.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

namespace strata::cli {

namespace {

constexpr std::array<std::string_view, 11> k_allowed = {
    "cmd",     "entrypoint", "healthcheck", "env",    "expose", "label",
    "onbuild", "stopsignal", "user",        "volume", "workdir"};

} // namespace

void apply_commit_changes(formats::ImageConfig& cfg, const std::vector<std::string>& changes) {
    if (changes.empty()) {
        return;
    }
    std::string source;
    for (const auto& c : changes) {
        source += c;
        source += '\n';
    }
    dockerfile::ParseResult ast = dockerfile::parse(source, "--change");
    std::vector<dockerfile::Instruction> instrs;
    for (const auto& node : ast.root.children) {
        std::string kw = node.keyword();
        if (std::find(k_allowed.begin(), k_allowed.end(), kw) == k_allowed.end()) {
            throw Error(kw + " is not a valid change command");
        }
        instrs.push_back(dockerfile::to_instruction(node, ast));
    }
    bool cmd_set = false;
    for (auto& ins : instrs) {
        // Variables are expanded with the Env as the earlier changes left it.
        std::vector<std::string> env = cfg.config.env;
        dockerfile::expand(ins, [&env](std::string_view name) -> std::optional<std::string_view> {
            for (const auto& kv : env) {
                if (kv.size() > name.size() && kv[name.size()] == '=' && kv.starts_with(name)) {
                    return std::string_view(kv).substr(name.size() + 1);
                }
            }
            return std::nullopt;
        });
        builder::apply_metadata(cfg, ins, cmd_set);
    }
}

} // namespace strata::cli
