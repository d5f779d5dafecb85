# expect 3:1 unterminated heredoc EOF
FROM a
RUN <<EOF
echo never ends
