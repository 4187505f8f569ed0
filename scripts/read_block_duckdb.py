#!/usr/bin/env python3
"""Reads a Strata block with DuckDB alone (no Strata code), using the SQL recipe of
docs/block-format.md, and prints one line per sample: labels as JSON, the timestamp in
milliseconds and the float64 value's bit pattern in hex. The end-to-end tests compare this
with Strata's own reader, to keep the block format open for real."""
import json
import struct
import sys

import duckdb

QUERY = """
WITH x AS (
  SELECT series_id, scrape, value_int_delta, value_float,
         SUM(value_int_delta) OVER (PARTITION BY series_id ORDER BY scrape) AS value_int
  FROM 'samples.parquet'
)
SELECT s.* EXCLUDE (ts_group, scale, num_samples, min_time, max_time),
       t.timestamp,
       CASE WHEN x.value_int_delta IS NULL THEN x.value_float
            ELSE CAST(x.value_int AS DOUBLE) / power(10, s.scale) END AS value
FROM x
JOIN 'series.parquet' s USING (series_id)
JOIN 'timestamps.parquet' t ON t.ts_group = s.ts_group AND t.scrape = x.scrape
ORDER BY series_id, timestamp
"""


def main(block_dir: str) -> None:
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{block_dir}'")
    cursor = con.execute(QUERY)
    names = [d[0] for d in cursor.description]
    for row in cursor.fetchall():
        record = dict(zip(names, row))
        labels = {
            # Columns of labels that collide with structural names carry a '~' prefix.
            (k[1:] if k.startswith("~") else k): v
            for k, v in record.items()
            if k not in ("series_id", "timestamp", "value") and v is not None
        }
        bits = struct.unpack("<Q", struct.pack("<d", record["value"]))[0]
        print(json.dumps([labels, record["timestamp"], f"{bits:016x}"], sort_keys=True, separators=(",", ":")))


if __name__ == "__main__":
    main(sys.argv[1])
