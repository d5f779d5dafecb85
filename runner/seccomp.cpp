// Docker's seccomp profile format, parsed with nlohmann-json and compiled
// with libseccomp. The selection of entries follows moby's
// profiles/seccomp/seccomp_linux.go (setupSeccomp); the translation into
// libseccomp rules follows runc's libcontainer/seccomp (one rule with every
// condition when the argument indexes differ, one rule per condition when
// they repeat; entries whose action is the default's are skipped).
#include "runner/seccomp.hpp"

#include "runner/runner.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <linux/seccomp.h>
#include <memory>
#include <seccomp.h>
#include <set>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace strata::runner {

namespace detail {
// Generated at build time from runner/profiles/docker-default.json
// (runner/CMakeLists.txt).
extern const char kDockerDefaultProfile[];
// Generated at build time by strata_seccomp_gen (runner/seccomp_gen.cpp):
// the default profile compiled for kPrecompiledCaps; length 0 when none.
extern const std::uint64_t kPrecompiledCaps;
extern const sock_filter kPrecompiledFilter[];
extern const std::size_t kPrecompiledFilterLen;
} // namespace detail

namespace {

using nlohmann::json;

// This machine's architecture, as moby names it (goToNative[runtime.GOARCH])
// and as an "architecture" of archMap.
#if defined(__x86_64__)
constexpr const char* k_native_go_arch = "amd64";
constexpr const char* k_native_scmp_arch = "SCMP_ARCH_X86_64";
#elif defined(__aarch64__)
constexpr const char* k_native_go_arch = "arm64";
constexpr const char* k_native_scmp_arch = "SCMP_ARCH_AARCH64";
#elif defined(__i386__)
constexpr const char* k_native_go_arch = "x86";
constexpr const char* k_native_scmp_arch = "SCMP_ARCH_X86";
#elif defined(__arm__)
constexpr const char* k_native_go_arch = "arm";
constexpr const char* k_native_scmp_arch = "SCMP_ARCH_ARM";
#elif defined(__s390x__)
constexpr const char* k_native_go_arch = "s390x";
constexpr const char* k_native_scmp_arch = "SCMP_ARCH_S390X";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr const char* k_native_go_arch = "ppc64le";
constexpr const char* k_native_scmp_arch = "SCMP_ARCH_PPC64LE";
#elif defined(__riscv) && __riscv_xlen == 64
constexpr const char* k_native_go_arch = "riscv64";
constexpr const char* k_native_scmp_arch = "SCMP_ARCH_RISCV64";
#else
#error "strata's seccomp support does not know this architecture"
#endif

std::string where(const std::string& source) {
    return "seccomp profile \"" + source + "\"";
}

[[noreturn]] void bad(const std::string& source, const std::string& what) {
    throw Error(where(source) + ": " + what);
}

std::string get_string(const json& obj, const char* key, const std::string& source,
                       const std::string& ctx) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return {};
    }
    if (!it->is_string()) {
        bad(source, ctx + "\"" + key + "\" must be a string");
    }
    return it->get<std::string>();
}

std::vector<std::string> get_strings(const json& obj, const char* key, const std::string& source,
                                     const std::string& ctx) {
    std::vector<std::string> out;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return out;
    }
    if (!it->is_array()) {
        bad(source, ctx + "\"" + key + "\" must be a list of strings");
    }
    for (const auto& v : *it) {
        if (!v.is_string()) {
            bad(source, ctx + "\"" + key + "\" must be a list of strings");
        }
        out.push_back(v.get<std::string>());
    }
    return out;
}

std::optional<std::uint64_t> get_uint(const json& obj, const char* key, const std::string& source,
                                      const std::string& ctx) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return std::nullopt;
    }
    if (!it->is_number_unsigned()) {
        bad(source, ctx + "\"" + key + "\" must be a non-negative integer");
    }
    return it->get<std::uint64_t>();
}

const json& get_object(const json& obj, const char* key, const std::string& source,
                       const std::string& ctx) {
    static const json empty = json::object();
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return empty;
    }
    if (!it->is_object()) {
        bad(source, ctx + "\"" + key + "\" must be an object");
    }
    return *it;
}

