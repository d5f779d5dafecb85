#!/usr/bin/env bash
# strata serve's image half of issue #17 driven by Debian's docker CLI (20.10,
# classic builder) and python3-docker: docker build (-f, --build-arg,
# --target, --label, --no-cache, -q, a failing RUN, a hostile context),
# commit, import, push and pull against Debian's docker-registry on
# 127.0.0.1, image prune, system df, image inspect's dockerd fields. Runs in
# a network namespace of its own (own_netns.sh). What the images hold is
# checked with strata run (written when `docker run --rm` through strata
# serve could lose a short container's output: an attach answered before it
# was registered, fixed since).
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/../support/docker_client.sh"
need_docker_client
need curl
need python3
need docker-registry
python3 -c 'import docker' 2>/dev/null || skip "needs python3-docker"

SOCK=$WORK/s.sock
export DOCKER_HOST=unix://$SOCK
export DOCKER_BUILDKIT=0
api() { curl -sS --unix-socket "$SOCK" "$@"; }

strata bootstrap busybox >/dev/null || fail "bootstrap"
. "$(dirname "$0")/../support/docker_registry.sh"
registry_start "$WORK/registry" || fail "docker-registry did not start"
on_exit "registry_stop $WORK/registry"

start_strata_serve "$SOCK"

# --- docker build: steps, RUN output, build args, labels, tags
C=$WORK/ctx
mkdir -p "$C/sub"
printf 'FROM busybox\nARG X=1\nRUN echo hello $X\nCOPY f /f\nCMD ["cat", "/f"]\n' >"$C/Dockerfile"
echo content >"$C/f"
printf 'FROM busybox AS one\nRUN echo stage one > /one\nFROM busybox AS two\nRUN echo stage two > /two\n' >"$C/sub/Dockerfile"
out=$(cd "$C" && docker build -t app:1 -t app:2 --build-arg X=7 --label team=a . 2>&1) || fail "docker build: $out"
assert_contains "$out" "Step 1/6 : FROM busybox" "build: first step"
assert_contains "$out" "Step 3/6 : RUN echo hello \$X" "build: RUN step"
assert_contains "$out" "hello 7" "build: RUN output with the build arg"
assert_contains "$out" "Step 6/6 : LABEL team=a" "build: --label is a step, as the classic builder"
id=$(docker image inspect -f '{{.Id}}' app:1)
assert_contains "$out" "Successfully built ${id:7:12}" "build: Successfully built"
assert_contains "$out" "Successfully tagged app:1" "build: tagged app:1"
assert_contains "$out" "Successfully tagged app:2" "build: tagged app:2"
assert_eq "$(strata inspect -f '{{.Id}}' app:2)" "$id" "build: the store has the image"
assert_eq "$(docker image inspect -f '{{index .Config.Labels "team"}} {{.Config.Cmd}}' app:1)" "a [cat /f]" "build: label and CMD"
assert_eq "$(strata run --rm --network none app:1)" "content" "build: COPY"
out=$(cd "$C" && docker build -t app:1 --build-arg X=7 --label team=a . 2>&1) || fail "rebuild: $out"
assert_contains "$out" " ---> Using cache" "rebuild: cached steps"
[[ "$out" != *"hello 7"* ]] || fail "rebuild ran the RUN again: $out"
out=$(cd "$C" && docker build --no-cache -t app:1 --build-arg X=7 --label team=a . 2>&1) || fail "--no-cache: $out"
assert_contains "$out" "hello 7" "--no-cache runs RUN again"
# -q: only the ID (the cached build of the --no-cache one)
id=$(docker image inspect -f '{{.Id}}' app:1)
qid=$(cd "$C" && docker build -q --build-arg X=7 --label team=a .) || fail "build -q"
assert_eq "$qid" "$id" "build -q prints the ID"
# -f in a subdirectory, --target
out=$(cd "$C" && docker build -f sub/Dockerfile --target one -t staged . 2>&1) || fail "build -f --target: $out"
assert_contains "$out" "Step 2/2 : RUN echo stage one > /one" "target: the stages up to it, as the classic builder counts"
[[ "$out" != *"stage two"* ]] || fail "--target built the later stage: $out"
assert_eq "$(strata run --rm --network none staged cat /one)" "stage one" "target: the stage's image"
# a failing RUN: dockerd's message, the command's exit code
printf 'FROM busybox\nRUN echo failing; exit 3\n' >"$C/Dockerfile.bad"
out=$(cd "$C" && docker build -f Dockerfile.bad . 2>&1)
rc=$?
assert_eq "$rc" "3" "failing RUN: exit code"
assert_contains "$out" "failing" "failing RUN: its output"
assert_contains "$out" "The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3" "failing RUN: message"
# what strata's builder cannot honour is refused by name
out=$(cd "$C" && docker build --shm-size 1m . 2>&1) && fail "--shm-size accepted"
assert_contains "$out" "shmsize=1048576: not supported" "shmsize refused"
out=$(cd "$C" && docker build --add-host a:127.0.0.2 . 2>&1) && fail "--add-host accepted"
assert_contains "$out" "extrahosts" "extrahosts refused"
# the 20.10 CLI without DOCKER_BUILDKIT uses the classic builder too (no
# Builder-Version in /_ping); DOCKER_BUILDKIT=1 needs BuildKit's /session,
# which strata serve does not serve (README)
out=$(cd "$C" && env -u DOCKER_BUILDKIT "$DOCKER" build -q --build-arg X=7 --label team=a .) || fail "build without DOCKER_BUILDKIT"
assert_eq "$out" "$id" "build without DOCKER_BUILDKIT: classic, cached"
# a missing Dockerfile in the context (curl: the CLI checks it first)
tar -C "$C" -cf "$WORK/ctx.tar" .
assert_eq "$(api -X POST -H 'Content-Type: application/x-tar' --data-binary @"$WORK/ctx.tar" 'http://d/v1.41/build?dockerfile=nope')" \
  '{"message":"Cannot locate specified Dockerfile: nope"}' "missing Dockerfile"
