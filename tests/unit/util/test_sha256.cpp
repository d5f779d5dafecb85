#include "util/sha256.hpp"
#include "util/sha256_resumable.hpp"

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

TEST_CASE("sha256: a saved state goes on to the same digest") {
    std::string data;
    for (int i = 0; i < 1000; ++i) {
        data += std::to_string(i * 7919) + ",";
    }
    for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64},
                            std::size_t{65}, std::size_t{1000}, data.size()}) {
        ResumableSha256 a;
        a.update(data.data(), cut);
        std::string st = a.state();
        CHECK(ResumableSha256::state_bytes(st) == cut);
        ResumableSha256 b = ResumableSha256::resume(st);
        CHECK(b.state() == st);
        b.update(data.data() + cut, data.size() - cut);
        CHECK(b.finish_hex() == Sha256::hex_of(data));
    }
    ResumableSha256 h;
    h.update("abc", 3);
    std::string st = h.state();
    CHECK_THROWS(ResumableSha256::resume(st.substr(0, st.size() - 1))); // pending bytes missing
    CHECK_THROWS(ResumableSha256::resume("sha256-state1"));
    CHECK_THROWS(ResumableSha256::resume(std::string(st.size(), 'x')));
}
