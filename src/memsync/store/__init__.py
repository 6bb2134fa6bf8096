"""The encrypted SQLite store, its schema and the operation log."""
