#!/usr/bin/env bash
# strata serve's container, volume and network endpoints (issue #17)
# driven by Debian's docker CLI (docker.io 20.10, API 1.41): top, stats
# --no-stream, diff, export, cp both ways (with `-` tar streams, a `../`
# path and a hostile tar PUT to /archive that must stay inside the
# container), rename, pause/unpause, container prune, update's refusal;
# exec -it on a real pty (its size, its exit code, detach keys leaving the
# shell running), attach's detach keys; volume create/ls/inspect/rm/prune and -v NAME:/path; network
# create/ls/inspect/connect/disconnect/rm/prune with two containers reaching
# each other by name and by alias through strata's DNS; then docker-py
# does a few of the same calls. Everything runs in a network namespace of
# the test's own (own_netns.sh).
. "$(dirname "$0")/own_netns.sh"
sysctl -qw net.ipv4.ip_forward=1
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/../support/docker_client.sh"
need_docker_client
need curl
need python3

SOCK=$WORK/s.sock
export DOCKER_HOST=unix://$SOCK
api() { curl -sS --unix-socket "$SOCK" "$@"; }

strata bootstrap busybox >/dev/null || fail "bootstrap"

start_strata_serve "$SOCK"

# --- top, stats, diff, export
docker run -d --name t1 --network none busybox sh -c 'echo data > /new-file; exec sleep 1000' >/dev/null ||
  fail "run t1"
for _ in $(seq 50); do docker exec t1 test -f /new-file && break; sleep 0.1; done
out=$(docker top t1) || fail "docker top: $out"
assert_contains "$(echo "$out" | head -1)" "PID" "top: titles"
assert_contains "$out" "sleep 1000" "top: the container's process"
out=$(docker top t1 -o pid,comm) || fail "docker top -o: $out"
assert_eq "$(echo "$out" | head -1 | tr -s ' ')" "PID COMMAND" "top with ps_args"
assert_contains "$out" "sleep" "top -o: the process"
expect_fail "Error response from daemon:" docker top nosuch

out=$(docker stats --no-stream --format '{{.Name}} {{.PIDs}} {{.MemUsage}}' t1) || fail "docker stats: $out"
[[ "$out" =~ ^t1\ 1\ [0-9.]+[KMG]?i?B\ /\ [0-9.]+[KMGT]iB$ ]] || fail "stats --no-stream: '$out'"
out=$(docker stats --no-stream t1) || fail "docker stats table: $out"
assert_contains "$(echo "$out" | head -1)" "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT" "stats header"
doc=$(api "http://d/v1.41/containers/t1/stats?stream=false") || fail "stats API"
echo "$doc" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["name"] == "/t1", d["name"]
assert d["pids_stats"]["current"] == 1, d["pids_stats"]
assert d["cpu_stats"]["cpu_usage"]["total_usage"] > 0
assert d["precpu_stats"]["system_cpu_usage"] > 0, "no precpu reading"
assert d["memory_stats"]["usage"] > 0 and d["memory_stats"]["limit"] > 0
assert "total_inactive_file" in d["memory_stats"]["stats"]
' || fail "stats document: $doc"

out=$(docker diff t1) || fail "docker diff: $out"
assert_contains "$out" "A /new-file" "diff: added file"
assert_eq "$(docker diff t1)" "$(strata diff t1)" "diff: the API's and strata diff's"
# A name that is not UTF-8: the JSON answer has U+FFFD for the bad byte, as
# dockerd's encoding/json writes it (the answer used to fail).
docker exec t1 sh -c 'touch "/$(printf "b\377d")"' || fail "exec touch"
assert_contains "$(docker diff t1)" "A /b$(printf '\357\277\275')d" "diff: a name that is not UTF-8"
docker export t1 >"$WORK/t1.tar" || fail "docker export"
tar -xOf "$WORK/t1.tar" new-file >"$WORK/new-file" || fail "export: no new-file in $(tar -tf "$WORK/t1.tar" | head)"
assert_eq "$(cat "$WORK/new-file")" "data" "export: the container's file"
tar -tf "$WORK/t1.tar" | grep -qx 'bin/busybox' || fail "export: the image's files"

