// strata serve's image endpoints, their pure parts: dockerd's pull and push
// progress messages, X-Registry-Auth, the commit body as changes, POST
// /build's parameters and the classic builder stream made from build
// events (cli/serve/progress.hpp, cli/serve/build_stream.hpp).
#include "cli/serve/build_stream.hpp"
#include "cli/serve/progress.hpp"

#include "util/base64.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::cli::serve;
using nlohmann::ordered_json;

namespace {

formats::Digest digest_of(const std::string& s) {
    return formats::Digest::of(s);
}

std::string dump(const std::vector<ordered_json>& v) {
    std::string out;
    for (const auto& j : v) {
        out += j.dump() + "\n";
    }
    return out;
}

api::Request request(std::multimap<std::string, std::string> query) {
    api::Request r;
    r.method = "POST";
    r.path = "/build";
    r.query = std::move(query);
    return r;
}

} // namespace

TEST_CASE("pull progress: dockerd's messages, the config blob left out") {
    auto ref = snapshot::Reference::parse("127.0.0.1:5000/team/app:1");
    using Kind = registry::TransferEvent::Kind;
    formats::Digest layer = digest_of("layer");
    std::string id = layer.str().substr(7, 12);
    CHECK(dump(pull_progress({Kind::resolved, digest_of("m"), 10, "", false}, ref)) ==
          R"({"status":"Pulling from team/app","id":"1"})"
          "\n");
    CHECK(dump(pull_progress({Kind::fetching, layer, 10, "", false}, ref)) ==
          R"({"status":"Pulling fs layer","progressDetail":{},"id":")" + id + "\"}\n");
    CHECK(dump(pull_progress({Kind::done, layer, 10, "", false}, ref)) ==
          R"({"status":"Download complete","progressDetail":{},"id":")" + id + "\"}\n" +
              R"({"status":"Pull complete","progressDetail":{},"id":")" + id + "\"}\n");
    CHECK(dump(pull_progress({Kind::skipped, layer, 10, "", false}, ref)) ==
          R"({"status":"Already exists","progressDetail":{},"id":")" + id + "\"}\n");
    CHECK(pull_progress({Kind::done, layer, 10, "", true}, ref).empty());
    auto by_digest = snapshot::Reference::parse("busybox@" + digest_of("m").str());
    CHECK(pull_progress({Kind::resolved, digest_of("m"), 1, "", false}, by_digest)[0]["id"] ==
          digest_of("m").str());
    CHECK(pull_progress({Kind::resolved, digest_of("m"), 1, "", false},
                        snapshot::Reference::parse("busybox"))[0]["status"] ==
          "Pulling from library/busybox");
}

TEST_CASE("push progress and result: dockerd's lines and the aux message") {
    using Kind = registry::TransferEvent::Kind;
    formats::Digest layer = digest_of("l");
    std::string id = layer.str().substr(7, 12);
    CHECK(push_progress({Kind::exists, layer, 1, "", false})[0]["status"] ==
          "Layer already exists");
    CHECK(push_progress({Kind::done, layer, 1, "", false})[0]["status"] == "Pushed");
    CHECK(push_progress({Kind::mounted, layer, 1, "team/base", false})[0]["status"] ==
          "Mounted from team/base");
    CHECK(push_progress({Kind::resolved, layer, 1, "", false}).empty());
    registry::PushResult r;
    r.manifest.digest = digest_of("manifest");
    r.manifest.size = 527;
    auto lines = push_result(snapshot::Reference::parse("127.0.0.1:5000/bb:1"), r);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].dump() ==
          R"({"status":"1: digest: )" + r.manifest.digest.str() + R"( size: 527"})");
    CHECK(lines[1].dump() == R"({"progressDetail":{},"aux":{"Tag":"1","Digest":")" +
                                 r.manifest.digest.str() + R"(","Size":527}})");
    CHECK(error_message("boom").dump() == R"({"errorDetail":{"message":"boom"},"error":"boom"})");
}

