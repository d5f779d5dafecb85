#!/usr/bin/env bash
# The container, volume and network commands of api_containers.sh, the same
# script against a dockerd of its own and against strata serve
# (tests/support/api_pair.sh): the transcripts must be the same. What
# legitimately differs is normalized: IDs (api_pair's normalize), and in
# stats the CPU %, memory use and I/O figures, which are the processes'
# own numbers on two different runtimes (only the shape of each column is
# compared). Containers run with --network none: dockerd runs with
# --bridge=none --iptables=false here, so containers on user networks are
# tested against strata alone (api_containers.sh); the network commands
# that need no container (create, ls, inspect, rm, prune and their errors)
# are compared.
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/../support/api_pair.sh"
api_pair_start

mkdir -p "$WORK/src/sub"
echo one >"$WORK/src/a.txt"
echo two >"$WORK/src/sub/b.txt"

# docker stats' figures as their shapes: "0.00%" -> "N%", "1.2MiB / 7.7GiB"
# -> "N / N".
stats_shape() { sed -E 's/[0-9]+(\.[0-9]+)?([kKMGT]i?)?B/N/g; s/[0-9]+\.[0-9]+%/N%/g'; }
# top's PIDs are the host's, different on each side.
top_shape() { sed -E 's/^[0-9]+ +/<PID> /'; }
# docker diff in a stable order (dockerd's follows its walk of the layer,
# not sorted), without /etc/hostname, /etc/hosts and /etc/resolv.conf:
# strata writes them into the container's layer where dockerd bind-mounts
# them, so strata diff lists them (and /etc as changed) and dockerd does not.
diff_shape() { grep -vxE 'A /etc/(hostname|hosts|resolv\.conf)|C /etc' | sort; }
# The bytes prune reclaims: the writable layers' files, which differ
# (dockerd's holds its mount points, strata's the files above).
space_shape() { sed -E 's/^(Total reclaimed space: ).*/\1<N>/'; }
# The names a prune lists, sorted: dockerd walks its volumes in Go map
# order, so it prints "v2, v1" on one run and "v1, v2" on the next.
listed_sorted() {
  awk 'function flush(   i, j, t) {
         for (i = 2; i <= n; i++) for (j = i; j > 1 && names[j-1] > names[j]; j--) { t = names[j]; names[j] = names[j-1]; names[j-1] = t }
         for (i = 1; i <= n; i++) print names[i]
         n = 0
       }
       /^Deleted [A-Za-z]+:$/ { print; inlist = 1; next }
       inlist && /^$/ { flush(); inlist = 0 }
       inlist { names[++n] = $0; next }
       { print }
       END { flush() }'
}

script() {
  rm -rf "$WORK/out" && mkdir -p "$WORK/out"
  run run -d --name t1 --network none busybox sh -c 'echo data > /new-file; exec sleep 1000'
  sleep 1
  run top t1 -o pid,comm,args | top_shape
  run top nosuch
  run stats --no-stream --format '{{.Name}} {{.PIDs}} {{.CPUPerc}} {{.MemUsage}} {{.NetIO}}' t1 | stats_shape
  run diff t1 | diff_shape
  run exec t1 sh -c 'rm /bin/true; mkdir -p /tmp/d; echo x > /tmp/d/f'
  run diff t1 | diff_shape
  run export t1 -o "$WORK/out/t1.tar"
  tar -tf "$WORK/out/t1.tar" | grep -E '^(new-file|tmp/d/f|bin/true)$' | sort
  run cp "$WORK/src/a.txt" t1:/tmp/
  run cp "$WORK/src" t1:/tmp/srcdir
  run exec t1 sh -c 'cat /tmp/a.txt /tmp/srcdir/sub/b.txt'
  run cp t1:/tmp/srcdir "$WORK/out/dir"
  run cp t1:/tmp/srcdir/. "$WORK/out/dir2"
  run cp t1:/new-file "$WORK/out/f"
  (cd "$WORK/out" && find . -path ./t1.tar -prune -o -print | sort)
  run cp t1:/tmp/srcdir - >/dev/null
  d cp t1:/tmp/srcdir - | tar -tf - | sort
  run cp t1:/nope "$WORK/out/x"
  run cp "$WORK/src/a.txt" t1:/no/such/dir/
  run cp "$WORK/src/a.txt" nosuch:/tmp
  run cp "t1:/../../../../etc/hostname" "$WORK/out/hn"
  run rename t1 t2
  run rename nosuch t3
  run rename t2 ""
  run pause t2
  run pause t2
  run inspect -f '{{.State.Status}} {{.State.Paused}}' t2
  run unpause t2
  run unpause t2
  run unpause nosuch
  run stop -t 1 t2
  run create --name dead1 --label keep=no busybox true
  run create --name dead2 busybox true
  run container prune -f --filter label=keep=no | space_shape
  run ps -a --format '{{.Names}}'
  run container prune -f | space_shape
  run ps -a --format '{{.Names}}'
  run volume create v1
  run volume create --label team=a v2
  run volume ls
  run volume ls -q --filter label=team=a
  run volume inspect -f '{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}} {{.Options}}' v1 v2
  run volume inspect nosuch
  run run --rm --network none -v v1:/data busybox sh -c 'echo kept > /data/f'
  run run --rm --network none -v v1:/data:ro busybox cat /data/f
  run run -d --name vu --network none --mount type=volume,source=v2,target=/m busybox sleep 1000
  run inspect -f '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}' vu
  run volume rm v2
  run rm -f vu
  run volume rm nosuch
  run volume prune -f | listed_sorted
  run volume ls -q
  run network create --label team=n n1
  run network create n1
  run network create --subnet 10.99.0.0/24 --gateway 10.99.0.1 n2
  run network ls --filter type=custom --format '{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}}'
  run network ls --filter label=team=n --format '{{.Name}}'
  run network inspect -f '{{.Name}} {{.Driver}} {{.Internal}} {{.Labels}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' n2
  run network inspect nosuch
  run network rm n2
  run network rm n2
  run network prune -f
  run network ls --filter type=custom -q
  run rm -f t2
}
api_pair_compare script
echo "PASS"
