# expect 3:9 WORKDIR: cannot expand path "${DIR:?set DIR}": DIR: set DIR
FROM a
WORKDIR ${DIR:?set DIR}