# raw stream: Step and newline messages, aux ID (a gzip context)
gzip -c "$WORK/ctx.tar" >"$WORK/ctx.tar.gz"
raw=$(api -X POST -H 'Content-Type: application/x-tar' --data-binary @"$WORK/ctx.tar.gz" 'http://d/v1.41/build?buildargs=%7B%22X%22%3A%227%22%7D&labels=%7B%22team%22%3A%22a%22%7D')
assert_contains "$raw" '{"stream":"Step 1/6 : FROM busybox"}' "raw: step message"
assert_contains "$raw" "{\"aux\":{\"ID\":\"$id\"}}" "raw: aux ID"

# --- a hostile context: a ../ entry and an absolute symlink to a host file
H=$WORK/hostile
mkdir -p "$H"
python3 - "$H/escape.tar" "$H/link.tar" "$H/through.tar" "$WORK" <<'PY'
import io, sys, tarfile
def add(t, name, data=b"", **kw):
    ti = tarfile.TarInfo(name); ti.size = len(data)
    for k, v in kw.items(): setattr(ti, k, v)
    t.addfile(ti, io.BytesIO(data) if data else None)
with tarfile.open(sys.argv[1], "w") as t:
    add(t, "Dockerfile", b"FROM busybox\n")
    add(t, "../../escaped-by-build", b"x")
with tarfile.open(sys.argv[2], "w") as t:
    add(t, "Dockerfile", type=tarfile.SYMTYPE, linkname="/etc/shadow")
with tarfile.open(sys.argv[3], "w") as t:  # an absolute symlink, then a file through it
    add(t, "Dockerfile", b"FROM busybox\nCOPY esc/ /esc/\n")
    add(t, "esc", type=tarfile.SYMTYPE, linkname=sys.argv[4])
    add(t, "esc/escaped-through-link", b"x")