bool known_action(const std::string& a) {
    static const char* const actions[] = {
        "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",        "SCMP_ACT_ALLOW",       "SCMP_ACT_LOG"};
    return std::find(std::begin(actions), std::end(actions), a) != std::end(actions);
}

void check_action(const std::string& a, const std::string& source, const std::string& ctx) {
    if (a == "SCMP_ACT_NOTIFY") {
        bad(source, ctx + "action SCMP_ACT_NOTIFY needs a seccomp agent, which strata does not "
                          "have");
    }
    if (!known_action(a)) {
        bad(source, ctx + "unknown action \"" + a + "\"");
    }
}

std::optional<scmp_compare> compare_op(const std::string& op) {
    if (op == "SCMP_CMP_NE") {
        return SCMP_CMP_NE;
    }
    if (op == "SCMP_CMP_LT") {
        return SCMP_CMP_LT;
    }
    if (op == "SCMP_CMP_LE") {
        return SCMP_CMP_LE;
    }
    if (op == "SCMP_CMP_EQ") {
        return SCMP_CMP_EQ;
    }
    if (op == "SCMP_CMP_GE") {
        return SCMP_CMP_GE;
    }
    if (op == "SCMP_CMP_GT") {
        return SCMP_CMP_GT;
    }
    if (op == "SCMP_CMP_MASKED_EQ") {
        return SCMP_CMP_MASKED_EQ;
    }
    return std::nullopt;
}

// "SCMP_ARCH_X86_64" -> libseccomp's token; 0 when unknown.
std::uint32_t arch_token(const std::string& name) {
    if (name.rfind("SCMP_ARCH_", 0) != 0) {
        return 0;
    }
    std::string lower = name.substr(10);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return seccomp_arch_resolve_name(lower.c_str());
}

std::optional<unsigned> flag_value(const std::string& f) {
    if (f == "SECCOMP_FILTER_FLAG_TSYNC") {
        return SECCOMP_FILTER_FLAG_TSYNC;
    }
    if (f == "SECCOMP_FILTER_FLAG_LOG") {
        return SECCOMP_FILTER_FLAG_LOG;
    }
    if (f == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
        return SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    }
    return std::nullopt;
}

SeccompFilterCond parse_cond(const json& obj, const char* key, const std::string& source,
                             const std::string& ctx) {
    const json& c = get_object(obj, key, source, ctx);
    std::string cctx = ctx + key + ": ";
    SeccompFilterCond out;
    out.arches = get_strings(c, "arches", source, cctx);
    out.caps = get_strings(c, "caps", source, cctx);
    out.min_kernel = get_string(c, "minKernel", source, cctx);
    return out;
}

// "5.10.0-21-amd64" -> {5, 10}; nullopt when it does not start with N.N.
std::optional<std::pair<int, int>> kernel_version(const std::string& release) {
    int major = 0, minor = 0;
    char dot = 0;
    int n = 0;
    if (std::sscanf(release.c_str(), "%d%c%d%n", &major, &dot, &minor, &n) < 3 || dot != '.') {
        return std::nullopt;
    }
    return std::pair{major, minor};
}

bool kernel_at_least(const std::string& want, const std::string& source,
                     std::optional<KernelVersion> kernel) {
    auto w = kernel_version(want);
    if (!w) {
        bad(source, "minKernel \"" + want + "\" is not a kernel version (expected e.g. 4.8)");
    }
    static const std::optional<KernelVersion> running = [] {
        struct utsname u {};
        ::uname(&u);
        return kernel_version(u.release);
    }();
    const auto& k = kernel ? kernel : running;
    return k && *k >= *w;
}

