"""A local Amazon Data Firehose for the tests: moto's server (an independent implementation of
the AWS APIs, PyPI `moto`) with DirectPut delivery streams into one S3 bucket, where moto writes
each PutRecordBatch as one object holding the records' bytes joined.

    moto-firehose.py serve STREAM [STREAM...]  prints "listening on 127.0.0.1:PORT", then serves
                                                 one request at a time (moto's shards are not
                                                 thread-safe) until killed
    moto-firehose.py read PORT                  prints every object in the bucket, oldest key
                                                 first, as one base64 line each

Needs moto[server] and boto3 on PYTHONPATH (make tools puts them in .tools/moto).
"""

import base64
import sys
import threading

import boto3

BUCKET = "kinesis-output-firehose"
REGION = "us-east-1"
KEYS = {"aws_access_key_id": "AKIDMOTO", "aws_secret_access_key": "moto-secret-value"}


def client(service, port):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
        **KEYS,
    )


def serve(streams):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=False)
    port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client("s3", port).create_bucket(Bucket=BUCKET)
    firehose = client("firehose", port)
    for stream in streams:
        firehose.create_delivery_stream(
            DeliveryStreamName=stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{BUCKET}",
                "Prefix": f"{stream}/",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
            },
        )
    print(f"listening on 127.0.0.1:{port}", flush=True)
    thread.join()


def read(port):
    s3 = client("s3", port)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    for key in sorted(keys):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        print(base64.b64encode(body).decode())


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "read":
        read(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
