#!/usr/bin/env bash
# strata serve on TCP with TLS client verification (dockerd's --tlsverify)
# and on sockets systemd passes (fd://): Debian's docker CLI with
# DOCKER_TLS_VERIFY and docker-py with a TLSConfig run containers through
# TLS, attach streams included; clients without a certificate, with one
# another CA signed, or speaking plain HTTP are refused in the handshake;
# TCP without TLS, half-given TLS flags and unusable certificate files are
# refused at the start; systemd-socket-activate hands strata serve a unix
# and a TCP socket. Runs in a network namespace of its own (own_netns.sh).
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/../support/docker_client.sh"
need_docker_client
need curl
need openssl
need systemd-socket-activate systemd
strata bootstrap busybox >/dev/null || fail "bootstrap"

# --- certificates: a CA, the server's (127.0.0.1 and localhost), a client's
# the CA signed, and a client's another CA signed.
C=$WORK/certs
mkdir -p "$C/client" "$C/rogue"
mkcert() { # NAME CA_PREFIX EXTENSIONS
  openssl req -new -newkey rsa:2048 -nodes -keyout "$C/$1-key.pem" -subj "/CN=$1" -out "$C/$1.csr" 2>/dev/null &&
    openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.pem" -CAkey "$C/$2-key.pem" -CAcreateserial \
      -days 2 -extfile <(printf '%s\n' "$3") -out "$C/$1.pem" 2>/dev/null
}
for ca in ca rogue-ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$C/$ca-key.pem" -subj "/CN=$ca" -days 2 \
    -out "$C/$ca.pem" 2>/dev/null || fail "openssl: the CA $ca"
done
mkcert server ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth" || fail "openssl: the server's certificate"
mkcert client ca "extendedKeyUsage=clientAuth" || fail "openssl: the client's certificate"
mkcert rogue rogue-ca "extendedKeyUsage=clientAuth" || fail "openssl: the rogue certificate"
cp "$C/ca.pem" "$C/client/ca.pem"
cp "$C/client.pem" "$C/client/cert.pem"
cp "$C/client-key.pem" "$C/client/key.pem"
cp "$C/ca.pem" "$C/rogue/ca.pem"
cp "$C/rogue.pem" "$C/rogue/cert.pem"
cp "$C/rogue-key.pem" "$C/rogue/key.pem"
TLS=(--tlsverify --tlscacert "$C/ca.pem" --tlscert "$C/server.pem" --tlskey "$C/server-key.pem")

# --- refused at the start
expect_fail "only with TLS client verification" strata serve -H tcp://127.0.0.1:2376
expect_fail "are used with --tlsverify" strata serve -H tcp://127.0.0.1:2376 --tlscert "$C/server.pem"
expect_fail "$C/nokey.pem" strata serve -H tcp://127.0.0.1:2376 --tlsverify --tlscacert "$C/ca.pem" \
  --tlscert "$C/server.pem" --tlskey "$C/nokey.pem"
expect_fail "does not match the certificate" strata serve -H tcp://127.0.0.1:2376 --tlsverify \
  --tlscacert "$C/ca.pem" --tlscert "$C/server.pem" --tlskey "$C/client-key.pem"
expect_fail "not a PEM certificate" strata serve -H tcp://127.0.0.1:2376 --tlsverify \
  --tlscacert "$C/ca.pem" --tlscert "$C/server.csr" --tlskey "$C/server-key.pem"
expect_fail "no sockets were passed by systemd" strata serve -H fd://

# --- TCP with TLS beside a unix socket
start_strata_serve "$WORK/s.sock" -H tcp://127.0.0.1:2376 "${TLS[@]}"
for _ in $(seq 1 100); do grep -q "tcp://127.0.0.1:2376" "$WORK/serve.log" && break; sleep 0.05; done
assert_contains "$(cat "$WORK/serve.log")" "API listen on tcp://127.0.0.1:2376 (TLS, client certificates verified)" "the log names the TLS listener"

export DOCKER_HOST=tcp://127.0.0.1:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$C/client
assert_eq "$(docker version --format '{{.Server.APIVersion}}')" "1.41" "docker version over TLS"
assert_eq "$(docker run --rm --network none busybox echo over-tls)" "over-tls" "docker run over TLS"
big=$(head -c 300000 /dev/zero | tr '\0' x)
got=$(printf '%s' "$big" | docker run -i --rm --network none busybox wc -c)
assert_eq "$(echo $got)" "300000" "docker run -i streams 300 kB through TLS both ways"
docker run -d --name tls1 --network none busybox sh -c 'echo started; sleep 1000' >/dev/null || fail "run -d over TLS"
assert_eq "$(docker exec tls1 sh -c 'echo $((6*7))')" "42" "docker exec over TLS"
assert_eq "$(docker ps --format '{{.Names}}')" "tls1" "docker ps over TLS"
assert_eq "$(docker logs tls1)" "started" "docker logs over TLS"
docker rm -f tls1 >/dev/null || fail "rm -f over TLS"
# The same server answers the unix socket without TLS.
assert_eq "$(DOCKER_HOST=unix://$WORK/s.sock DOCKER_TLS_VERIFY= docker version --format '{{.Server.APIVersion}}')" \
  "1.41" "the unix socket beside it"