bool contains(const std::vector<std::string>& list, const std::string& s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

std::uint32_t scmp_action(const std::string& action, std::optional<unsigned> errno_ret) {
    unsigned e = errno_ret.value_or(EPERM);
    if (action == "SCMP_ACT_KILL" || action == "SCMP_ACT_KILL_THREAD") {
        return SCMP_ACT_KILL_THREAD;
    }
    if (action == "SCMP_ACT_KILL_PROCESS") {
        return SCMP_ACT_KILL_PROCESS;
    }
    if (action == "SCMP_ACT_TRAP") {
        return SCMP_ACT_TRAP;
    }
    if (action == "SCMP_ACT_ERRNO") {
        return SCMP_ACT_ERRNO(e);
    }
    if (action == "SCMP_ACT_TRACE") {
        return SCMP_ACT_TRACE(e);
    }
    if (action == "SCMP_ACT_LOG") {
        return SCMP_ACT_LOG;
    }
    return SCMP_ACT_ALLOW;
}

struct CtxFree {
    void operator()(void* ctx) const noexcept { seccomp_release(ctx); }
};

} // namespace

SeccompProfile parse_seccomp_profile(std::string_view text, const std::string& source) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception& e) {
        bad(source, std::string("decoding failed: ") + e.what());
    }
    if (!doc.is_object()) {
        bad(source, "decoding failed: expected a JSON object");
    }
    SeccompProfile p;
    p.source = source;
    p.default_action = get_string(doc, "defaultAction", source, "");
    if (p.default_action.empty()) {
        // moby treats a profile without defaultAction and syscalls as "no
        // seccomp"; strata refuses it: unconfined must be asked for by name.
        bad(source, "\"defaultAction\" is missing (use --security-opt seccomp=unconfined for no "
                    "filter)");
    }
    check_action(p.default_action, source, "defaultAction: ");
    if (auto e = get_uint(doc, "defaultErrnoRet", source, "")) {
        p.default_errno_ret = static_cast<unsigned>(*e);
    }
    p.architectures = get_strings(doc, "architectures", source, "");
    for (const auto& a : p.architectures) {
        if (arch_token(a) == 0) {
            bad(source, "unknown architecture \"" + a + "\"");
        }
    }
    auto am = doc.find("archMap");
    if (am != doc.end() && !am->is_null()) {
        if (!am->is_array()) {
            bad(source, "\"archMap\" must be a list");
        }
        for (const auto& entry : *am) {
            if (!entry.is_object()) {
                bad(source, "\"archMap\" entries must be objects");
            }
            SeccompProfile::ArchMap m;
            m.architecture = get_string(entry, "architecture", source, "archMap: ");
            m.sub_architectures = get_strings(entry, "subArchitectures", source, "archMap: ");
            for (const auto& a : m.sub_architectures) {
                if (arch_token(a) == 0) {
                    bad(source, "archMap: unknown architecture \"" + a + "\"");
                }
            }
            if (arch_token(m.architecture) == 0) {
                bad(source, "archMap: unknown architecture \"" + m.architecture + "\"");
            }
            p.arch_map.push_back(std::move(m));
        }
    }
    if (!p.architectures.empty() && !p.arch_map.empty()) {
        bad(source, "'architectures' and 'archMap' were specified in the seccomp profile, use "
                    "either 'architectures' or 'archMap'");
    }
    p.flags = get_strings(doc, "flags", source, "");
    for (const auto& f : p.flags) {
        if (!flag_value(f)) {
            bad(source, "unknown flag \"" + f + "\"");
        }
    }
    auto sc = doc.find("syscalls");
    if (sc != doc.end() && !sc->is_null()) {
        if (!sc->is_array()) {
            bad(source, "\"syscalls\" must be a list");
        }
        std::size_t i = 0;
        for (const auto& entry : *sc) {
            std::string ctx = "syscalls[" + std::to_string(i++) + "]: ";
            if (!entry.is_object()) {
                bad(source, ctx + "must be an object");
            }
            SeccompSyscall s;
            std::string name = get_string(entry, "name", source, ctx);
            s.names = get_strings(entry, "names", source, ctx);
            if (!name.empty() && !s.names.empty()) {
                bad(source, ctx + "'name' and 'names' were specified in the seccomp profile, use "
                                  "either 'name' or 'names'");
            }
            if (!name.empty()) {
                s.names.push_back(name);
            }
            if (!s.names.empty()) {
                ctx = "syscall \"" + s.names.front() + "\": ";
            }
            s.action = get_string(entry, "action", source, ctx);
            check_action(s.action, source, ctx);
            if (auto e = get_uint(entry, "errnoRet", source, ctx)) {
                s.errno_ret = static_cast<unsigned>(*e);
            }
            auto args = entry.find("args");
            if (args != entry.end() && !args->is_null()) {
                if (!args->is_array()) {
                    bad(source, ctx + "\"args\" must be a list");
                }
                for (const auto& a : *args) {
                    if (!a.is_object()) {
                        bad(source, ctx + "\"args\" entries must be objects");
                    }
                    SeccompArg arg;
                    auto index = get_uint(a, "index", source, ctx + "args: ");
                    if (index.value_or(0) > 5) {
                        bad(source, ctx + "args: index " + std::to_string(*index) +
                                        " is out of range (0-5)");
                    }
                    arg.index = static_cast<unsigned>(index.value_or(0));
                    arg.value = get_uint(a, "value", source, ctx + "args: ").value_or(0);
                    arg.value_two = get_uint(a, "valueTwo", source, ctx + "args: ").value_or(0);
                    arg.op = get_string(a, "op", source, ctx + "args: ");
                    if (!compare_op(arg.op)) {
                        bad(source, ctx + "args: unknown operator \"" + arg.op + "\"");
                    }
                    s.args.push_back(std::move(arg));
                }
            }
            s.includes = parse_cond(entry, "includes", source, ctx);
            s.excludes = parse_cond(entry, "excludes", source, ctx);
            for (const auto* c : {&s.includes, &s.excludes}) {
                if (!c->min_kernel.empty() && !kernel_version(c->min_kernel)) {
                    bad(source, ctx + "minKernel \"" + c->min_kernel +
                                    "\" is not a kernel version (expected e.g. 4.8)");
                }
            }
            p.syscalls.push_back(std::move(s));
        }
    }
    return p;
}

