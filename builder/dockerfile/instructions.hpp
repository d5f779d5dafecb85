// Typed Dockerfile instructions, built from AST nodes with BuildKit's rules.
//
//   ParseResult ast = parse(bytes, "Dockerfile");
//   Instruction ins = to_instruction(ast.root.children[i], ast); // flags validated
//   if (auto* run = std::get_if<RunInstr>(&ins.data)) { run->cmd.args; run->mounts; }
//   expand(ins, env.lookup());   // expands the words BuildKit expands, validates values
//
// to_instruction() checks the instruction name, argument counts and every flag (unknown
// flag, duplicate, missing or malformed value). expand() substitutes variables in the
// fields Docker expands (FROM image and --platform; COPY/ADD sources, dest, --from,
// --chown, --chmod, --exclude, --checksum; RUN --mount values; ENV; LABEL; EXPOSE;
// VOLUME; USER; WORKDIR; STOPSIGNAL; ARG defaults) and then validates the values that
// could only be checked after expansion (ports, chmod, chown, checksum, platform,
// signal, mount fields). Commands (RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK) are never
// expanded here: the container's shell does that. Every error is a DockerfileError
// naming file:line:column with the instruction's text.
#pragma once

#include "builder/dockerfile/parser.hpp"
#include "builder/dockerfile/shell.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace strata::dockerfile {

struct Location {
    std::string file;
    int line = 0;     // first physical line, 1-based
    int end_line = 0; // last physical line consumed (continuations, heredocs)
    int column = 1;   // of the keyword
    std::string text; // the first physical line, for error messages
};

// RUN / CMD / ENTRYPOINT / HEALTHCHECK CMD arguments.
struct CommandLine {
    std::vector<std::string> args; // exec form: argv; shell form: one element
    bool shell_form = false;       // run as SHELL + args[0]
};

struct KeyValue {
    std::string key;
    std::string value;
};

struct Mount {
    enum class Type { Bind, Cache, Tmpfs, Secret, Ssh };
    enum class Sharing { Shared, Private, Locked };
    Type type = Type::Bind;
    std::string target;
    std::string source;
    std::string from;      // stage name, stage index or image; empty: build context
    bool read_only = true; // bind: ro by default; cache/tmpfs: rw
    std::string id;        // cache/secret/ssh id
    Sharing sharing = Sharing::Shared;
    std::optional<std::uint32_t> mode;
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    bool required = false;
    std::optional<std::uint64_t> size; // tmpfs size in bytes
    std::string env;                   // secret exposed as an environment variable
    std::string raw;                   // the flag value as written
};

struct FromInstr {
    std::string image;      // after expansion with the global ARGs
    std::string stage_name; // lower case; empty when there is no AS
    std::string platform;   // --platform, empty when not given
};

// RUN with heredocs, as BuildKit runs it: when the command is only the heredoc start
// ("RUN <<EOF"), the body is the script (run by the shebang in its first line, else
// by the stage's SHELL); otherwise each heredoc is fed to the command on its fd
// (Heredoc::fd, 0 = stdin). Bodies with expand=true see the stage's variables, and
// chomp=true strips leading tabs from each line.
struct RunInstr {
    CommandLine cmd;
    std::vector<Heredoc> heredocs;
    std::vector<Mount> mounts;
    std::vector<std::string> mount_specs; // raw --mount values, expanded by expand()
    std::string network = "default";      // default | none | host
    std::string security = "sandbox";     // sandbox | insecure
};

struct CmdInstr {
    CommandLine cmd;
};

struct EntrypointInstr {
    CommandLine cmd;
};

struct ShellInstr {
    std::vector<std::string> shell;
};

struct LabelInstr {
    std::vector<KeyValue> labels;
};

struct EnvInstr {
    std::vector<KeyValue> env;
};

struct ExposeInstr {
    std::vector<std::string> ports; // "80", "80/tcp", "8000-8010/udp"
};

struct SourceContent { // a heredoc used as a COPY/ADD source
    std::string path;  // the heredoc name, used as the file name
    std::string data;
    bool expand = true;
    bool chomp = false;
};

struct CopyInstr {
    bool add = false;                    // ADD rather than COPY
    std::vector<std::string> sources;    // paths, URLs (ADD) or globs
    std::vector<SourceContent> contents; // heredoc sources
    std::string dest;
    std::string from; // COPY --from
    std::string chown;
    std::string chmod;
    bool link = false;
    std::vector<std::string> excludes;
    bool parents = false;       // COPY --parents
    std::string checksum;       // ADD --checksum
    bool keep_git_dir = false;  // ADD --keep-git-dir
    std::optional<bool> unpack; // ADD --unpack
};

struct VolumeInstr {
    std::vector<std::string> paths;
};

struct UserInstr {
    std::string user;
};

struct WorkdirInstr {
    std::string path;
};

struct ArgDef {
    std::string name;
    std::optional<std::string> default_value;
};

struct ArgInstr {
    std::vector<ArgDef> args;
};

struct OnbuildInstr {
    std::string expression; // the trigger, as written after ONBUILD
};

struct StopsignalInstr {
    std::string signal;
};

struct HealthcheckInstr {
    // test: {"NONE"}, {"CMD", argv...} or {"CMD-SHELL", command}
    std::vector<std::string> test;
    std::int64_t interval_ns = 0; // 0: inherit the default
    std::int64_t timeout_ns = 0;
    std::int64_t start_period_ns = 0;
    std::int64_t start_interval_ns = 0;
    int retries = 0;
};

struct MaintainerInstr {
    std::string name;
};

using InstructionData =
    std::variant<FromInstr, RunInstr, CmdInstr, LabelInstr, ExposeInstr, EnvInstr, CopyInstr,
                 EntrypointInstr, VolumeInstr, UserInstr, WorkdirInstr, ArgInstr, OnbuildInstr,
                 StopsignalInstr, HealthcheckInstr, ShellInstr, MaintainerInstr>;

struct Instruction {
    std::string keyword;  // upper case: "RUN", "COPY", ... (ADD shares CopyInstr)
    std::string original; // the logical line as written, continuations joined
    Location loc;
    char escape = '\\';
    InstructionData data;
};

// Builds the typed instruction for one top-level AST node.
Instruction to_instruction(const Node& node, const ParseResult& ast);

// Types an ONBUILD trigger stored in a base image's config ("RUN make"), for the stage
// that builds FROM that image; errors point at `where` (the stage's FROM).
Instruction parse_trigger(std::string_view expression, const Location& where, char escape = '\\');

// Expands variables in place (see above). The lookup sees the stage's ENV and ARGs.
void expand(Instruction& ins, const EnvLookup& env,
            ShellExpander::Options limits = ShellExpander::Options{});

// Expands a heredoc body the way BuildKit does for COPY/ADD (quotes are literal).
std::string expand_heredoc(std::string_view body, const EnvLookup& env, char escape = '\\');

// Parses a RUN --mount value (CSV of key=value) after expansion. Throws Error.
Mount parse_mount(std::string_view spec);

// Go time.ParseDuration, in nanoseconds. Throws Error.
std::int64_t parse_go_duration(std::string_view s);

// Renders the instruction as it will run, for `strata parse` (one line).
std::string describe(const Instruction& ins);

// Throws DockerfileError at the instruction's location; with a needle found on the
// instruction's first line, the column points at the needle.
[[noreturn]] void fail_at(const Location& loc, const std::string& message,
                          std::string_view needle = {});

} // namespace strata::dockerfile