TEST_CASE("X-Registry-Auth: base64url JSON, auth field, nothing when empty or broken") {
    auto enc = [](const std::string& s) {
        std::string b = base64_encode(s);
        for (auto& c : b) {
            c = c == '+' ? '-' : c == '/' ? '_' : c;
        }
        return b;
    };
    auto c = registry_auth(enc(R"({"username":"u","password":"p?>"})"));
    REQUIRE(c);
    CHECK(c->username == "u");
    CHECK(c->password == "p?>");
    c = registry_auth(enc(R"({"auth":")" + base64_encode("al:pw:x") + R"("})"));
    REQUIRE(c);
    CHECK(c->username == "al");
    CHECK(c->password == "pw:x");
    c = registry_auth(enc(R"({"identitytoken":"tok"})"));
    REQUIRE(c);
    CHECK(c->identity_token == "tok");
    CHECK_FALSE(registry_auth("e30="));
    CHECK_FALSE(registry_auth("e30")); // unpadded "{}"
    CHECK_FALSE(registry_auth("!!not base64"));
    CHECK_FALSE(registry_auth(enc("[1,2]")));
}

TEST_CASE("fromImage and tag as one reference") {
    CHECK(pull_reference_text("busybox", "latest") == "busybox:latest");
    CHECK(pull_reference_text("busybox:1", "") == "busybox:1");
    CHECK(pull_reference_text("busybox:1", "2") == "busybox:2");
    CHECK(pull_reference_text("127.0.0.1:5000/app", "v1") == "127.0.0.1:5000/app:v1");
    std::string d = digest_of("x").str();
    CHECK(pull_reference_text("127.0.0.1:5000/app", d) == "127.0.0.1:5000/app@" + d);
    CHECK(pull_reference_text("busybox@" + d, "") == "busybox@" + d);
}

TEST_CASE("a missing manifest in dockerd's words") {
    auto ref = snapshot::Reference::parse("127.0.0.1:5000/nope:1");
    CHECK(manifest_not_found_message(
              ref, "manifest 127.0.0.1:5000/nope:1: manifest unknown (no such image or tag) "
                   "[MANIFEST_UNKNOWN: manifest unknown]") ==
          "manifest for 127.0.0.1:5000/nope:1 not found: manifest unknown: manifest unknown");
    CHECK(manifest_not_found_message(ref, "other") ==
          "manifest for 127.0.0.1:5000/nope:1 not found: other");
}

TEST_CASE("commit body: Config fields as changes, unknown ones refused") {
    auto j = nlohmann::json::parse(
        R"({"Cmd":["ls","-l"],"Env":["A=1 2"],"Labels":{"k":"v w"},"WorkingDir":"/w","User":"u",
            "ExposedPorts":{"80/tcp":{}},"Hostname":"","AttachStdout":false,"Entrypoint":null})");
    auto c = config_changes(j);
    // In the keys' order (nlohmann::json sorts them).
    CHECK(c == std::vector<std::string>{R"(CMD ["ls","-l"])", R"(ENV A="1 2")", "EXPOSE 80/tcp",
                                        R"(LABEL "k"="v w")", "USER u", "WORKDIR /w"});
    CHECK(config_changes(nlohmann::json(nullptr)).empty());
    CHECK_THROWS_AS(config_changes(nlohmann::json::parse(R"({"Healthcheck":{"Test":["x"]}})")),
                    UsageError);
    CHECK_THROWS_AS(config_changes(nlohmann::json::parse(R"({"Env":["NOEQUALS"]})")), UsageError);
}

