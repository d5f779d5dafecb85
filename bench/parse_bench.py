#!/usr/bin/env python3
"""Generates Dockerfiles and times strata parse (and buildah's parser); see parse.sh."""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

strata, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
sizes = [int(s) for s in sys.argv[4].split()]

HEREDOC = "EO" + "F"  # keeps shell heredocs that embed this file intact
UNIT = r'''FROM ${{BASE}} AS s{i}
ARG VERSION
ARG USER_ID=1000
ENV APP_HOME=/opt/app PATH=/opt/app/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    APP_VERSION=${{VERSION:-0.0.0}} BUILD_ID=s{i}-${{VERSION%%.*}}
LABEL org.opencontainers.image.version="${{APP_VERSION}}" \
      org.opencontainers.image.title="stage {i}" \
      description="a fairly long description of stage {i} that keeps ${{APP_HOME}} in it"
WORKDIR ${{APP_HOME}}/work/{i}
COPY --chown=${{USER_ID}}:${{USER_ID}} --chmod=0644 src/{i}/ ${{APP_HOME}}/src/
# Install and build; comments inside continuations are skipped.
RUN --mount=type=cache,target=/root/.cache/{i},sharing=locked \
    set -eux; \
    apt-get update \
# a comment inside the command
    && apt-get install -y --no-install-recommends ca-certificates curl pkg-{i} \
    && make -C "${{APP_HOME}}" VERSION="${{VERSION}}" -j"$(nproc)" \
    && rm -rf /var/lib/apt/lists/*
COPY --from={prev} ${{APP_HOME}}/bin/ ${{APP_HOME}}/bin/
COPY <<{H} ${{APP_HOME}}/etc/stage-{i}.conf
name=stage-{i}
version=${{APP_VERSION}}
{H}
EXPOSE 80{d} 443/tcp
USER ${{USER_ID}}:${{USER_ID}}
HEALTHCHECK --interval=30s --timeout=3s CMD ["curl", "-fsS", "http://localhost/"]
CMD ["/opt/app/bin/server", "--port", "80{d}"]

'''


def generate(units):
    parts = ["# syntax=docker/dockerfile:1\nARG BASE=debian:12\nARG VERSION=1.2.3\n"]
    for i in range(units):
        prev = "s%d" % (i - 1) if i else "busybox"
        parts.append(UNIT.format(i=i, prev=prev, d=i % 10, H=HEREDOC))
    return "".join(parts)


def timed(cmd, ok_codes=(0,)):
    """Median wall and median CPU (user+sys of the child) seconds over `runs` runs."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode not in ok_codes:
            sys.exit("command failed (%d): %s\n%s" %
                     (r.returncode, " ".join(cmd), r.stderr.decode()[-500:]))
        walls.append(dt)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


base_units = 250
buildah = shutil.which("buildah")
rows = []
for s in sizes:
    text = generate(base_units * s)
    path = os.path.join(work, "Dockerfile.%dx" % s)
    with open(path, "w") as f:
        f.write(text)
    broken = path + ".broken"
    with open(broken, "w") as f:
        f.write(text + "ENV BROKEN\n")
    mb = len(text.encode()) / 1e6
    t_plan = timed([strata, "parse", path, "--build-arg", "VERSION=2.0.1"])
    t_dump = timed([strata, "parse", "--dump", path])
    t_sp = timed([strata, "parse", "--dump", broken], ok_codes=(1,))
    t_bp = None
    if buildah:
        t_bp = timed([buildah, "build", "--network", "none", "-f", broken, work], ok_codes=(1, 125))
    rows.append((s, mb, t_plan, t_dump, t_sp, t_bp))
    print("done %dx" % s, file=sys.stderr)

print("Median of %d runs; wall seconds, then CPU seconds (user+sys) in parentheses;" % runs)
print("MB/s from CPU time (the machine is shared, wall time is noisier).\n")
print("| size | MB | plan wall (cpu) | plan MB/s | dump wall (cpu) | dump MB/s |"
      " parse-only strata wall (cpu) | buildah wall (cpu) | buildah/strata cpu |")
print("|---|---|---|---|---|---|---|---|---|")
for s, mb, tp, td, ts, tb in rows:
    peer = ("| %.3f (%.3f) | %.1fx |" % (tb[0], tb[1], tb[1] / ts[1])) if tb else "| n/a | n/a |"
    print("| %dx | %.2f | %.3f (%.3f) | %.1f | %.3f (%.3f) | %.1f | %.3f (%.3f) %s" %
          (s, mb, tp[0], tp[1], mb / tp[1], td[0], td[1], mb / td[1], ts[0], ts[1], peer))
if len(rows) > 1:
    first, last = rows[0], rows[-1]
    scale = last[1] / first[1]
    print("\nCPU cost growth %dx -> %dx for %.0fx the bytes: plan %.1fx, dump %.1fx, "
          "buildah %s (linear = %.0fx)" %
          (first[0], last[0], scale, last[2][1] / first[2][1], last[3][1] / first[3][1],
           ("%.1fx" % (last[5][1] / first[5][1])) if last[5] else "n/a", scale))
