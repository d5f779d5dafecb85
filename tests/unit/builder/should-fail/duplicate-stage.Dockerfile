# expect 3:1 duplicate stage name "x"
FROM a AS x
FROM b AS x
