# escape=/
# expect 1:1 invalid escape token
FROM a
