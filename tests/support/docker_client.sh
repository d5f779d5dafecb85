# Sourced by the e2e tests that drive a server with Debian's docker CLI
# (after lib.sh). need_docker_client skips unless /usr/bin/docker is the
# docker.io 20.10 client (API 1.41; /usr/local/bin may hold another one),
# then sets DOCKER, an empty client config of the test's own (no user
# config, no credential helpers) and `docker`, the client with a timeout.
need_docker_client() {
  DOCKER=/usr/bin/docker
  [ -x "$DOCKER" ] || skip "needs Debian's docker CLI (apt-get install docker.io)"
  "$DOCKER" --version | grep -q 'Docker version 20\.10' || skip "needs docker.io 20.10's client"
  export DOCKER_CONFIG=$WORK/docker-config
  mkdir -p "$DOCKER_CONFIG"
}
docker() { timeout 120 "$DOCKER" "$@"; }
