#include "containers/top.hpp"

#include "runner/exec.hpp"
#include "util/child.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <charconv>
#include <regex>
#include <sstream>

namespace strata::containers {

namespace {

std::vector<std::string> fields(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    std::string f;
    while (in >> f) {
        out.push_back(f);
    }
    return out;
}

std::vector<std::string> split_spaces(const std::string& s) {
    // strings.Split(psArgs, " "): empty pieces are kept out here (ps would
    // take an empty argument as an error of its own).
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= s.size()) {
        auto j = s.find(' ', i);
        if (j == std::string::npos) {
            j = s.size();
        }
        if (j > i) {
            out.push_back(s.substr(i, j - i));
        }
        i = j + 1;
    }
    return out;
}

} // namespace

void validate_ps_args(const std::string& ps_args) {
    static const std::regex re(R"(\s+(\S*)=\s*(PID\S*))");
    for (std::sregex_iterator it(ps_args.begin(), ps_args.end(), re), end; it != end; ++it) {
        std::string k = (*it)[1];
        std::string v = (*it)[2];
        if (k != "pid") {
            throw UsageError("specifying \"" + k + "=" + v + "\" is not allowed");
        }
    }
}

TopResult parse_ps_output(const std::string& output, const std::vector<pid_t>& pids) {
    TopResult r;
    std::istringstream in(output);
    std::string line;
    if (!std::getline(in, line)) {
        throw Error("Couldn't find PID field in ps output");
    }
    r.titles = fields(line);
    auto pid_it = std::find(r.titles.begin(), r.titles.end(), "PID");
    if (pid_it == r.titles.end()) {
        throw Error("Couldn't find PID field in ps output");
    }
    const std::size_t pid_index = static_cast<std::size_t>(pid_it - r.titles.begin());
    auto append = [&](const std::vector<std::string>& f) {
        std::vector<std::string> row;
        std::size_t keep = r.titles.size() - 1;
        for (std::size_t i = 0; i < keep && i < f.size(); ++i) {
            row.push_back(f[i]);
        }
        std::string last;
        for (std::size_t i = keep; i < f.size(); ++i) {
            last += (i > keep ? " " : "") + f[i];
        }
        row.push_back(last);
        r.processes.push_back(std::move(row));
    };
    bool previous_kept = false;
    while (std::getline(in, line)) {
        auto f = fields(line);
        if (f.empty()) {
            continue;
        }
        if (f.size() <= pid_index) {
            throw Error("Unexpected ps output line: \"" + line + "\"");
        }
        const std::string& p = f[pid_index];
        if (p == "-") {
            if (previous_kept) {
                append(f);
            }
            continue;
        }
        long value = 0;
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
        if (ec != std::errc() || end != p.data() + p.size()) {
            throw Error("Unexpected pid '" + p + "': not a number");
        }
        previous_kept =
            std::find(pids.begin(), pids.end(), static_cast<pid_t>(value)) != pids.end();
        if (previous_kept) {
            append(f);
        }
    }
    return r;
}

TopResult top(pid_t pid, const std::string& ps_args) {
    std::string args_text = ps_args.empty() ? std::string("-ef") : ps_args;
    validate_ps_args(args_text);
    std::vector<pid_t> pids = runner::pid_namespace_members(pid);
    std::vector<std::string> argv{"ps"};
    for (auto& a : split_spaces(args_text)) {
        argv.push_back(std::move(a));
    }
    std::string list;
    for (pid_t p : pids) {
        list += (list.empty() ? "" : ",") + std::to_string(p);
    }
    std::vector<std::string> with_pids = argv;
    with_pids.push_back("-q");
    with_pids.push_back(list);
    RunResult res{ExitStatus(0), {}};
    try {
        res = run_capture(with_pids, true);
    } catch (const SysError& e) {
        throw Error(std::string("Error running ps: ") + e.what());
    }
    if (!res.status.success()) {
        // Some options (f...) cannot be combined with -q: again without.
        res = run_capture(argv, false);
        if (!res.status.success()) {
            throw Error("Error running ps: " + res.status.describe());
        }
    }
    return parse_ps_output(res.out, pids);
}

std::string format_top(const TopResult& result) {
    // A tabwriter(minwidth 20, tabwidth 1, padding 3): every cell but the
    // last of a line is padded to its column's width.
    std::vector<std::vector<std::string>> rows;
    rows.push_back(result.titles);
    for (const auto& p : result.processes) {
        rows.push_back(p);
    }
    std::vector<std::size_t> width;
    for (const auto& row : rows) {
        for (std::size_t i = 0; i + 1 < row.size(); ++i) {
            if (width.size() <= i) {
                width.resize(i + 1, 0);
            }
            width[i] = std::max(width[i], row[i].size() + 3);
        }
    }
    std::string out;
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            out += row[i];
            if (i + 1 < row.size()) {
                std::size_t w = std::max<std::size_t>(width[i], 20);
                out.append(w - row[i].size(), ' ');
            }
        }
        out += '\n';
    }
    return out;
}

} // namespace strata::containers
