#!/usr/bin/env bash
# Interoperability with the real tools: skopeo and umoci read strata's store
# and what `save` writes; strata loads what buildah and skopeo write and gets
# the same files.
. "$(dirname "$0")/lib.sh"
need skopeo
need umoci
need buildah

strata bootstrap busybox >/dev/null || fail "bootstrap"
digest=$(strata images --digests | awk '$1=="busybox"{print $3}')

# skopeo and umoci read the store itself (it is an OCI layout).
out=$(skopeo inspect "oci:$STRATA_ROOT:docker.io/library/busybox:latest") || fail "skopeo inspect of the store"
assert_contains "$out" '"Architecture"' "skopeo reads the config"
got=$(skopeo inspect --raw "oci:$STRATA_ROOT:docker.io/library/busybox:latest" | sha256sum | cut -d' ' -f1)
assert_eq "sha256:$got" "$digest" "skopeo sees the same manifest"
strata unpack busybox "$WORK/strata-rootfs" || fail "unpack"
umoci unpack --image "$STRATA_ROOT:docker.io/library/busybox:latest" "$WORK/umoci-bundle" >/dev/null ||
  fail "umoci unpack of the store"
[ "$(tree_dump "$WORK/umoci-bundle/rootfs")" = "$(tree_dump "$WORK/strata-rootfs")" ] ||
  fail "umoci unpacks the same files as strata"

# What save writes: skopeo reads the docker-archive and the OCI archive.
strata save busybox --format docker -o "$WORK/bb.tar" || fail "save docker"
strata save busybox --format oci -o "$WORK/bb-oci.tar" || fail "save oci"
skopeo inspect "docker-archive:$WORK/bb.tar" >/dev/null || fail "skopeo reads strata's docker-archive"
skopeo inspect "oci-archive:$WORK/bb-oci.tar" >/dev/null || fail "skopeo reads strata's oci-archive"
skopeo copy -q "docker-archive:$WORK/bb.tar" "oci:$WORK/from-docker-archive:bb" || fail "skopeo copies strata's docker-archive"

# buildah commits a busybox image; skopeo copies it out as docker-archive and
# oci-archive; strata loads both and unpacks the same files.
cs="--root $WORK/cs --runroot $WORK/run --storage-driver vfs"
ctr=$(buildah $cs from scratch) || fail "buildah from scratch"
buildah $cs copy "$ctr" "$WORK/strata-rootfs" / >/dev/null || fail "buildah copy"
buildah $cs config --cmd '["sh"]' "$ctr" || fail "buildah config"
buildah $cs commit -q "$ctr" localhost/bb-buildah >/dev/null || fail "buildah commit"
store="containers-storage:[vfs@$WORK/cs+$WORK/run]localhost/bb-buildah:latest"
skopeo copy -q "$store" "docker-archive:$WORK/buildah-docker.tar:bb-buildah:latest" || fail "skopeo to docker-archive"
skopeo copy -q "$store" "oci-archive:$WORK/buildah-oci.tar:bb-buildah:latest" || fail "skopeo to oci-archive"
buildah $cs rm "$ctr" >/dev/null 2>&1 || true
on_exit "buildah $cs rmi -af >/dev/null 2>&1; rm -rf $WORK/cs $WORK/run"

strata load -i "$WORK/buildah-docker.tar" | grep -q 'bb-buildah:latest' || fail "load buildah's docker-archive"
strata unpack bb-buildah:latest "$WORK/from-docker" || fail "unpack"
[ "$(tree_dump "$WORK/from-docker")" = "$(tree_dump "$WORK/strata-rootfs")" ] || fail "docker-archive from buildah: same files"
strata rmi bb-buildah:latest >/dev/null
strata load -i "$WORK/buildah-oci.tar" -t bb-oci:1 >/dev/null || fail "load buildah's oci-archive"
strata unpack bb-oci:1 "$WORK/from-oci" || fail "unpack"
[ "$(tree_dump "$WORK/from-oci")" = "$(tree_dump "$WORK/strata-rootfs")" ] || fail "oci-archive from buildah: same files"
cmd=$(strata inspect --format json bb-oci:1 | tr -d ' \n' | grep -o '"Cmd":\["sh"\]')
assert_eq "$cmd" '"Cmd":["sh"]' "buildah's config survives"
echo ok