TEST_CASE("POST /build parameters: what strata honours, the rest refused by name") {
    // What the docker 20.10 CLI sends for `docker build -t a -t b --build-arg X=1 .`.
    BuildQuery q = parse_build_query(request({{"t", "a"},
                                              {"t", "b:2"},
                                              {"buildargs", R"({"X":"1","Y":null})"},
                                              {"labels", R"({"l":"v"})"},
                                              {"rm", "1"},
                                              {"networkmode", "default"},
                                              {"cpushares", "0"},
                                              {"memory", "0"},
                                              {"shmsize", "0"},
                                              {"ulimits", "null"},
                                              {"cachefrom", "null"},
                                              {"version", "1"},
                                              {"dockerfile", "sub/Dockerfile"},
                                              {"target", "one"},
                                              {"nocache", "1"},
                                              {"pull", "1"},
                                              {"q", "1"}}));
    CHECK(q.settings.tags == std::vector<std::string>{"a", "b:2"});
    CHECK(q.settings.build_args == std::vector<std::string>{"X=1"});
    CHECK(q.labels == std::map<std::string, std::string>{{"l", "v"}});
    CHECK(q.dockerfile == "sub/Dockerfile");
    CHECK(q.settings.target == "one");
    CHECK(q.settings.no_cache);
    CHECK(q.settings.pull == "always");
    CHECK(q.quiet);
    CHECK(q.settings.network == "none");
    CHECK(parse_build_query(request({{"networkmode", "host"}})).settings.network == "host");
    auto refused = [](std::multimap<std::string, std::string> q) {
        try {
            parse_build_query(request(std::move(q)));
        } catch (const api::HttpError& e) {
            return std::to_string(e.status()) + " " + e.what();
        }
        return std::string("accepted");
    };
    CHECK(refused({{"shmsize", "1048576"}}).starts_with("400 shmsize=1048576: not supported"));
    CHECK(refused({{"extrahosts", "a:1.2.3.4"}}).starts_with("400 extrahosts=a:1.2.3.4"));
    CHECK(refused({{"cachefrom", R"(["img"])"}}).starts_with("400 cachefrom="));
    CHECK(refused({{"networkmode", "bridge"}}).starts_with("400 networkmode=bridge"));
    CHECK(refused({{"version", "2"}}).starts_with("400 version=2"));
    CHECK(refused({{"buildargs", "[1]"}}).starts_with("400 invalid buildargs"));
    CHECK(refused({{"memory", "1000"}}).starts_with("400 memory=1000"));
}

TEST_CASE("classic build stream: steps in Dockerfile order, cache, output, ID") {
    std::vector<std::string> out;
    ClassicBuildStream s([&](const ordered_json& j) { out.push_back(j.dump()); }, false);
    builder::BuildOptions o;
    o.dockerfile_text = "ARG V=1\nFROM busybox\nENV A=1\nRUN echo hi\nCMD [\"sh\"]\n";
    s.prepare(o, {{"team", "a"}});
    CHECK_FALSE(s.started());
    s.step_started(1, "[1/4] FROM busybox");
    s.step_done(1, 0.1);
    s.config_instruction(0, 2, true); // ENV A=1, cached
    s.step_started(2, "[3/4] RUN echo hi");
    s.step_output(2, "hi\n");
    s.step_done(2, 0.2);
    s.config_instruction(0, 4, false); // CMD
    builder::BuildResult r;
    r.image_id = digest_of("config");
    s.succeed(r, {"app:latest"});
    std::string id = r.image_id.str();
    std::vector<std::string> want = {R"({"stream":"Step 1/6 : ARG V=1"})",
                                     R"({"stream":"\n"})",
                                     R"({"stream":"Step 2/6 : FROM busybox"})",
                                     R"({"stream":"\n"})",
                                     R"({"stream":"Step 3/6 : ENV A=1"})",
                                     R"({"stream":"\n"})",
                                     R"({"stream":" ---> Using cache\n"})",
                                     R"({"stream":"Step 4/6 : RUN echo hi"})",
                                     R"({"stream":"\n"})",
                                     R"({"stream":"hi\n"})",
                                     R"({"stream":"Step 5/6 : CMD [\"sh\"]"})",
                                     R"({"stream":"\n"})",
                                     R"({"stream":"Step 6/6 : LABEL team=a"})",
                                     R"({"stream":"\n"})",
                                     R"({"stream":" ---> )" + id.substr(7, 12) + R"(\n"})",
                                     R"({"aux":{"ID":")" + id + R"("}})",
                                     R"({"stream":"Successfully built )" + id.substr(7, 12) +
                                         R"(\n"})",
                                     R"({"stream":"Successfully tagged app:latest\n"})"};
    CHECK(out == want);
}

