# expect 3:1 SHELL requires the arguments to be in JSON form
FROM a
SHELL /bin/bash -c
