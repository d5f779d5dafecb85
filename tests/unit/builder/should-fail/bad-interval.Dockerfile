# expect 3:1 HEALTHCHECK --interval: missing unit
FROM a
HEALTHCHECK --interval=10 CMD true