PY
out=$(api -X POST -H 'Content-Type: application/x-tar' --data-binary @"$H/escape.tar" 'http://d/v1.41/build')
assert_contains "$out" '"message"' "../ entry: an error"
assert_contains "$out" "escaped-by-build" "../ entry: the error names the entry"
[ ! -e "$STRATA_ROOT/escaped-by-build" ] && [ ! -e "$STRATA_ROOT/tmp/escaped-by-build" ] &&
  [ ! -e "$WORK/escaped-by-build" ] || fail "../ entry written outside the context"
find / -xdev -name escaped-by-build 2>/dev/null | grep -q . && fail "../ entry written somewhere"
out=$(api -X POST -H 'Content-Type: application/x-tar' --data-binary @"$H/link.tar" 'http://d/v1.41/build')
assert_contains "$out" "Cannot locate specified Dockerfile: Dockerfile" "Dockerfile symlinked to a host file: resolved in the context"
[[ "$out" != *"root:"* ]] || fail "the host's /etc/shadow leaked: $out"

api -X POST -H 'Content-Type: application/x-tar' --data-binary @"$H/through.tar" 'http://d/v1.41/build' >"$WORK/through.out"
[ ! -e "$WORK/escaped-through-link" ] || fail "a file written through an absolute symlink of the context: $(cat "$WORK/through.out")"
assert_contains "$(cat "$WORK/through.out")" 'entry \"esc/escaped-through-link\": path goes through symlink' "symlink context: refused, naming the entry"

# --- commit
docker run --name c1 --network none busybox sh -c 'echo committed > /c' >/dev/null || fail "run c1"
cid=$(docker commit -a me -m msg -c 'CMD ["cat", "/c"]' c1 committed:1) || fail "docker commit"
assert_eq "$(strata run --rm --network none committed:1)" "committed" "commit: the layer and CMD"
assert_eq "$(docker image inspect -f '{{.Author}} {{.Comment}}' committed:1)" "me msg" "commit: author, comment"
assert_eq "$cid" "$(strata inspect -f '{{.Id}}' committed:1)" "commit: the ID printed"
out=$(api -X POST 'http://d/v1.41/commit?container=c1&repo=committed&tag=2' -H 'Content-Type: application/json' -d '{"Env":["Q=1"],"Cmd":["ls"]}')
assert_contains "$out" '{"Id":"sha256:' "commit API: Id"
assert_eq "$(docker image inspect -f '{{.Config.Cmd}}' committed:2)" "[ls]" "commit API: body Cmd"
assert_contains "$(docker image inspect -f '{{.Config.Env}}' committed:2)" " Q=1]" "commit API: body Env, merged with the image's"
assert_eq "$(api -o /dev/null -w '%{http_code}' -X POST 'http://d/v1.41/commit?container=nope')" "404" "commit: no such container"

# --- import
mkdir -p "$WORK/rootfs/bin"
cp /bin/busybox "$WORK/rootfs/bin/"
ln -s busybox "$WORK/rootfs/bin/sh"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
iid=$(docker import -c 'CMD ["sh"]' -m imported "$WORK/rootfs.tar" imp:1) || fail "docker import"
assert_eq "$iid" "$(strata inspect -f '{{.Id}}' imp:1)" "import: the ID printed"
assert_eq "$(docker image inspect -f '{{.Config.Cmd}} {{.Comment}}' imp:1)" "[sh] imported" "import: change and message"

