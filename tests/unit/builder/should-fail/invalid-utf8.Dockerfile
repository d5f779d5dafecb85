# expect 3:10 invalid UTF-8
FROM a
RUN echo â(¡
