#include "containers/names.hpp"

#include "util/error.hpp"

#include <array>
#include <cstdint>
#include <sys/random.h>

namespace strata::containers {

namespace {

void random_bytes(unsigned char* out, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::getrandom(out + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("getrandom");
        }
        got += static_cast<std::size_t>(r);
    }
}

constexpr std::array<const char*, 24> k_adjectives = {
    "amazing", "bold",   "brave",   "calm",   "clever", "eager", "elated",  "focused",
    "gallant", "happy",  "jolly",   "keen",   "kind",   "lucid", "modest",  "nifty",
    "patient", "quirky", "relaxed", "serene", "sharp",  "stoic", "vibrant", "wizardly"};
constexpr std::array<const char*, 24> k_surnames = {
    "babbage", "bohr",    "curie",  "darwin",  "dijkstra", "einstein", "euler",   "faraday",
    "fermi",   "galois",  "gauss",  "hopper",  "kepler",   "knuth",    "lamport", "lovelace",
    "meitner", "noether", "pascal", "ritchie", "shannon",  "tesla",    "turing",  "wozniak"};

} // namespace

std::string new_id() {
    static constexpr char k_hex[] = "0123456789abcdef";
    for (;;) {
        std::array<unsigned char, 32> bytes{};
        random_bytes(bytes.data(), bytes.size());
        std::string id;
        id.reserve(64);
        for (unsigned char b : bytes) {
            id.push_back(k_hex[b >> 4]);
            id.push_back(k_hex[b & 15]);
        }
        if (id.substr(0, 12).find_first_not_of("0123456789") != std::string::npos) {
            return id;
        }
    }
}

std::string short_id(std::string_view id) {
    return std::string(id.substr(0, 12));
}

bool valid_name(std::string_view name) {
    if (!name.empty() && name.front() == '/') {
        name.remove_prefix(1);
    }
    if (name.size() < 2) {
        return false;
    }
    auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!alnum(name.front())) {
        return false;
    }
    for (char c : name.substr(1)) {
        if (!alnum(c) && c != '_' && c != '.' && c != '-') {
            return false;
        }
    }
    return true;
}

void check_name(std::string_view name) {
    if (!valid_name(name)) {
        throw UsageError("Invalid container name (" + std::string(name) +
                         "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
}

std::string random_name() {
    std::array<unsigned char, 2> b{};
    random_bytes(b.data(), b.size());
    return std::string(k_adjectives[b[0] % k_adjectives.size()]) + "_" +
           k_surnames[b[1] % k_surnames.size()];
}

} // namespace strata::containers