# --- push and pull through the registry
docker tag app:1 "$REG/t/app:1" || fail "tag"
out=$(docker push "$REG/t/app:1" 2>&1) || fail "docker push: $out"
assert_contains "$out" "The push refers to repository [$REG/t/app]" "push: repository line"
assert_contains "$out" ": Pushed" "push: layers pushed"
mdigest=$(sed -n 's/^1: digest: \(sha256:[0-9a-f]*\) size: [0-9]*$/\1/p' <<<"$out")
[ -n "$mdigest" ] || fail "push: no digest line: $out"
out=$(docker push "$REG/t/app:1" 2>&1) || fail "push again: $out"
assert_contains "$out" ": Layer already exists" "push again: layers exist"
out=$(docker push "$REG/t/none:1" 2>&1) && fail "push of a missing image succeeded"
assert_contains "$out" "An image does not exist locally with the tag: $REG/t/none" "push: missing image"
raw=$(api -X POST -H 'X-Registry-Auth: e30=' "http://d/v1.41/images/$REG/t/app/push?tag=1")
assert_contains "$raw" "{\"progressDetail\":{},\"aux\":{\"Tag\":\"1\",\"Digest\":\"$mdigest\"," "push: aux message"
# the imported image: its layer is in no build cache record, so that once
# its names go the pull fetches it again
docker tag imp:1 "$REG/t/imp:1" || fail "tag imp"
out=$(docker push "$REG/t/imp:1" 2>&1) || fail "docker push imp: $out"
imdigest=$(sed -n 's/^1: digest: \(sha256:[0-9a-f]*\) size: [0-9]*$/\1/p' <<<"$out")
docker rmi imp:1 "$REG/t/imp:1" >/dev/null || fail "rmi imp"
out=$(docker pull "$REG/t/imp:1" 2>&1) || fail "docker pull: $out"
assert_contains "$out" "1: Pulling from t/imp" "pull: first line"
assert_contains "$out" ": Pull complete" "pull: the layer"
assert_contains "$out" "Digest: $imdigest" "pull: digest"
assert_contains "$out" "Status: Downloaded newer image for $REG/t/imp:1" "pull: status"
out=$(docker pull "$REG/t/imp:1" 2>&1) || fail "pull again: $out"
assert_contains "$out" "Status: Image is up to date for $REG/t/imp:1" "pull again: up to date"
assert_eq "$(strata run --rm --network none "$REG/t/imp:1" /bin/sh -c "/bin/busybox echo ran")" "ran" "pulled image runs"
out=$(docker pull "$REG/t/nope:1" 2>&1) && fail "pull of a missing repository succeeded"
assert_contains "$out" "Error response from daemon: manifest for $REG/t/nope:1 not found: manifest unknown" "pull: missing"
assert_eq "$(api -o /dev/null -w '%{http_code}' -X POST "http://d/v1.41/images/create?fromImage=$REG/t/nope&tag=1")" "404" "pull: 404"
# X-Registry-Auth is decoded (credentials the registry ignores)
auth=$(printf '{"username":"u","password":"p"}' | base64 -w0 | tr '+/' '-_')
raw=$(api -X POST -H "X-Registry-Auth: $auth" "http://d/v1.41/images/create?fromImage=$REG/t/imp:1")
assert_contains "$raw" '"status":"Status: Image is up to date for' "pull with X-Registry-Auth"

# --- image prune, system df
docker tag busybox keep:1
printf 'FROM busybox\nRUN echo dangling > /d\n' >"$C/Dockerfile.d"
(cd "$C" && docker build -q -f Dockerfile.d .) >"$WORK/did" || fail "build a dangling image"
did=$(cat "$WORK/did")
out=$(docker image prune -f 2>&1) || fail "image prune: $out"
assert_contains "$out" "deleted: $did" "prune: the dangling image"
[[ "$out" != *"keep"* ]] || fail "prune took a named image: $out"
strata inspect "$did" >/dev/null 2>&1 && fail "prune left the image"
out=$(docker system df) || fail "system df"
assert_contains "$out" "Images  " "df: images row"
assert_contains "$out" "Containers  " "df: containers row"
out=$(docker system df -v) || fail "system df -v"
grep -Eq '^busybox +latest +[0-9a-f]{12} .* 1$' <<<"$out" || fail "df -v: busybox used by c1: $out"
assert_contains "$out" "c1" "df -v: containers"
out=$(strata system df) || fail "strata system df"
assert_contains "$out" "Images" "strata system df"
# strata image prune: the same function as the endpoint
printf 'FROM busybox\nRUN echo dangling2 > /d\n' >"$C/Dockerfile.d2"
did2=$(strata build -q -f "$C/Dockerfile.d2" "$C" 2>/dev/null) || fail "strata build of a dangling image"
# docker's question first: anything but y keeps the image
out=$(echo n | strata image prune) || fail "strata image prune answered n: $out"
assert_contains "$out" "WARNING! This will remove all dangling images." "strata image prune: the question"
strata inspect "$did2" >/dev/null 2>&1 || fail "strata image prune answered n removed the image"
out=$(echo y | strata image prune) || fail "strata image prune: $out"
assert_contains "$out" "deleted: $did2" "strata image prune: the dangling image"
assert_contains "$out" "Total reclaimed space: " "strata image prune: the total"

