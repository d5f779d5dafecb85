// .dockerignore with Docker's semantics (moby/patternmatcher + ignorefile):
// comments (# in column 1), trimmed lines, patterns cleaned like filepath.Clean with a
// leading "/" dropped, `*` and `?` (not matching "/"), `[...]` classes, `**` (any
// number of directories), `\` escapes, and `!` exceptions where the last matching
// pattern wins. A path is excluded when it or one of its parent directories matches.
//
//   auto ign = DockerIgnore::load_for("/ctx", "/ctx/Dockerfile"); // optional: none present
//   if (ign && ign->excluded("src/tmp/a.o")) { skip }
//   // An excluded directory still has to be walked when an exception may re-include
//   // something inside it:
//   if (ign->excluded("build") && !ign->may_reinclude_under("build")) { skip the subtree }
//
// Paths are relative to the context root, "/"-separated; they are cleaned first.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::dockerfile {

class DockerIgnore {
public:
    // Parses .dockerignore content; a malformed pattern is a DockerfileError naming
    // file:line.
    static DockerIgnore parse(std::string_view content, const std::string& file = ".dockerignore");

    // The ignore file for a build: "<dockerfile>.dockerignore" beside the Dockerfile
    // wins over "<context>/.dockerignore". nullopt when neither exists. An ignore
    // file that exists but cannot be read (a dangling symlink, a directory, no
    // permission) is an error, never "nothing ignored"; one that is a symlink
    // is followed only when it stays inside the context (or, for the
    // Dockerfile's own, beside the Dockerfile), as BuildKit sees it.
    static std::optional<DockerIgnore> load_for(const std::string& context_dir,
                                                const std::string& dockerfile_path);

    // Throws an Error when file (inside dir, which it lies in by name) is, or
    // goes through, a symlink that leads out of dir.
    static void check_inside(const std::string& file, const std::string& dir,
                             const std::string& what);

    bool excluded(std::string_view path) const;
    bool may_reinclude_under(std::string_view dir) const;

    // The cleaned patterns, "!" kept on exceptions (Docker's ReadAll output).
    std::vector<std::string> patterns() const;
    const std::string& file() const { return m_file; }

    struct Token;
    struct Pattern;

private:
    std::string m_file;
    std::vector<Pattern> m_patterns;
    bool m_has_exceptions = false;

public:
    DockerIgnore();
    ~DockerIgnore();
    DockerIgnore(const DockerIgnore&);
    DockerIgnore(DockerIgnore&&) noexcept;
    DockerIgnore& operator=(const DockerIgnore&);
    DockerIgnore& operator=(DockerIgnore&&) noexcept;
};

} // namespace strata::dockerfile
