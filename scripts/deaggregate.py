"""Deaggregate Kinesis records with the official KPL deaggregator (aws-kinesis-agg).

Reads JSON lines {"data": <base64>, "partitionKey": ...} (as scripts/kinesalite.mjs read prints
them) and prints one JSON line per user record: {"data": <base64>, "partitionKey": ...,
"aggregated": true|false}. The package comes from the git-ignored .tools/python (make tools).
"""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".tools", "python"))
from aws_kinesis_agg.deaggregator import deaggregate_records  # noqa: E402

records = []
for line in sys.stdin:
    if line.strip():
        r = json.loads(line)
        # The shape of a record in a Lambda Kinesis event, which the deaggregator expects.
        records.append({
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["partitionKey"],
                "sequenceNumber": r.get("sequenceNumber", "0"),
                "approximateArrivalTimestamp": 0,
                "data": r["data"],
            },
        })
for user in deaggregate_records(records):
    k = user["kinesis"]
    data = k["data"]
    if isinstance(data, bytes):
        data = data.decode()
    print(json.dumps({"data": data, "partitionKey": k["partitionKey"],
                      "aggregated": bool(k.get("aggregated", False))}))
