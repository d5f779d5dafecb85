#!/usr/bin/env bash
# Side by side with buildah (Debian's 1.28, `bud --isolation chroot`): each
# example it can build (1.28 has no heredocs and no COPY --exclude) is built
# by both from the same busybox base; the root filesystems are compared file
# by file (path, type, mode, owner, size, content hash, symlink target) and
# the configs field by field (Env, Cmd, Entrypoint, WorkingDir, User,
# ExposedPorts, Volumes, Labels). buildah builds with --format docker, the
# format that keeps ONBUILD, HEALTHCHECK and SHELL (as BuildKit does).
# Documented differences, where strata matches Docker/BuildKit:
#  - buildah adds the label io.buildah.version: ignored;
#  - mtimes are not compared (each tool stamps its own build time);
#  - buildah leaves the empty mount points its RUN steps needed in the image
#    (/etc/hosts, /etc/hostname, /etc/resolv.conf, /run and the targets of
#    RUN --mount); BuildKit removes them, and so does strata: such empty
#    entries that buildah alone has are dropped from its listing;
#  - link and chmod are not built by buildah: 1.28 has no COPY --link and
#    takes only octal --chmod (build_examples and build_features check them
#    against BuildKit's semantics);
#  - cache-mount's /runs-seen counts the builds that used the cache mount,
#    which is each tool's own history (buildah keeps its cache mounts in
#    /var/tmp across stores): not compared.
. "$(dirname "$0")/lib.sh"
need buildah
need python3
[ -x /bin/busybox ] || skip "needs /bin/busybox (apt-get install busybox-static)"
EX=$(cd "$(dirname "$0")/../../examples/Dockerfiles" && pwd)

printf 'unqualified-search-registries = []\n' >"$WORK/registries.conf"
export CONTAINERS_REGISTRIES_CONF=$WORK/registries.conf
BAH=(buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver vfs)
on_exit '"${BAH[@]}" rm -a >/dev/null 2>&1; "${BAH[@]}" unmount -a >/dev/null 2>&1'

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata save busybox:latest --format oci -o "$WORK/bb.tar" || fail "save"
id=$("${BAH[@]}" pull -q "oci-archive:$WORK/bb.tar") || fail "buildah pull"
"${BAH[@]}" tag "$id" docker.io/library/busybox:latest || fail "buildah tag"

cfg_fields='
import json, sys
d = json.load(sys.stdin)
c = d.get("config") or d.get("Config") or {}
labels = {k: v for k, v in (c.get("Labels") or {}).items() if k != "io.buildah.version"}
for k in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User"]:
    print(k, json.dumps(c.get(k) or None))
print("ExposedPorts", sorted(c.get("ExposedPorts") or {}))
print("Volumes", sorted(c.get("Volumes") or {}))
print("Labels", json.dumps(labels, sort_keys=True))
'
compared=0
for ex in basics multistage cache-mount onbuild add-tar add-archives user-workdir metadata secret; do
  ctx="$EX/$ex"
  extra=()
  [ $ex = secret ] && { echo s3cr3t >"$WORK/token.txt"; extra=(--secret "id=token,src=$WORK/token.txt"); }
  strata build --progress quiet "${extra[@]}" -t "cmp/$ex" "$ctx" >/dev/null 2>"$WORK/err" ||
    { cat "$WORK/err" >&2; fail "strata build $ex"; }
  "${BAH[@]}" bud --isolation chroot --format docker --pull=never -q "${extra[@]}" -t "localhost/cmp-$ex" "$ctx" >/dev/null 2>"$WORK/err" ||
    { cat "$WORK/err" >&2; fail "buildah bud $ex"; }
  rm -rf "$WORK/s" && mkdir -p "$WORK/s" && strata unpack "cmp/$ex" "$WORK/s/root" || fail "unpack"
  ctr=$("${BAH[@]}" from --pull=never "localhost/cmp-$ex") || fail "buildah from"
  mnt=$("${BAH[@]}" mount "$ctr") || fail "buildah mount"
  tree_dump "$WORK/s/root" | grep -v '^\./runs-seen ' >"$WORK/strata.tree"
  tree_dump "$mnt" | python3 -c '
import sys
strata = {l.split(" ")[0] for l in open(sys.argv[1])}
for l in sys.stdin:
    p, t, m, o, size = l.split(" ")[:5]
    stub = (t == "f" and size == "0") or t == "d"
    if p not in strata and stub and (p in ("./etc/hosts", "./etc/hostname", "./etc/resolv.conf")
                                     or p == "./run" or p.startswith("./run/") or t == "d"):
        continue
    sys.stdout.write(l)' "$WORK/strata.tree" | grep -v '^\./runs-seen ' >"$WORK/buildah.tree"
  "${BAH[@]}" rm "$ctr" >/dev/null
  diff -u "$WORK/buildah.tree" "$WORK/strata.tree" >"$WORK/tree.diff" ||
    { cat "$WORK/tree.diff" >&2; fail "$ex: root filesystems differ (- buildah, + strata)"; }
  strata inspect --format json "cmp/$ex" | python3 -c 'import json,sys; json.dump(json.load(sys.stdin)[0]["Config"], sys.stdout)' |
    python3 -c "$cfg_fields" >"$WORK/strata.cfg"
  "${BAH[@]}" inspect --type image "localhost/cmp-$ex" | python3 -c 'import json,sys; json.dump(json.load(sys.stdin)["OCIv1"], sys.stdout)' |
    python3 -c "$cfg_fields" >"$WORK/buildah.cfg"
  diff -u "$WORK/buildah.cfg" "$WORK/strata.cfg" >&2 || fail "$ex: configs differ (- buildah, + strata)"
  compared=$((compared + 1))
done
echo "ok: $compared examples agree with buildah"
