# expect 5:1 circular dependency detected on stage
FROM a AS one
COPY --from=two /x /x
FROM b AS two
COPY --from=one /y /y
