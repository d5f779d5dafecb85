#!/usr/bin/env bash
# The same script of docker CLI commands against strata serve and against a
# real dockerd started here (its own data root, socket and network
# namespace, no bridge, no iptables); the outputs must be the same, IDs
# aside. Skips when dockerd is not installed or cannot start (or run a
# container) on this machine.
. "$(dirname "$0")/own_netns.sh"
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/../support/api_pair.sh"
api_pair_start

# The script (run and normalize: tests/support/api_pair.sh).
script() {
  run images --format '{{.Repository}} {{.Tag}} {{.ID}}'
  run image inspect -f '{{.Id}} {{.RepoTags}} {{.Os}} {{.Architecture}} {{json .Config.Cmd}}' busybox
  run history --format '{{.CreatedBy}}' busybox
  run tag busybox example.com/team/box:v1
  run images --format '{{.Repository}}:{{.Tag}}' --filter reference='example.com/*/*'
  run rmi example.com/team/box:v1
  run rmi nosuch
  run image inspect nosuch
  run tag nosuch other
  run history nosuch
  run create --name c1 --network none busybox sh -c 'echo out; echo err >&2; exit 3'
  run ps -a --format '{{.Names}} {{.Image}} {{.Command}} {{.State}} {{.Status}}'
  run start c1
  run wait c1
  run logs c1
  run ps -a --format '{{.Names}} {{.State}}'
  run inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Config.Image}} {{json .Config.Cmd}} {{.HostConfig.NetworkMode}} {{.State.Running}}' c1
  run kill c1
  run stop c1
  run rm c1
  run run -d --name c2 --network none busybox sleep 1000
  run ps --format '{{.Names}} {{.State}}'
  run exec c2 sh -c 'echo out; echo err >&2; exit 6'
  echo piped | run exec -i c2 cat
  run exec -u 1000 -w /tmp -e FOO=bar c2 sh -c 'echo $(id -u) $(pwd) $FOO'
  run rm c2
  run rmi busybox
  run stop -t 1 c2
  run wait c2
  run rm c2
  run run --rm --network none busybox echo hi
  run run --name c3 --network none busybox sh -c 'echo out; exit 5'
  run start -a c3
  run rm c3
  echo piped | run run -i --rm --network none busybox cat
  run run -d --name c4 --network none busybox sh -c 'sleep 2; echo late; exit 4'
  run attach c4
  run attach c4
  run rm c4
  run create -m 1m busybox true
  run create --cpus 1000 busybox true
  run start nosuch
  run stop nosuch
  run rm nosuch
  run logs nosuch
  run wait nosuch
  run inspect nosuch
}
api_pair_compare script
echo "PASS"