SeccompProgram compile_seccomp(const SeccompProfile& p, std::uint64_t caps,
                               std::optional<KernelVersion> kernel) {
    const std::string& source = p.source;
    std::vector<std::string> cap_names;
    for (int c = 0; c < 64; ++c) {
        if ((caps & (std::uint64_t{1} << c)) != 0) {
            cap_names.push_back(capability_name(c));
        }
    }
    const std::uint32_t default_action = scmp_action(p.default_action, p.default_errno_ret);
    std::unique_ptr<void, CtxFree> ctx(seccomp_init(default_action));
    if (!ctx) {
        bad(source, "libseccomp cannot create a filter with default action " + p.default_action);
    }
    // The runner sets no_new_privs itself, before the filter is loaded.
    seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);

    std::vector<std::string> arches = p.architectures;
    for (const auto& m : p.arch_map) {
        if (m.architecture == k_native_scmp_arch) {
            arches.push_back(m.architecture);
            arches.insert(arches.end(), m.sub_architectures.begin(), m.sub_architectures.end());
            break;
        }
    }
    const std::uint32_t native = seccomp_arch_native();
    for (const auto& a : arches) {
        std::uint32_t token = arch_token(a);
        if (token == native) {
            continue;
        }
        int rc = seccomp_arch_add(ctx.get(), token);
        if (rc != 0 && rc != -EEXIST) {
            bad(source, "libseccomp cannot add architecture " + a + ": " + std::strerror(-rc));
        }
    }

    int max_native_nr = -1;
    const std::string arch = k_native_go_arch;
    for (const auto& s : p.syscalls) {
        // moby's selection, in its order.
        if (!s.excludes.arches.empty() && contains(s.excludes.arches, arch)) {
            continue;
        }
        if (std::any_of(s.excludes.caps.begin(), s.excludes.caps.end(),
                        [&](const std::string& c) { return contains(cap_names, c); })) {
            continue;
        }
        if (!s.excludes.min_kernel.empty() &&
            kernel_at_least(s.excludes.min_kernel, source, kernel)) {
            continue;
        }
        if (!s.includes.arches.empty() && !contains(s.includes.arches, arch)) {
            continue;
        }
        if (!std::all_of(s.includes.caps.begin(), s.includes.caps.end(),
                         [&](const std::string& c) { return contains(cap_names, c); })) {
            continue;
        }
        if (!s.includes.min_kernel.empty() &&
            !kernel_at_least(s.includes.min_kernel, source, kernel)) {
            continue;
        }
        const std::uint32_t action = scmp_action(s.action, s.errno_ret);
        std::vector<scmp_arg_cmp> conds;
        std::set<unsigned> indexes;
        for (const auto& a : s.args) {
            conds.push_back(scmp_arg_cmp{a.index, *compare_op(a.op), a.value, a.value_two});
            indexes.insert(a.index);
        }
        const bool one_rule = indexes.size() == conds.size();
        for (const auto& name : s.names) {
            int nr = seccomp_syscall_resolve_name(name.c_str());
            if (nr == __NR_SCMP_ERROR) {
                STRATA_LOG_DEBUG("{}: libseccomp does not know syscall {}; skipped", where(source),
                                 name);
                continue;
            }
            int native_nr = seccomp_syscall_resolve_name_arch(native, name.c_str());
            if (native_nr >= 0) {
                max_native_nr = std::max(max_native_nr, native_nr);
            }
            if (action == default_action) {
                continue;
            }
            auto add = [&](unsigned n, const scmp_arg_cmp* c) {
                int rc = seccomp_rule_add_array(ctx.get(), action, nr, n, c);
                if (rc != 0) {
                    bad(source, "syscall \"" + name +
                                    "\": libseccomp refused the rule: " + std::strerror(-rc));
                }
            };
            if (conds.empty()) {
                add(0, nullptr);
            } else if (one_rule) {
                add(static_cast<unsigned>(conds.size()), conds.data());
            } else {
                for (const auto& c : conds) {
                    add(1, &c);
                }
            }
        }
    }

    // libseccomp 2.5 exports to an fd only.
    UniqueFd mem(::memfd_create("strata-seccomp", MFD_CLOEXEC));
    if (!mem) {
        throw_errno("memfd_create", "seccomp filter of " + source);
    }
    int rc = seccomp_export_bpf(ctx.get(), mem.get());
    if (rc != 0) {
        bad(source, std::string("libseccomp cannot export the filter: ") + std::strerror(-rc));
    }
    off_t size = ::lseek(mem.get(), 0, SEEK_END);
    if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
        bad(source, "libseccomp exported a filter of " + std::to_string(size) + " bytes");
    }
    std::vector<sock_filter> code(static_cast<std::size_t>(size) / sizeof(sock_filter));
    if (::pread(mem.get(), code.data(), static_cast<std::size_t>(size), 0) != size) {
        throw_errno("read", "seccomp filter of " + source);
    }

    SeccompProgram out;
    // ENOSYS above the highest syscall the profile names, as runc does: a
    // syscall newer than the profile is "not implemented" for the program,
    // which then falls back to an older one. x32 numbers (bit 30) and other
    // architectures go to the filter itself.
    if (max_native_nr >= 0 && p.default_action != "SCMP_ACT_ALLOW" &&
        p.default_action != "SCMP_ACT_LOG") {
        out.code = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, native, 0, 4),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 2, 0),
            BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, static_cast<std::uint32_t>(max_native_nr) + 1, 0,
                     1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        };
    }
    out.code.insert(out.code.end(), code.begin(), code.end());
    if (out.code.size() > BPF_MAXINSNS) {
        bad(source, "the filter has " + std::to_string(out.code.size()) +
                        " instructions, more than the kernel's limit of " +
                        std::to_string(BPF_MAXINSNS));
    }
    for (const auto& f : p.flags) {
        out.flags |= *flag_value(f);
    }
    return out;
}

std::optional<SeccompProgram> precompiled_default_seccomp(std::uint64_t caps) {
    if (detail::kPrecompiledFilterLen == 0 || caps != detail::kPrecompiledCaps) {
        return std::nullopt;
    }
    SeccompProgram p;
    p.code.assign(detail::kPrecompiledFilter,
                  detail::kPrecompiledFilter + detail::kPrecompiledFilterLen);
    return p;
}

std::string_view docker_default_seccomp_profile() noexcept {
    return detail::kDockerDefaultProfile;
}

} // namespace strata::runner
