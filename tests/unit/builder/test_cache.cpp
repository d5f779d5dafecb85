// Build cache keys and records.
#include "builder/cache.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include "util/text.hpp"
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace strata;
using namespace strata::builder;

TEST_CASE("Cache keys depend on every part and on where parts split") {
    std::string k = cache_key({"parent", "RUN make"});
    CHECK(k.size() == 64);
    CHECK(k == cache_key({"parent", "RUN make"}));
    CHECK(k != cache_key({"parent", "RUN make "}));
    CHECK(k != cache_key({"parent2", "RUN make"}));
    CHECK(cache_key({"ab", "c"}) != cache_key({"a", "bc"}));
    CHECK(cache_key({"a\n", "b"}) != cache_key({"a", "\nb"}));
}

TEST_CASE("A cache record round-trips and names what gc must keep") {
    TempDir dir;
    BuildCache cache(dir.path() + "/cache");
    std::string key = cache_key({"x"});
    CHECK_FALSE(cache.lookup(key).has_value());

    CacheRecord r;
    r.key = key;
    r.created_by = "RUN true # buildkit";
    r.created = "2024-01-01T00:00:00Z";
    formats::Descriptor layer;
    layer.media_type = "application/vnd.oci.image.layer.v1.tar+zstd";
    layer.digest = formats::Digest::of("layer");
    layer.size = 5;
    r.layer = layer;
    r.diff_id = formats::Digest::of("diff");
    r.chain_id = formats::Digest::of("chain");
    cache.store(r);

    auto got = cache.lookup(key);
    REQUIRE(got.has_value());
    CHECK(got->created == r.created);
    CHECK(got->created_by == r.created_by);
    REQUIRE(got->layer.has_value());
    CHECK(*got->layer == layer);
    CHECK(*got->diff_id == *r.diff_id);
    CHECK(*got->chain_id == *r.chain_id);

    auto j = nlohmann::json::parse(fs::read_file(dir.path() + "/cache/" + key + ".json"));
    CHECK(j["blobs"] == nlohmann::json::array({layer.digest.str()}));
    CHECK(j["chain_ids"] == nlohmann::json::array({r.chain_id->str()}));

    CacheRecord empty{cache_key({"y"}), "ENV A=b", "2024-01-01T00:00:00Z", {}, {}, {}};
    cache.store(empty);
    auto e = cache.lookup(empty.key);
    REQUIRE(e.has_value());
    CHECK_FALSE(e->layer.has_value());
}

TEST_CASE("An unreadable or mismatched cache record is a miss, not an error") {
    TempDir dir;
    BuildCache cache(dir.path());
    std::string key = cache_key({"z"});
    fs::write_file_atomic(dir.path() + "/" + key + ".json", "{not json");
    CHECK_FALSE(cache.lookup(key).has_value());
    fs::write_file_atomic(dir.path() + "/" + key + ".json",
                          "{\"key\":\"" + cache_key({"other"}) + "\",\"layer\":null}");
    CHECK_FALSE(cache.lookup(key).has_value());
}

TEST_CASE("Probe records remember the content a step read") {
    TempDir dir;
    BuildCache cache(dir.path());
    CHECK_FALSE(cache.last_content("p").has_value());
    cache.remember_content("p", "sha256:abc");
    CHECK(cache.last_content("p").value() == "sha256:abc");
}

TEST_CASE("explain_miss names the input that changed since the step's last build") {
    using strata::builder::explain_miss;
    using strata::builder::StepInputs;
    auto make = [](std::vector<std::pair<std::string, std::string>> items) {
        StepInputs in;
        in.key = std::string(64, 'a');
        in.items = std::move(items);
        return in;
    };
    StepInputs prev = make({{"instruction", "COPY src/ /src/"},
                            {"base", "busybox sha256:1"},
                            {"prior", "ARG A=1"},
                            {"parent", "p1"},
                            {"arg A", "1"},
                            {"arg API_TOKEN", strata::builder::redact("s1")},
                            {"content", "c1"}});
    CHECK(explain_miss(std::nullopt, prev, "").find("no earlier build") != std::string::npos);

    StepInputs cur = prev;
    cur.items[1].second = "busybox sha256:2";
    cur.items[3].second = "p2";
    CHECK(explain_miss(prev, cur, "") ==
          "the base image changed: was busybox sha256:1, now busybox sha256:2");
    CHECK(explain_miss(prev, cur, "[2/4] RUN make") == "an earlier step missed: [2/4] RUN make");

    cur = prev;
    cur.items[0].second = "COPY src/ /app/";
    CHECK(explain_miss(prev, cur, "") ==
          "the instruction changed: was `COPY src/ /src/`, now `COPY src/ /app/`");

    cur = prev;
    cur.items[4].second = "2";
    CHECK(explain_miss(prev, cur, "") == "build arg A changed: was \"1\", now \"2\"");
    cur = prev;
    cur.items[5].second = strata::builder::redact("s2");
    CHECK(explain_miss(prev, cur, "") ==
          "build arg API_TOKEN changed: was <redacted>, now <redacted>");
    CHECK(strata::builder::to_json(cur).find("s2") == std::string::npos);

    cur = prev;
    cur.items[6].second = "c2";
    prev.files = std::map<std::string, std::string>{{"src/a", "100644 x"}, {"src/b", "100644 y"}};
    cur.files = std::map<std::string, std::string>{{"src/a", "100644 z"}, {"src/c", "100644 w"}};
    CHECK(explain_miss(prev, cur, "") ==
          "3 files changed: modified src/a, removed src/b, added src/c");
    cur.files.reset();
    CHECK(explain_miss(prev, cur, "") == "the files it reads changed");

    cur = prev;
    CHECK(explain_miss(prev, cur, "").find("same inputs") != std::string::npos);
}

