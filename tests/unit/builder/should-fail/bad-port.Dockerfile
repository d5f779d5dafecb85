# expect 3:1 EXPOSE: invalid port "http"
FROM a
EXPOSE http