# docker builder prune and system prune (POST /build/prune is system
# prune's last step): the dangling image's build cache record goes.
out=$(docker builder prune -f 2>&1) || fail "docker builder prune: $out"
assert_contains "$out" "Deleted build cache objects:" "builder prune: the dangling build's record"
assert_contains "$out" "Total reclaimed space: " "builder prune: the total"
out=$(docker builder prune -f 2>&1) || fail "docker builder prune again: $out"
assert_eq "$out" "Total reclaimed space: 0B" "builder prune: nothing left to take"
out=$(api -X POST 'http://d/v1.41/build/prune?filters=%7B%22label%22%3A%7B%22a%22%3Atrue%7D%7D')
assert_contains "$out" "Invalid filter 'label'" "build/prune: a filter it does not take"

# --- image inspect's dockerd fields
doc=$(api http://d/v1.41/images/committed:1/json)
python3 - "$doc" <<'PY' || fail "inspect fields: $doc"
import json, sys
d = json.loads(sys.argv[1])
for k in ("ContainerConfig", "GraphDriver", "Metadata", "RootFS", "Parent", "Comment", "DockerVersion", "Author", "VirtualSize", "Container"):
    assert k in d, k
assert d["GraphDriver"]["Name"] == "strata", d["GraphDriver"]
assert d["RootFS"]["Type"] == "layers" and len(d["RootFS"]["Layers"]) == 2, d["RootFS"]
assert "LastTagTime" in d["Metadata"], d["Metadata"]
PY

# --- docker-py: build, pull, push, commit
python3 - "$SOCK" "$REG" "$C" <<'PY' || fail "docker-py"
import sys, docker
sock, reg, ctx = sys.argv[1:]
c = docker.DockerClient(base_url="unix://" + sock, version="1.41")
img, logs = c.images.build(path=ctx, tag="py:1", buildargs={"X": "9"})
assert any("hello 9" in l.get("stream", "") for l in logs), logs
assert "py:1" in img.tags, img.tags
try:
    c.images.build(path=ctx, dockerfile="Dockerfile.bad")
    raise SystemExit("a failing build succeeded")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 3" in str(e), e
img.tag(reg + "/t/py", "1")
out = c.images.push(reg + "/t/py", tag="1")
assert "digest: sha256:" in out, out
pulled = c.images.pull(reg + "/t/py", tag="1")
assert pulled.id == img.id, (pulled.id, img.id)
ctr = c.containers.get("c1")
committed = ctr.commit(repository="pycommit", tag="1", message="from python")
assert committed.attrs["Comment"] == "from python", committed.attrs
PY

# --- docker system prune (last: it takes the stopped c1): POST
# /containers/prune, /networks/prune, /images/prune and /build/prune.
out=$(docker system prune -f 2>&1) || fail "docker system prune: $out"
assert_contains "$out" "Deleted Containers:" "system prune: the stopped containers"
assert_contains "$out" "Total reclaimed space: " "system prune: the total"
strata container inspect c1 >/dev/null 2>&1 && fail "system prune left the stopped c1"
strata inspect keep:1 >/dev/null 2>&1 || fail "system prune took a named image"
echo "api_images: all checks passed"
