# expect 3:1 not a JSON array of strings
FROM a
CMD ["a", ["b"]]