# --- cp both ways, `-` streams
mkdir -p "$WORK/src/sub"
echo one >"$WORK/src/a.txt"
echo two >"$WORK/src/sub/b.txt"
docker cp "$WORK/src/a.txt" t1:/tmp/ || fail "cp file into t1"
assert_eq "$(docker exec t1 cat /tmp/a.txt)" "one" "cp host -> container: file"
docker cp "$WORK/src" t1:/tmp/srcdir || fail "cp dir into t1"
assert_eq "$(docker exec t1 cat /tmp/srcdir/sub/b.txt)" "two" "cp host -> container: directory"
docker cp t1:/new-file "$WORK/out-file" || fail "cp out of t1"
assert_eq "$(cat "$WORK/out-file")" "data" "cp container -> host: file"
docker cp t1:/tmp/srcdir "$WORK/out-dir" || fail "cp dir out of t1"
assert_eq "$(cat "$WORK/out-dir/sub/b.txt")" "two" "cp container -> host: directory"
docker cp t1:/tmp/srcdir/. "$WORK/out-dir2" || fail "cp dir/. out of t1"
assert_eq "$(cat "$WORK/out-dir2/a.txt")" "one" "cp container -> host: DIR/."
docker cp t1:/tmp/srcdir - | tar -tf - | sort >"$WORK/list" || fail "cp to -"
assert_eq "$(tr '\n' ' ' <"$WORK/list")" "srcdir/ srcdir/a.txt srcdir/sub/ srcdir/sub/b.txt " "cp to -: a tar"
(cd "$WORK/src" && tar -cf - a.txt sub) | docker cp - t1:/tmp || fail "cp - into t1"
assert_eq "$(docker exec t1 cat /tmp/sub/b.txt)" "two" "cp - : extracted"
docker stop -t 1 t1 >/dev/null
docker cp "$WORK/src/a.txt" t1:/stopped.txt || fail "cp into a stopped container"
docker cp t1:/stopped.txt "$WORK/stopped.txt" || fail "cp out of a stopped container"
assert_eq "$(cat "$WORK/stopped.txt")" "one" "cp with a stopped container"
docker start t1 >/dev/null || fail "restart t1"
expect_fail "No such container:path: t1:/nope" docker cp t1:/nope "$WORK/x"
assert_eq "$(api "http://d/v1.41/containers/t1/archive?path=/nope")" \
  '{"message":"Could not find the file /nope in container t1"}' "archive: dockerd's 404"
# HEAD's stat header: base64 JSON as dockerd's
hdr=$(api -I "http://d/v1.41/containers/t1/archive?path=/new-file" | tr -d '\r' |
  sed -n 's/^X-Docker-Container-Path-Stat: //Ip')
echo "$hdr" | base64 -d | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["name"] == "new-file" and d["size"] == 5 and d["mode"] == 0o644 and d["linkTarget"] == "", d
' || fail "path stat header: $hdr"

