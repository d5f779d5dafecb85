// libFuzzer target for the Dockerfile frontend: the parser, the AST dump, typed
// instructions, stage planning with expansion, the shell-word expander on its own and
// the .dockerignore matcher. Any exception other than strata::Error is a bug, and so
// is a crash, a hang or a leak.
#include "builder/dockerfile/dockerignore.hpp"
#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/dockerfile/plan.hpp"
#include "builder/dockerfile/shell.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace strata::dockerfile;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    ShellExpander::Options limits;
    limits.max_size = 1u << 16; // keep single inputs fast
    try {
        ParseResult ast = parse(in, "fuzz");
        (void)dump(ast.root);
        PlanOptions o;
        o.build_args = {{"A", "a b"}, {"EMPTY", ""}};
        o.limits = limits;
        BuildPlan p = plan(ast, o);
        for (const Stage& s : p.stages) {
            for (const Instruction& ins : s.expanded) {
                (void)describe(ins);
            }
        }
    } catch (const strata::Error&) {
    }
    try {
        Env env{{"PWD", "/home"}, {"X", "abc def"}, {"NULL", ""}};
        ShellExpander sh(limits);
        (void)sh.process(in, env.lookup());
        ShellExpander::Options raw = limits;
        raw.raw_quotes = true;
        raw.raw_escapes = true;
        raw.skip_unset = true;
        raw.escape = '`';
        (void)ShellExpander(raw).process(in, env.lookup());
    } catch (const strata::Error&) {
    }
    try {
        DockerIgnore ig = DockerIgnore::parse(in, "fuzz.dockerignore");
        for (const char* path : {"a", "a/b/c.go", "node_modules/x", "dir/.git/HEAD", "x y/z"}) {
            (void)ig.excluded(path);
            (void)ig.may_reinclude_under(path);
        }
    } catch (const strata::Error&) {
    }
    return 0;
}
