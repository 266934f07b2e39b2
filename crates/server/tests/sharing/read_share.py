"""Reads shared tables with the Delta Sharing client (`delta-sharing` from PyPI), as an
application of another organisation would.

    python read_share.py PROFILE [share.schema.table ...]

Prints one JSON object: `tables`, every table the profile's token may list, and for each
table named, the rows pandas loaded: their count, the columns, and the values of the
first column, sorted.
"""

import json
import sys

import delta_sharing


def main(profile, names):
    client = delta_sharing.SharingClient(profile)
    out = {
        "tables": sorted(f"{t.share}.{t.schema}.{t.name}" for t in client.list_all_tables())
    }
    for name in names:
        frame = delta_sharing.load_as_pandas(f"{profile}#{name}")
        first = frame.columns[0]
        out[name] = {
            "rows": len(frame),
            "columns": list(frame.columns),
            "first": sorted("" if v is None else str(v) for v in frame[first].tolist()),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