# --- escapes: a ../ path stays inside the container, hostile tars do not leave it
echo host-secret >"$WORK/host-secret"
docker exec t1 sh -c 'echo container-passwd > /etc/strata-marker' || fail "marker"
docker cp "t1:/../../../../../../../etc/strata-marker" "$WORK/m" || fail "cp of a ../ path"
assert_eq "$(cat "$WORK/m")" "container-passwd" "a ../ path resolves inside the container"
expect_fail "No such container:path" docker cp "t1:/../../../../../..$WORK/host-secret" "$WORK/leak"
[ ! -e "$WORK/leak" ] || fail "a ../ path reached the host"
python3 - "$WORK" <<'EOF'
import io, sys, tarfile
work = sys.argv[1]
def add(t, name, data=b"x", kind=tarfile.REGTYPE, link=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    t.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
with tarfile.open(work + "/dotdot.tar", "w") as t:
    add(t, "../../../../../../.." + work + "/escaped-dotdot")
with tarfile.open(work + "/symlink.tar", "w") as t:
    add(t, "evil", kind=tarfile.SYMTYPE, link="/../../../../../../.." + work)
    add(t, "evil/escaped-symlink")
with tarfile.open(work + "/hardlink.tar", "w") as t:
    add(t, "hl", kind=tarfile.LNKTYPE, link="../../../../../../.." + work + "/host-secret")
with tarfile.open(work + "/abs.tar", "w") as t:
    add(t, work + "/escaped-abs")
EOF
code=$(api -o "$WORK/put.out" -w '%{http_code}' -X PUT --data-binary @"$WORK/dotdot.tar" \
  "http://d/v1.41/containers/t1/archive?path=/tmp")
assert_eq "$code" "400" "PUT of a tar with ../ names: refused ($(cat "$WORK/put.out"))"
assert_contains "$(cat "$WORK/put.out")" "leaves the destination" "the ../ refusal names it"
code=$(api -o "$WORK/put.out" -w '%{http_code}' -X PUT --data-binary @"$WORK/hardlink.tar" \
  "http://d/v1.41/containers/t1/archive?path=/tmp")
assert_eq "$code" "400" "PUT of a hard link leaving the root: refused ($(cat "$WORK/put.out"))"
# Accepted or refused (the link's target may not exist inside), the symlink
# resolves inside the destination: nothing may appear on the host (below).
code=$(api -o "$WORK/put.out" -w '%{http_code}' -X PUT --data-binary @"$WORK/symlink.tar" \
  "http://d/v1.41/containers/t1/archive?path=/tmp")
[ "$code" = 200 ] || [ "$code" = 400 ] || fail "PUT of a symlink out: $code $(cat "$WORK/put.out")"
code=$(api -o "$WORK/put.out" -w '%{http_code}' -X PUT --data-binary @"$WORK/abs.tar" \
  "http://d/v1.41/containers/t1/archive?path=/tmp")
assert_eq "$code" "200" "PUT of an absolute name: inside the destination"
for f in escaped-dotdot escaped-symlink escaped-abs; do
  [ ! -e "$WORK/$f" ] || fail "a hostile tar wrote $WORK/$f on the host"
done
docker exec t1 test -f "/tmp$WORK/escaped-abs" || fail "the absolute name lands below the destination"
assert_eq "$(cat "$WORK/host-secret")" "host-secret" "the host's file is untouched"
code=$(api -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$WORK/abs.tar" \
  "http://d/v1.41/containers/t1/archive?path=/etc/strata-marker")
assert_eq "$code" "400" "PUT to a file: not a directory"
code=$(api -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$WORK/abs.tar" \
  "http://d/v1.41/containers/t1/archive?path=/no/such/dir")
assert_eq "$code" "404" "PUT to a missing directory"

# --- rename, pause/unpause, update, prune
docker rename t1 t2 || fail "docker rename"
assert_eq "$(docker inspect -f '{{.Name}}' t2)" "/t2" "renamed"
expect_fail "No such container: t1" docker container inspect t1
docker run -d --name other --network none busybox sleep 1000 >/dev/null || fail "run other"
expect_fail "Error response from daemon:" docker rename t2 other
docker pause t2 || fail "docker pause"
assert_eq "$(docker inspect -f '{{.State.Status}}' t2)" "paused" "paused"
assert_eq "$(strata ps --format '{{.Names}} {{.State}}' | grep '^t2 ')" "t2 paused" "strata sees it paused"
expect_fail "is already paused" docker pause t2
docker unpause t2 || fail "docker unpause"
assert_eq "$(docker inspect -f '{{.State.Status}}' t2)" "running" "unpaused"
expect_fail "is not paused" docker unpause t2
expect_fail "Memory" docker update -m 64m t2
docker create --name dead1 --label keep=no busybox true >/dev/null
docker create --name dead2 --label keep=yes busybox true >/dev/null
out=$(docker container prune -f --filter label=keep=no) || fail "prune: $out"
assert_contains "$out" "Deleted Containers:" "prune output"
expect_fail "No such container: dead1" docker container inspect dead1
docker inspect dead2 >/dev/null || fail "prune with a label filter kept dead2"
docker container prune -f >/dev/null || fail "prune"
expect_fail "No such container: dead2" docker container inspect dead2
docker inspect t2 other >/dev/null || fail "prune removed running containers"
docker rm -f t2 other >/dev/null

# --- volumes
assert_eq "$(docker volume create v1)" "v1" "volume create"
docker volume create --label team=a v2 >/dev/null || fail "volume create --label"
assert_eq "$(docker volume ls -q | tr '\n' ' ')" "v1 v2 " "volume ls"
assert_eq "$(docker volume ls -q --filter label=team=a)" "v2" "volume ls --filter label"
assert_eq "$(docker volume inspect -f '{{.Name}} {{.Driver}} {{.Labels}}' v2)" "v2 local map[team:a]" "volume inspect"
expect_fail "Error: No such volume: nosuch" docker volume inspect nosuch
docker run --rm --network none -v v1:/data busybox sh -c 'echo kept > /data/f' || fail "run -v v1:/data"
assert_eq "$(docker run --rm --network none -v v1:/data:ro busybox cat /data/f)" "kept" "the volume's content"
docker run -d --name vu --network none --mount type=volume,source=v2,target=/m busybox sleep 1000 >/dev/null ||
  fail "run --mount type=volume"
assert_eq "$(docker inspect -f '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}' vu)" "volume v2 /m" "mount in inspect"
mkdir -p "$WORK/bind" && echo bound >"$WORK/bind/f"
assert_eq "$(docker run --rm --network none -v "$WORK/bind:/b" busybox cat /b/f)" "bound" "run -v a bind"
expect_fail "volume is in use" docker volume rm v2
docker rm -f vu >/dev/null
out=$(docker volume prune -f) || fail "volume prune: $out"
assert_contains "$out" "Deleted Volumes:" "volume prune removes unused volumes"
assert_eq "$(docker volume ls -q)" "" "no volume left"
docker volume create v3 >/dev/null && docker volume rm v3 >/dev/null || fail "volume rm"
expect_fail "No such volume: v3" docker volume rm v3

# --- networks: two containers reach each other by name and by alias
id=$(docker network create --label team=n n1) || fail "network create"
[[ "$id" =~ ^[0-9a-f]{64}$ ]] || fail "network create prints an id: $id"
docker network create --subnet 10.88.0.0/24 --gateway 10.88.0.1 n2 >/dev/null || fail "network create --subnet"
expect_fail "already exists" docker network create n1
assert_eq "$(docker network ls --filter type=custom --format '{{.Name}} {{.Driver}}' | sort | tr '\n' ' ')" \
  "n1 bridge n2 bridge " "network ls"
assert_eq "$(docker network ls -q --filter label=team=n)" "${id:0:12}" "network ls --filter label"
assert_eq "$(docker network inspect -f '{{.Name}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' n2)" \
  "n2 bridge 10.88.0.0/24 10.88.0.1" "network inspect"
docker run -d --name web --network n1 --network-alias www busybox \
  sh -c 'mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null || fail "run web"
docker run -d --name cli --network n1 busybox sleep 1000 >/dev/null || fail "run cli"
for _ in $(seq 50); do out=$(docker exec cli timeout 5 wget -qO- http://web/ 2>&1) && break; sleep 0.1; done
assert_eq "$out" "hello-web" "cli reaches web by name"
assert_eq "$(docker exec cli timeout 5 wget -qO- http://www/)" "hello-web" "cli reaches web by its alias"
assert_contains "$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}} {{$v.Aliases}}{{end}}' web)" \
  "n1 " "inspect: NetworkSettings.Networks"
assert_contains "$(docker network inspect -f '{{range .Containers}}{{.Name}} {{end}}' n1)" "web" "network inspect: Containers"
docker network connect --alias web2 --ip 10.88.0.50 n2 web || fail "network connect"
docker run -d --name cli2 --network n2 busybox sleep 1000 >/dev/null || fail "run cli2"
for _ in $(seq 50); do out=$(docker exec cli2 timeout 5 wget -qO- http://web2/ 2>&1) && break; sleep 0.1; done
assert_eq "$out" "hello-web" "cli2 reaches web on n2 by its alias"
assert_eq "$(docker exec cli2 timeout 5 wget -qO- http://10.88.0.50/)" "hello-web" "at its --ip"
docker network disconnect n2 web || fail "network disconnect"
expect_fail "" docker exec cli2 timeout 3 wget -qO- http://10.88.0.50/
expect_fail "has active endpoints" docker network rm n2
docker rm -f cli2 >/dev/null
docker network rm n2 >/dev/null || fail "network rm"
expect_fail "No such network: n2" docker network inspect n2
docker rm -f web cli >/dev/null
docker network create n3 >/dev/null
out=$(docker network prune -f) || fail "network prune: $out"
assert_contains "$out" "n1" "network prune: n1"
assert_contains "$out" "n3" "network prune: n3"
assert_eq "$(docker network ls -q --filter type=custom)" "" "no custom network left"

# --- exec -it through a real pty: the terminal, its size, detach keys
docker run -d --name tty1 --network none busybox sleep 1000 >/dev/null || fail "run tty1"
python3 - "$DOCKER" <<'EOF' || fail "exec -it"
import fcntl, os, pty, select, struct, sys, termios, time
docker = sys.argv[1]
def spawn(args, rows=30, cols=100):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(docker, [docker] + args)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return pid, fd
def read_until(fd, want, timeout=20):
    out = b""
    end = time.time() + timeout
    while want not in out:
        left = end - time.time()
        if left <= 0:
            raise SystemExit("timed out waiting for %r, got %r" % (want, out))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    if want not in out:
        raise SystemExit("%r not in %r" % (want, out))
    return out
def wait_exit(pid, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    raise SystemExit("docker exec did not end")
# A command on a terminal of the window's size; its exit code comes back.
# Debian's docker CLI (20.10, API 1.41) sends the size with a resize call
# after the start, as it does to dockerd: a command that asks at once may
# run before it (a CI run saw "stty: standard input" of a 0x0 window), so
# this one waits a moment first.
pid, fd = spawn(["exec", "-it", "tty1", "sh", "-c", "tty; sleep 0.5; stty size; exit 3"])
out = read_until(fd, b"30 100")
assert b"/dev/pts/" in out, out
code = wait_exit(pid)
assert code == 3, code
# An interactive shell: what is typed runs; ctrl-p ctrl-q detaches and the
# shell keeps running in the container.
def prompt(fd):
    # busybox's shell asks the terminal where its cursor is: answer as one.
    out = read_until(fd, b"# ")
    if b"\x1b[6n" in out or b"\x1b[6n" in read_until_quiet(fd):
        os.write(fd, b"\x1b[1;5R")
    time.sleep(0.2)
def read_until_quiet(fd):
    r, _, _ = select.select([fd], [], [], 0.5)
    return os.read(fd, 4096) if r else b""
pid, fd = spawn(["exec", "-it", "tty1", "sh"])
prompt(fd)
os.write(fd, b"echo hi-$((40+2))\r")
read_until(fd, b"hi-42")
os.write(fd, b"\x10\x11")
wait_exit(pid)
# --detach-keys of its own
pid, fd = spawn(["exec", "-it", "--detach-keys", "ctrl-x,y", "tty1", "sh"])
prompt(fd)
os.write(fd, b"echo again-$((1+1))\r")
read_until(fd, b"again-2")
os.write(fd, b"\x18y")
wait_exit(pid)
EOF
assert_eq "$(docker top tty1 -o pid,comm | grep -cE " sh$")" "2" "the detached shells still run"
docker rm -f tty1 >/dev/null

# attach to a -it container: ctrl-p ctrl-q ends the attach, the container runs on
docker run -dit --name tty2 --network none busybox sh >/dev/null || fail "run -dit tty2"
python3 - "$DOCKER" <<'EOF' || fail "attach's detach keys"
import fcntl, os, pty, select, struct, sys, termios, time
docker = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(docker, [docker, "attach", "tty2"])
time.sleep(1)
os.write(fd, b"echo att-$((2+3))\r")
out = b""
end = time.time() + 20
while b"att-5" not in out and time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        out += os.read(fd, 4096)
assert b"att-5" in out, out
os.write(fd, b"\x10\x11")
end = time.time() + 20
while time.time() < end:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.05)
else:
    raise SystemExit("docker attach did not end on ctrl-p ctrl-q")
EOF
assert_eq "$(docker inspect -f '{{.State.Status}}' tty2)" "running" "the container runs on after the detach"
docker rm -f tty2 >/dev/null

# --- docker-py
python3 -c 'import docker' 2>/dev/null || skip "needs python3-docker"
python3 - "$SOCK" <<'EOF' || fail "docker-py"
import sys, io, tarfile, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], version="1.41")
v = c.volumes.create("pyvol", labels={"k": "v"})
assert v.name == "pyvol" and v.attrs["Labels"] == {"k": "v"}, v.attrs
assert [x.name for x in c.volumes.list()] == ["pyvol"]
n = c.networks.create("pynet", driver="bridge", labels={"a": "b"})
assert c.networks.get("pynet").attrs["Labels"] == {"a": "b"}
ct = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="pyc", network="pynet",
                      volumes={"pyvol": {"bind": "/v", "mode": "rw"}})
top = ct.top()
assert "PID" in top["Titles"] and len(top["Processes"]) == 1, top
st = ct.stats(stream=False)
assert st["pids_stats"]["current"] == 1, st
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"from-py"
    ti = tarfile.TarInfo("py.txt"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
assert ct.put_archive("/v", buf.getvalue())
bits, stat = ct.get_archive("/v/py.txt")
assert stat["name"] == "py.txt" and stat["size"] == 7, stat
raw = b"".join(bits)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    assert t.extractfile("py.txt").read() == b"from-py"
ct.pause(); ct.reload(); assert ct.status == "paused"
ct.unpause(); ct.reload(); assert ct.status == "running"
ct.rename("pyc2"); ct.reload(); assert ct.name == "pyc2"
ct.remove(force=True)
n.remove()
c.volumes.get("pyvol").remove()
assert c.containers.prune()["ContainersDeleted"] is None
print("docker-py ok")
EOF
echo "PASS"
