#!/usr/bin/env python3
"""Renames identifiers to STYLE.md rule 5 over strata's own C/C++ sources.

    members with a trailing underscore   foo_bar_  ->  m_foo_bar
    constants spelled kCamelCase         kFooBar   ->  k_foo_bar

Usage: scripts/dev/style_names.py [--check] [--quiet] [--no-format] [REPO]

Only identifiers change: string and character literals (raw strings too) and
#include paths are left alone; comments follow the rename where they name an
identifier that is renamed in code. The sources are the *.cpp, *.hpp, *.h, *.c,
*.cc and *.hh files under the project's folders (see FOLDERS); generated or
third-party files (*.inc, third_party/, vendor/, external/) are never edited.

A rename is skipped, everywhere, and reported when
  - the new name already exists in a file that uses the old one (collision),
  - two old names would get the same new name,
  - the old name is a keyword escape (if_, break_: not a member),
  - the old name appears in a string literal (code generated from a string,
    a symbol looked up by name) or in a file this script does not edit
    (*.inc, a generator script, CMake): renaming it here would break them.

Deterministic (files and names are processed in sorted order) and idempotent:
a second run changes nothing. --check changes nothing and exits 1 when a run
would; --quiet prints only the skipped renames. The lines a rename changed (and
only those) go through clang-format (.clang-format: longer names may pass 100
columns) when it is installed, unless --no-format.
"""

import os
import re
import shutil
import subprocess
import sys

FOLDERS = ["util", "formats", "snapshot", "layerfs", "runner", "registry", "builder", "cli",
           "containers", "network", "api", "tests", "bench"]
SOURCE_EXTS = (".cpp", ".hpp", ".h", ".c", ".cc", ".hh")
# Files that may name C++ identifiers but are not edited (generated code and
# its generators, build files).
OTHER_EXTS = (".inc", ".py", ".sh", ".cmake", ".in", ".txt")
SKIP_DIRS = {"third_party", "vendor", "external", ".git"}
# Folders without C/C++ sources whose scripts may name identifiers.
OTHER_FOLDERS = ["scripts", ".ci", "cmake", "examples"]

