"""The tests' S3 administration on a moto server, with boto3 (run by the
moto venv's python, SENDENSE_MOTO_PYTHON; see object_servers.rs).

Usage: moto_admin.py ENDPOINT COMMAND [ARGS...]; credentials in the
environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) except for
`bootstrap`. Prints one JSON object on stdout; an S3 error is
{"error": CODE, "status": HTTP_STATUS} with exit status 0 (the caller
decides), anything else fails the script.

  bootstrap                         the server's first requests, which moto
                                    lets through unsigned (INITIAL_NO_AUTH_ACTION_COUNT=3):
                                    an IAM user allowed s3:*, and its access key
                                    -> {"access_key_id", "secret_access_key"}
  create-bucket NAME LOCK           LOCK = 1: with Object Lock (versioning on)
  object-lock NAME                  -> {"enabled": bool} from GetObjectLockConfiguration
  list-buckets                      -> {"buckets": [names]}
  versions BUCKET KEY               -> {"versions": [{"version_id", "is_latest", "delete_marker"}]}
  put BUCKET KEY RETAIN_SECONDS      a small object; RETAIN_SECONDS > 0: under
                                    COMPLIANCE retention that long -> {"version_id"}
  delete-version BUCKET KEY VERSION -> {} or the S3 error (Object Lock: AccessDenied)
  all-versions BUCKET               -> {"versions": [{"key", "version_id", "is_latest", "delete_marker"}]}
                                    every version and delete marker in the bucket (all pages)
  retention BUCKET KEY VERSION      -> {"mode", "until"} from HeadObject (null when none)
  delete-all BUCKET                 a plain DELETE (no VersionId) of every key, as an
                                    attacker with the credentials would -> {"deleted": n}
"""
import datetime
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BOOTSTRAP_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


def client(service, endpoint, **creds):
    # No retries: one call is one request, so the bootstrap uses exactly the
    # three free requests and a refused request is reported as it came.
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}), **creds)


def main(endpoint, command, *args):
    if command == "bootstrap":
        iam = client("iam", endpoint, aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="sendense-tests")
        iam.put_user_policy(UserName="sendense-tests", PolicyName="s3-all",
                            PolicyDocument=json.dumps(BOOTSTRAP_POLICY))
        key = iam.create_access_key(UserName="sendense-tests")["AccessKey"]
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    s3 = client("s3", endpoint)
    if command == "create-bucket":
        name, lock = args
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock == "1")
        return {}
    if command == "object-lock":
        (name,) = args
        try:
            conf = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "ObjectLockConfigurationNotFoundError":
                return {"enabled": False}
            raise
        return {"enabled": conf.get("ObjectLockEnabled") == "Enabled"}
    if command == "list-buckets":
        return {"buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]]}
    if command == "versions":
        bucket, key = args
        listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
        found = [{"version_id": v["VersionId"], "is_latest": v["IsLatest"], "delete_marker": False}
                 for v in listed.get("Versions", []) if v["Key"] == key]
        found += [{"version_id": v["VersionId"], "is_latest": v["IsLatest"], "delete_marker": True}
                  for v in listed.get("DeleteMarkers", []) if v["Key"] == key]
        return {"versions": found}
    if command == "put":
        bucket, key, retain = args
        lock = {}
        if int(retain) > 0:
            until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(retain))
            lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
        put = s3.put_object(Bucket=bucket, Key=key, Body=b"put by moto_admin.py", **lock)
        return {"version_id": put.get("VersionId")}
    if command == "delete-version":
        bucket, key, version = args
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        return {}
    if command == "all-versions":
        (bucket,) = args
        found = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            found += [{"key": v["Key"], "version_id": v["VersionId"], "is_latest": v["IsLatest"], "delete_marker": False}
                      for v in page.get("Versions", [])]
            found += [{"key": v["Key"], "version_id": v["VersionId"], "is_latest": v["IsLatest"], "delete_marker": True}
                      for v in page.get("DeleteMarkers", [])]
        return {"versions": found}
    if command == "retention":
        bucket, key, version = args
        head = s3.head_object(Bucket=bucket, Key=key, VersionId=version)
        until = head.get("ObjectLockRetainUntilDate")
        return {"mode": head.get("ObjectLockMode"), "until": until.isoformat() if until else None}
    if command == "delete-all":
        (bucket,) = args
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys += [o["Key"] for o in page.get("Contents", [])]
        for key in keys:
            s3.delete_object(Bucket=bucket, Key=key)
        return {"deleted": len(keys)}
    raise SystemExit(f"moto_admin.py: unknown command {command!r}")


if __name__ == "__main__":
    try:
        result = main(*sys.argv[1:])
    except ClientError as e:
        result = {"error": e.response["Error"]["Code"],
                  "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                  "message": e.response["Error"].get("Message", "")}
    print(json.dumps(result))
