# expect 3:6 unknown flag: --form (did you mean --from?)
FROM a
COPY --form=b x /y