KEYWORDS = set("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export
extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
nullptr operator or or_eq private protected public register reinterpret_cast requires return
short signed sizeof static static_assert static_cast struct switch template this thread_local
throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
xor xor_eq final override import module
""".split())

MEMBER_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*_$")
CONSTANT_RE = re.compile(r"^k[A-Z][A-Za-z0-9]*$")
# The words of a CamelCase name: binary units (MiB), acronyms followed by a
# word (HTTPServer), capitalised words, acronyms; digits stay with the word
# before them.
WORD_RE = re.compile(r"[KMGTPE]iB(?![a-z])|[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")
IDENT_START = re.compile(r"[A-Za-z_]")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RAW_PREFIXES = {"R", "u8R", "uR", "UR", "LR"}
STRING_PREFIXES = {"u8", "u", "U", "L"}


def tokenize(text):
    """Splits C/C++ source into (kind, text) pieces that join back to text.

    kind: "id" (identifier), "comment", "literal" (string, character, raw
    string, #include path) or "other" (numbers, punctuation, white space).
    """
    out = []
    i = 0
    n = len(text)
    other_start = 0
    at_line_start = True  # only white space since the last newline

    def flush(upto):
        if upto > other_start:
            out.append(("other", text[other_start:upto]))

    while i < n:
        c = text[i]
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if c in " \t\r\f\v":
            i += 1
            continue
        if at_line_start and c == "#":
            m = re.compile(r"#\s*include\s*").match(text, i)
            if m:
                end = text.find("\n", m.end())
                end = n if end < 0 else end
                flush(m.end())
                out.append(("literal", text[m.end():end]))
                i = other_start = end
                continue
        at_line_start = False
        if text.startswith("//", i):
            end = i
            # A line comment goes on over backslash-newlines.
            while True:
                nl = text.find("\n", end)
                if nl < 0:
                    end = n
                    break
                if nl > 0 and text[nl - 1] == "\\":
                    end = nl + 1
                    continue
                end = nl
                break
            flush(i)
            out.append(("comment", text[i:end]))
            i = other_start = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            flush(i)
            out.append(("comment", text[i:end]))
            i = other_start = end
            continue
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            # A pp-number: digits, letters, '.', digit separators, exponent signs.
            j = i + 1
            while j < n:
                d = text[j]
                if d.isalnum() or d in "._":
                    j += 1
                elif d == "'" and j + 1 < n and (text[j + 1].isalnum() or text[j + 1] == "_"):
                    j += 2
                elif d in "+-" and text[j - 1] in "eEpP":
                    j += 1
                else:
                    break
            i = j
            continue
        if IDENT_START.match(c):
            m = IDENT.match(text, i)
            word = m.group(0)
            j = m.end()
            if word in RAW_PREFIXES and j < n and text[j] == '"':
                paren = text.find("(", j + 1)
                delim = text[j + 1:paren]
                end = text.find(")" + delim + '"', paren + 1)
                end = n if end < 0 else end + len(delim) + 2
                flush(i)
                out.append(("literal", text[i:end]))
                i = other_start = end
                continue
            if word in STRING_PREFIXES and j < n and text[j] in "\"'":
                end = skip_quoted(text, j)
                flush(i)
                out.append(("literal", text[i:end]))
                i = other_start = end
                continue
            flush(i)
            out.append(("id", word))
            i = other_start = j
            continue
        if c in "\"'":
            end = skip_quoted(text, i)
            flush(i)
            out.append(("literal", text[i:end]))
            i = other_start = end
            continue
        i += 1
    flush(n)
    return out


def skip_quoted(text, i):
    """The end of the quoted literal starting at text[i] (escapes honoured)."""
    q = text[i]
    j = i + 1
    n = len(text)
    while j < n:
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == q or text[j] == "\n":
            return j + 1
        j += 1
    return n


def snake(camel):
    words = WORD_RE.findall(camel)
    if "".join(words) != camel:
        return None
    return "_".join(w.lower() for w in words)


def new_name(name):
    """The conventional spelling of name, or None when it is not a candidate."""
    if MEMBER_RE.match(name):
        return "m_" + name[:-1]
    if CONSTANT_RE.match(name):
        s = snake(name[1:])
        return "k_" + s if s else None
    return None


def walk(repo, exts, folders=FOLDERS):
    files = []
    for folder in folders:
        top = os.path.join(repo, folder)
        for root, dirs, names in os.walk(top):
            # build trees (build, build-asan), not source folders such as builder/
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and d != "build" and
                             not d.startswith("build-"))
            for name in sorted(names):
                if name.endswith(exts) or (".txt" in exts and name == "CMakeLists.txt"):
                    files.append(os.path.join(root, name))
    return sorted(files)


def main(argv):
    check = "--check" in argv
    quiet = "--quiet" in argv
    fmt = None if "--no-format" in argv else shutil.which("clang-format")
    args = [a for a in argv if not a.startswith("--")]
    repo = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), "..", ".."))
    self_path = os.path.abspath(__file__)

    sources = walk(repo, SOURCE_EXTS)
    tokens = {}
    ids_in = {}     # file -> set of identifiers in code
    literal_words = set()
    for path in sources:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        toks = tokenize(text)
        assert "".join(t for _, t in toks) == text, path
        tokens[path] = toks
        ids_in[path] = {t for k, t in toks if k == "id"}
        for k, t in toks:
            if k == "literal":
                literal_words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", t))

    other_words = {}
    others = [p for p in walk(repo, OTHER_EXTS, FOLDERS + OTHER_FOLDERS) +
              [os.path.join(repo, "CMakeLists.txt")]
              if os.path.isfile(p) and os.path.abspath(p) != self_path]
    for path in sorted(set(others)):
        with open(path, encoding="utf-8", errors="replace") as f:
            for w in set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", f.read())):
                other_words.setdefault(w, os.path.relpath(path, repo))

    # Every candidate in code, and where it is used.
    users = {}
    for path in sources:
        for name in ids_in[path]:
            if new_name(name):
                users.setdefault(name, []).append(path)

    skipped = []
    renames = {}
    by_target = {}
    for name in sorted(users):
        target = new_name(name)
        if name.endswith("_") and name[:-1] in KEYWORDS:
            skipped.append((name, target, "a keyword escape, not a member"))
            continue
        if name.startswith("m_") and name.endswith("_"):
            skipped.append((name, target, "already m_-prefixed"))
            continue
        clash = [p for p in users[name] if target in ids_in[p]]
        if clash:
            skipped.append((name, target, "collides with the existing " + target + " in " +
                            ", ".join(os.path.relpath(p, repo) for p in clash)))
            continue
        if name in literal_words:
            skipped.append((name, target, "named in a string literal"))
            continue
        if name in other_words:
            skipped.append((name, target, "named in " + other_words[name] + ", not edited here"))
            continue
        by_target.setdefault(target, []).append(name)
        renames[name] = target
    for target, names in sorted(by_target.items()):
        if len(names) > 1:
            for name in names:
                del renames[name]
                skipped.append((name, target, "several names would become " + target))

    changed = []
    comment_re = None
    if renames:
        comment_re = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(renames, key=lambda s: (-len(s), s))) + r")\b")
    for path in sources:
        pieces = []
        dirty = False
        for kind, t in tokens[path]:
            if kind == "id" and t in renames:
                t = renames[t]
                dirty = True
            elif kind == "comment" and comment_re is not None:
                nt = comment_re.sub(lambda m: renames[m.group(1)], t)
                dirty = dirty or nt != t
                t = nt
            pieces.append(t)
        if dirty:
            changed.append(path)
            if not check:
                old_lines = "".join(t for _, t in tokens[path]).split("\n")
                new_text = "".join(pieces)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new_text)
                # The renamed lines only (longer names may pass 100 columns),
                # not the rest of the file.
                lines = [i + 1 for i, (a, b) in enumerate(zip(old_lines, new_text.split("\n")))
                         if a != b]
                if fmt and lines:
                    subprocess.run([fmt, "-i"] + [f"--lines={n}:{n}" for n in lines] + [path],
                                   check=True)

    if not quiet:
        for name in sorted(renames):
            print(f"rename {name} -> {renames[name]} ({len(users[name])} files)")
    for name, target, why in sorted(skipped):
        print(f"skip {name} -> {target}: {why}")
    verb = "would change" if check else "changed"
    print(f"{len(renames)} renames, {len(skipped)} skipped, {verb} {len(changed)} files")
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
