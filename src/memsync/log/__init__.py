"""The operation log: per-device signed, hash-chained feeds (`oplog`) and the check that
proves the state is a function of them (`verify`)."""
