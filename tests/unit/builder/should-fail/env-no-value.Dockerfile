# expect 3:1 ENV must have two arguments
FROM a
ENV PATH
