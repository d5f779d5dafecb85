# syntax=docker/dockerfile:1
ARG BASE=debian:12
ARG VERSION=1.0
FROM ${BASE} AS build
ARG VERSION
ENV APP=/src GOFLAGS="-trimpath -v"
WORKDIR $APP
COPY --chown=1000:1000 --chmod=0755 go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache,id=gocache \
    --mount=type=bind,from=tools,source=/bin,target=/t \
    go build -o /out/app-${VERSION} .
COPY <<EOF /etc/app.conf
version=${VERSION}
EOF
ONBUILD RUN echo child of build

FROM alpine AS tools
RUN echo tools

FROM scratch AS unused
COPY --from=build /out /

FROM build AS release
LABEL org.opencontainers.image.version=$VERSION "a b"=c
EXPOSE 80/tcp 443
HEALTHCHECK --interval=30s --timeout=3s CMD curl -f http://localhost/ || exit 1
CMD ["/out/app"]