TEST_CASE("classic build stream: a later stage waits for the earlier; a RUN failure") {
    std::vector<std::string> out;
    ClassicBuildStream s([&](const ordered_json& j) { out.push_back(j.dump()); }, false);
    builder::BuildOptions o;
    o.dockerfile_text =
        "FROM busybox AS a\nRUN echo a\nFROM busybox AS b\nCOPY --from=a / /\nRUN exit 3\n";
    s.prepare(o, {});
    // Stage b's FROM starts first: held back until stage a is shown.
    s.step_started(1, "[b 1/3] FROM busybox");
    s.step_done(1, 0);
    CHECK(out.empty());
    s.step_started(2, "[a 1/2] FROM busybox");
    s.step_done(2, 0);
    s.step_started(3, "[a 2/2] RUN echo a");
    s.step_cached(3);
    s.step_done(3, 0);
    s.step_started(4, "[b 2/3] COPY --from=a / /");
    s.step_done(4, 0);
    s.step_started(5, "[b 3/3] RUN exit 3");
    s.step_output(5, "x");
    builder::StepError e("Dockerfile:5: RUN exit 3: process \"/bin/sh -c exit 3\" did not complete "
                         "successfully: exit code: 3",
                         "Dockerfile", 5, "RUN exit 3", "x", 3);
    s.step_failed(5, e.what(), 0);
    s.fail(e);
    std::vector<std::string> want = {
        R"({"stream":"Step 1/5 : FROM busybox AS a"})",
        R"({"stream":"\n"})",
        R"({"stream":"Step 2/5 : RUN echo a"})",
        R"({"stream":"\n"})",
        R"({"stream":" ---> Using cache\n"})",
        R"({"stream":"Step 3/5 : FROM busybox AS b"})",
        R"({"stream":"\n"})",
        R"({"stream":"Step 4/5 : COPY --from=a / /"})",
        R"({"stream":"\n"})",
        R"({"stream":"Step 5/5 : RUN exit 3"})",
        R"({"stream":"\n"})",
        R"({"stream":"x"})",
        R"({"errorDetail":{"code":3,"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"})"};
    CHECK(out == want);
}

TEST_CASE("classic build stream, quiet: only the ID, or everything on failure") {
    std::vector<std::string> out;
    ClassicBuildStream s([&](const ordered_json& j) { out.push_back(j.dump()); }, true);
    builder::BuildOptions o;
    o.dockerfile_text = "FROM busybox\nRUN true\n";
    s.prepare(o, {});
    s.step_started(1, "[1/2] FROM busybox");
    s.step_done(1, 0);
    CHECK(out.empty());
    CHECK(s.started());
    builder::BuildResult r;
    r.image_id = digest_of("c");
    s.succeed(r, {"x:latest"});
    CHECK(out == std::vector<std::string>{R"({"stream":")" + r.image_id.str() + R"(\n"})"});

    out.clear();
    ClassicBuildStream f([&](const ordered_json& j) { out.push_back(j.dump()); }, true);
    f.prepare(o, {});
    f.step_started(1, "[1/2] FROM nosuch");
    f.fail(Error("pull access denied"));
    CHECK(out ==
          std::vector<std::string>{
              R"({"stream":"Step 1/2 : FROM busybox"})", R"({"stream":"\n"})",
              R"({"errorDetail":{"message":"pull access denied"},"error":"pull access denied"})"});
}
