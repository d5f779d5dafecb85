# W3: multi-stage. Stage 1 produces an artifact; stage 2 takes only that
# artifact with COPY --from. (Adapted from ../shared/peers W3: both stages on
# the busybox base, since no Debian base image is built offline here.)
FROM localhost/busybox-base:latest AS build
RUN mkdir -p /out && seq 1 200000 | sed 's/$/ lorem ipsum dolor sit amet/' > /out/gen.txt \
 && dd if=/dev/zero bs=1M count=16 2>/dev/null | tr '\0' 'x' > /out/blob \
 && tar -C /out -cf - gen.txt blob | gzip -6 > /artifact.tar.gz
FROM localhost/busybox-base:latest
COPY --from=build /artifact.tar.gz /opt/artifact.tar.gz
RUN tar -tzf /opt/artifact.tar.gz > /opt/manifest.txt
