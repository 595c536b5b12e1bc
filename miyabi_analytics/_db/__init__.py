"""Internal database layer: engines, column types, tables, statements and migrations."""