TEST_CASE("secret-like names follow BuildKit's SecretsUsedInArgOrEnv words") {
    using strata::builder::looks_secret;
    CHECK(looks_secret("API_TOKEN"));
    CHECK(looks_secret("password"));
    CHECK(looks_secret("AWS_SECRET_ACCESS_KEY"));
    CHECK(looks_secret("GITHUB_AUTH"));
    CHECK_FALSE(looks_secret("GREETING"));
    CHECK_FALSE(looks_secret("KEYBOARD"));
    CHECK_FALSE(looks_secret("MONKEY"));
}

TEST_CASE("step inputs are written as nlohmann's dump() of their tree, and read back strictly") {
    using strata::builder::StepInputs;
    // The tree to_json wrote before it wrote by hand.
    auto tree_dump = [](const StepInputs& in) {
        nlohmann::json j = nlohmann::json::object();
        j["key"] = strata::text::to_valid_utf8(in.key);
        nlohmann::json items = nlohmann::json::array();
        for (const auto& [k, v] : in.items) {
            items.push_back(nlohmann::json::array(
                {strata::text::to_valid_utf8(k), strata::text::to_valid_utf8(v)}));
        }
        j["items"] = items;
        if (in.files) {
            nlohmann::json files = nlohmann::json::object();
            for (const auto& [name, what] : *in.files) {
                files[strata::text::to_valid_utf8(name)] = strata::text::to_valid_utf8(what);
            }
            j["files"] = std::move(files);
        } else {
            j["files"] = nullptr;
        }
        return j.dump();
    };
    StepInputs in;
    in.key = std::string(64, 'c');
    in.items = {{"instruction", "RUN echo \"q\" \\ \x01\t\n end"},
                {"arg X", "caf\xc3\xa9 \xe2\x80\xa8"},
                {"bad", "x\xff\xfey"}};
    CHECK(strata::builder::to_json(in) == tree_dump(in));
    in.files = std::map<std::string, std::string>{
        {"a b/\"q\".txt", "100644 d1"}, {"Z", "100755 d2"}, {"\x7f\x1f", "x"}, {"\xc3\xa9", "y"}};
    CHECK(strata::builder::to_json(in) == tree_dump(in));
    auto back = strata::builder::parse_step_inputs(strata::builder::to_json(in), "t");
    CHECK(back.key == in.key);
    CHECK(back.files == in.files);
    REQUIRE(back.items.size() == 3);
    CHECK(back.items[2].second == "x\xef\xbf\xbd\xef\xbf\xbdy");
    // Names that are not UTF-8: replaced, sorted anew, as the tree had them.
    in.files->emplace("\xff"
                      "a",
                      "1");
    in.files->emplace("\xfe"
                      "a",
                      "2");
    CHECK(strata::builder::to_json(in) == tree_dump(in));
    in.files.reset();
    CHECK(strata::builder::to_json(in) == tree_dump(in));
    CHECK_FALSE(strata::builder::parse_step_inputs(strata::builder::to_json(in), "t").files);
    for (const char* bad : {
             R"([])",
             R"({"key":"k"})",
             R"({"key":"k","items":[],"key":"k"})",
             R"({"key":"k","items":[],"files":{"a":"1","a":"2"}})",
             R"({"key":"k","items":[["a"]]})",
             R"({"key":"k","items":[["a","b","c"]]})",
             R"({"key":"k","items":["a"]})",
             R"({"key":1,"items":[]})",
             R"({"key":"k","items":[],"files":{"a":{}}})",
             R"({"key":"k","items":[],"other":1})",
             R"({"key":"k","items":[]} x)",
             R"({"key":"k","items":[],"files":{"a":"1"})",
         }) {
        INFO(bad);
        try {
            strata::builder::parse_step_inputs(bad, "explain/x.json");
            FAIL("accepted");
        } catch (const strata::Error& e) {
            CHECK(std::string(e.what()).find("explain/x.json: ") == 0);
        }
    }
}

TEST_CASE("step inputs round-trip through JSON") {
    strata::builder::StepInputs in;
    in.key = std::string(64, 'b');
    in.items = {{"instruction", "RUN make"}, {"arg X", "1"}};
    in.files = std::map<std::string, std::string>{{"a", "100644 d"}};
    auto back = strata::builder::parse_step_inputs(strata::builder::to_json(in), "test");
    CHECK(back.key == in.key);
    CHECK(back.items == in.items);
    CHECK(back.files == in.files);
}