# --- refused clients
# Several times: the server must let the client read its alert (not reset
# the connection under the request a TLS 1.3 client sends at once).
for i in 1 2 3 4 5 6 7 8; do
  out=$(DOCKER_CERT_PATH=$C/rogue docker version --format '{{.Server.APIVersion}}' 2>&1) &&
    fail "a client certificate of another CA was accepted: $out"
  assert_contains "$out" "tls: " "docker reports the refused handshake (attempt $i)"
done
out=$(curl -sS --cacert "$C/ca.pem" https://127.0.0.1:2376/_ping 2>&1) && fail "a client without a certificate was accepted: $out"
out=$(curl -sS --max-time 10 http://127.0.0.1:2376/_ping 2>&1) && fail "plain HTTP was answered: $out"
assert_eq "$(curl -sS --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client-key.pem" https://127.0.0.1:2376/_ping)" \
  "OK" "curl with the client certificate"
assert_eq "$(curl -sS --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client-key.pem" https://localhost:2376/_ping)" \
  "OK" "the server certificate's DNS name"
out=$(curl -sS --tls-max 1.1 --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client-key.pem" https://127.0.0.1:2376/_ping 2>&1) &&
  fail "TLS 1.1 was accepted: $out"
assert_contains "$(cat "$WORK/serve.log")" "TLS handshake with 127.0.0.1:" "the log names refused handshakes"

# --- docker-py with a TLSConfig
if python3 -c 'import docker' 2>/dev/null; then
  # requests prefers REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE to the CA docker-py gives it
  out=$(C=$C timeout 120 env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE python3 - <<'PY' 2>&1
import os, docker
c = os.environ["C"]
tls = docker.tls.TLSConfig(client_cert=(c + "/client.pem", c + "/client-key.pem"),
                           ca_cert=c + "/ca.pem", verify=True)
client = docker.DockerClient(base_url="tcp://127.0.0.1:2376", tls=tls)
assert client.ping()
print(client.containers.run("busybox", "echo py-tls", remove=True, network_mode="none").decode().strip())
try:
    docker.DockerClient(base_url="tcp://127.0.0.1:2376",
                        tls=docker.tls.TLSConfig(ca_cert=c + "/ca.pem", verify=True)).ping()
    print("accepted without a certificate")
except Exception:
    print("refused without a certificate")
PY
  )
  assert_eq "$out" "py-tls
refused without a certificate" "docker-py over TLS"
else
  fail "python3-docker is not installed (scripts/install-deps.sh --test installs it)"
fi
stop_strata_serve

# --- socket activation: systemd-socket-activate binds, strata serve takes
# the sockets on the first connection (LISTEN_FDS), as a .socket unit does.
unset DOCKER_TLS_VERIFY DOCKER_CERT_PATH
systemd-socket-activate -l "$WORK/act.sock" -l 127.0.0.1:2377 \
  "$STRATA" --root "$STRATA_ROOT" serve -H fd:// "${TLS[@]}" 2>"$WORK/act.log" &
ACT_PID=$!
stop_act() { kill -TERM "$ACT_PID" 2>/dev/null; wait "$ACT_PID" 2>/dev/null; }
on_exit stop_act
for _ in $(seq 1 100); do [ -S "$WORK/act.sock" ] && break; sleep 0.05; done
assert_eq "$(DOCKER_HOST=unix://$WORK/act.sock docker version --format '{{.Server.APIVersion}}')" "1.41" "a socket systemd passed (unix)"
assert_eq "$(DOCKER_HOST=tcp://127.0.0.1:2377 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$C/client docker run --rm --network none busybox echo activated)" \
  "activated" "a socket systemd passed (TCP, TLS)"
assert_contains "$(cat "$WORK/act.log")" "API listen on unix://$WORK/act.sock from systemd" "the log names systemd's unix socket"
assert_contains "$(cat "$WORK/act.log")" "API listen on tcp://127.0.0.1:2377 (TLS, client certificates verified) from systemd" "the log names systemd's TCP socket"
stop_act

# A TCP socket from systemd without TLS is refused, not served in the clear.
systemd-socket-activate -l 127.0.0.1:2378 "$STRATA" --root "$STRATA_ROOT" serve -H fd:// 2>"$WORK/act2.log" &
ACT_PID=$!
for _ in $(seq 1 100); do grep -q "Listening on" "$WORK/act2.log" && break; sleep 0.05; done
out=$(curl -sS --max-time 10 http://127.0.0.1:2378/_ping 2>&1) && fail "a TCP socket from systemd was served without TLS: $out"
for _ in $(seq 1 100); do grep -q "only with TLS client verification" "$WORK/act2.log" && break; sleep 0.05; done
assert_contains "$(cat "$WORK/act2.log")" "only with TLS client verification" "fd:// TCP without TLS is refused"
stop_act
echo "PASS"
