# expect 3:1 unknown instruction: FORM (did you mean FROM?)
FROM a
FORM b
