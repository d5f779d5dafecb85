#include "util/sha256.hpp"

#include <catch2/catch.hpp>

using namespace strata;

TEST_CASE("SHA-256 matches the FIPS 180-2 test vectors") {
    CHECK(Sha256::hex_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(Sha256::hex_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    Sha256 h;
    std::string million(1000000, 'a');
    h.update(million.data(), 500000);
    h.update(million.data() + 500000, 500000);
    CHECK(h.finish_hex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
