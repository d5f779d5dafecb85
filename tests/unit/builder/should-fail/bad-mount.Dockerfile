# expect 3:1 unsupported mount type "nfs"
FROM a
RUN --mount=type=nfs,target=/x make
