# expect 2:1 RUN before the first FROM
RUN echo
FROM a
