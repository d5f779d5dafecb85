// Container ids and names, as Docker spells them: an id is 64 lowercase hex
// digits (32 random bytes), shown as its first 12; a name matches
// [a-zA-Z0-9][a-zA-Z0-9_.-]+ and is unique in the store; a container without
// one gets a random "adjective_surname" as Docker's namesgenerator.
#pragma once

#include <string>
#include <string_view>

namespace strata::containers {

// 64 lowercase hex digits from getrandom(2); never all digits (Docker
// regenerates such ids: a 12-digit prefix must not read as a number).
std::string new_id();

// The 12-character form `ps` and `create` show.
std::string short_id(std::string_view id);

// Docker's name rule (a leading '/' is dropped first, as the API sends it).
bool valid_name(std::string_view name);

// Throws UsageError with Docker's message for a name valid_name refuses:
// "Invalid container name (N), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed".
void check_name(std::string_view name);

// A random "adjective_surname" in Docker's style (not Docker's own lists).
std::string random_name();

} // namespace strata::containers
