#!/usr/bin/env bash
# The image half of issue #17 compared with a real dockerd: the same docker
# CLI commands (classic docker build with its errors, commit, image prune,
# inspect and history of what was made, push and pull through Debian's
# docker-registry on 127.0.0.1) against a dockerd of the test's own and
# strata serve (tests/support/api_pair.sh); the transcripts must be the
# same once what legitimately differs is normalized (see normalize_images).
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"
need docker-registry
need python3

. "$(dirname "$0")/../support/api_pair.sh"
api_pair_start
. "$(dirname "$0")/../support/docker_registry.sh"
registry_start "$WORK/registry" || fail "docker-registry did not start"
on_exit "registry_stop $WORK/registry"
export DOCKER_BUILDKIT=0

C=$WORK/ctx
mkdir -p "$C/sub"
printf 'FROM busybox\nARG X=1\nRUN echo hello $X\nCOPY f /f\nENV Y=2\nCMD ["cat", "/f"]\n' >"$C/Dockerfile"
echo content >"$C/f"
printf 'FROM busybox AS one\nRUN echo one > /one\nFROM busybox AS two\nRUN echo two > /two\n' >"$C/sub/Dockerfile"
printf 'FROM busybox\nRUN echo failing; exit 3\n' >"$C/Dockerfile.bad"
printf 'FROM busybox\nRUN echo dangling > /d\n' >"$C/Dockerfile.dangling"

# Each side pushes to a repository of its own on the one registry.
script() {
  local repo=$REG/$1
  cd "$C" || return
  run build -t built:1 --build-arg X=7 .
  run build -t built:1 --build-arg X=7 .
  run build --no-cache -t built:1 --build-arg X=7 --label team=a .
  run build -f Dockerfile.bad .
  run build -f sub/Dockerfile --target one -t staged .
  run build -q -f sub/Dockerfile --target one .
  run build -f nope .
  run image inspect -f '{{.RepoTags}} {{json .Config.Cmd}} {{.Config.Env}} {{json .Config.Labels}} {{.Os}} {{len .RootFS.Layers}} {{.Size}}' built:1
  run run --name c1 --network none busybox sh -c 'echo x > /f'
  run commit -a me -m msg -c 'CMD ["cat", "/f"]' -c 'ENV Q=1' c1 committed:1
  run image inspect -f '{{.Author}} {{.Comment}} {{json .Config.Cmd}} {{.Config.Env}} {{len .RootFS.Layers}}' committed:1
  run history --format '{{.Size}} {{.CreatedBy}} {{.Comment}}' committed:1
  run commit nosuch
  run rm c1
  run tag built:1 "$repo/app:1"
  run push "$repo/app:1"
  run push "$repo/app:1"
  run rmi "$repo/app:1"
  run pull "$repo/app:1"
  run pull "$repo/nope:1"
  run image inspect -f '{{json .Config.Cmd}} {{len .RootFS.Layers}}' "$repo/app:1"
  run build -q -f Dockerfile.dangling .
  run rmi built:1 staged "$repo/app:1" committed:1
  run image prune -f
  run images --format '{{.Repository}}:{{.Tag}}'
  cd - >/dev/null || return
}

# What differs legitimately, for both transcripts alike:
# - strata makes no intermediate images or containers: the classic
#   builder's " ---> <id>", " ---> Running in <id>" and "Removing
#   intermediate container" lines go (image IDs are normalized anyway);
# - image IDs of builds differ (created times, BuildKit-style history), and
#   so the digests of what was pushed: normalized by `normalize`;
# - the push of a layer dockerd has in overlay2 form goes with "Preparing",
#   "Waiting" and progress lines strata does not show: only the final
#   per-layer statuses are kept; the pull's per-layer lines too (dockerd
#   keeps the layers of the removed tag, strata's gc may not);
# - for the same reason dockerd deletes an image's parent images with it
#   (rmi, image prune): repeated "Deleted: <ID>" lines count once; and the
#   builds' history differs (strata's is BuildKit's: no entry for --label):
#   the history compared is a commit's;
# - the manifest's size in the push's digest line (dockerd pushes Docker's
#   media types, strata OCI's) and the repository digest dockerd records
#   for a pushed image ("Untagged: REPO@sha256:...");
# - the space reclaimed (dockerd counts unpacked layers, strata blobs);
# - each side's repository name on the registry.
normalize_images() {
  sed -E '/^ ---> [0-9a-f]{12}$/d; /^ ---> Running in /d; /^Removing intermediate container /d' |
    sed -E '/: (Preparing|Waiting|Pushing|Pulling fs layer|Download complete|Pull complete|Already exists|Verifying Checksum|Downloading|Extracting)/d' |
    sed -E 's/^Total reclaimed space: .*/Total reclaimed space: <N>/; s/^(.*: digest: sha256:[0-9a-f]{64}) size: [0-9]+$/\1 size: <N>/' |
    sed -E '/^Untagged: .*@sha256:[0-9a-f]{64}$/d' |
    sed -E "s#$REG/(dockerd|strata)/#<REG>/#g; s#Pulling from (dockerd|strata)/#Pulling from <REPO>/#" |
    normalize |
    awk '!(($0 ~ /^[Dd]eleted: /) && $0 == prev) { print } { prev = $0 }'
}

DOCKER_HOST=unix://$DD_SOCK script dockerd 2>&1 | normalize_images >"$WORK/dockerd.out"
DOCKER_HOST=unix://$S_SOCK script strata 2>&1 | normalize_images >"$WORK/strata.out"
diff -u "$WORK/dockerd.out" "$WORK/strata.out" || fail "strata serve answers the docker CLI differently from dockerd (see above)"
cat "$WORK/strata.out"
echo "api_images_vs_dockerd: the transcripts are the same"
