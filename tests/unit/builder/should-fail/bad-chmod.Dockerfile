# expect 3:1 invalid --chmod "rwx"
FROM a
COPY --chmod=rwx x /y
