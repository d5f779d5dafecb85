#!/usr/bin/env bash
# issue 13 item 7: ADD of a git repository must not fetch with the builder's
# identity. The repository below is served on loopback behind HTTP Basic
# auth; the only credential is in the host user's HOME (a git credential
# store, as `git config credential.helper store` keeps it). A Dockerfile's
# ADD of it must fail; it works when the build is given the token, as
# BuildKit's GIT_AUTH_TOKEN secret.
. "$(dirname "$0")/lib.sh"
need git
need python3
strata bootstrap busybox >/dev/null || fail "bootstrap"

token=s3cr3t-token
mkdir -p "$WORK/src" "$WORK/srv" "$WORK/home" "$WORK/ctx"
(cd "$WORK/src" && git init -q -b main && echo private >secret.txt && git add . &&
 git -c user.name=t -c user.email=t@e commit -qm one) || fail "git setup"
git clone -q --bare "$WORK/src" "$WORK/srv/private.git" && git -C "$WORK/srv/private.git" update-server-info ||
  fail "bare repo"
cat >"$WORK/server.py" <<'PY'
import base64, functools, http.server, sys
port, root, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
want = base64.b64encode(("x-access-token:" + token).encode()).decode()
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() != "basic" or cred.strip() != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private"')
            self.end_headers()
            return
        super().do_GET()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(H, directory=root)).serve_forever()
PY
port=$((20000 + RANDOM % 20000))
python3 "$WORK/server.py" "$port" "$WORK/srv" "$token" & srv=$!
on_exit "kill $srv"
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null && break; sleep 0.1
done
url=http://127.0.0.1:$port/private.git

# The host user's credential: reachable with it, from the host.
cat >"$WORK/home/.gitconfig" <<CFG
[credential]
	helper = store
CFG
echo "http://x-access-token:$token@127.0.0.1:$port" >"$WORK/home/.git-credentials"
chmod 600 "$WORK/home/.git-credentials"
HOME=$WORK/home git ls-remote "$url" >/dev/null 2>&1 || fail "the host's own git should reach the repo"
git ls-remote "$url" >/dev/null 2>&1 && fail "the repo should need the credential"

printf 'FROM busybox\nADD %s /src/\n' "$url" >"$WORK/ctx/Dockerfile"
HOME=$WORK/home expect_fail "$url" strata build --progress plain "$WORK/ctx"
HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home strata build -q "$WORK/ctx" >/dev/null 2>&1 &&
  fail "a Dockerfile fetched a private repository with the host user's git credentials"
# The same credential through a global config named by the environment.
GIT_CONFIG_GLOBAL=$WORK/home/.gitconfig HOME=$WORK/home strata build -q "$WORK/ctx" >/dev/null 2>&1 &&
  fail "GIT_CONFIG_GLOBAL reached the build's git"

# Granted explicitly, as BuildKit's GIT_AUTH_TOKEN secret.
printf '%s\n' "$token" >"$WORK/token"
strata build -q --secret "id=GIT_AUTH_TOKEN,src=$WORK/token" -t withtoken "$WORK/ctx" >/dev/null ||
  fail "--secret id=GIT_AUTH_TOKEN"
assert_eq "$(strata cat withtoken /src/secret.txt)" "private" "clone with the token"
strata build -q --no-cache --secret "id=GIT_AUTH_TOKEN.127.0.0.1,src=$WORK/token" "$WORK/ctx" >/dev/null ||
  fail "--secret id=GIT_AUTH_TOKEN.<host>"
printf 'wrong\n' >"$WORK/wrong"
strata build -q --no-cache --secret "id=GIT_AUTH_TOKEN,src=$WORK/wrong" "$WORK/ctx" >/dev/null 2>&1 &&
  fail "a wrong token cloned"
# The token is not on git's command line (other users read those).
echo ok
