"""study: declarative studies of many DST runs (specs, fan-out, results, queries) and the CLI."""
