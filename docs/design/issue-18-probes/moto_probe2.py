import boto3, datetime, time, concurrent.futures
from botocore.config import Config
from botocore.exceptions import ClientError
E="http://127.0.0.1:50701"
s3 = boto3.client("s3", endpoint_url=E, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
def t(name, f):
    try:
        r = f(); print(f"{name}: OK", {k: v for k, v in (r or {}).items() if k not in ("ResponseMetadata","Body")} if isinstance(r, dict) else r)
    except ClientError as e:
        print(f"{name}: ERR {e.response['Error'].get('Code')} {e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error'].get('Message','')[:100]}")
s3.create_bucket(Bucket="deflock", ObjectLockEnabledForBucket=True)
t("default retention on empty bucket", lambda: s3.put_object_lock_configuration(Bucket="deflock", ObjectLockConfiguration={"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Days":1}}}))
r = s3.put_object(Bucket="deflock", Key="p", Body=b"d"); dv = r["VersionId"]
t("head default", lambda: {k: v for k, v in s3.head_object(Bucket="deflock", Key="p").items() if "ObjectLock" in k})
t("delete default-retained vid", lambda: s3.delete_object(Bucket="deflock", Key="p", VersionId=dv))
t("get cfg", lambda: s3.get_object_lock_configuration(Bucket="deflock"))
# expiry
s3.create_bucket(Bucket="expbkt", ObjectLockEnabledForBucket=True)
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
r = s3.put_object(Bucket="expbkt", Key="e", Body=b"e", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until); ev = r["VersionId"]
t("delete before expiry", lambda: s3.delete_object(Bucket="expbkt", Key="e", VersionId=ev))
time.sleep(4)
t("delete after expiry", lambda: s3.delete_object(Bucket="expbkt", Key="e", VersionId=ev))
# no checksum on lock PUT
s3nc = boto3.client("s3", endpoint_url=E, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1", config=Config(request_checksum_calculation="when_required"))
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
t("lock PUT without checksum/MD5", lambda: s3nc.put_object(Bucket="expbkt", Key="n", Body=b"n", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until))
# wrong credentials
bad = boto3.client("s3", endpoint_url=E, aws_access_key_id="other", aws_secret_access_key="wrong", region_name="us-east-1")
t("wrong creds list", lambda: {"n": len(bad.list_objects_v2(Bucket="expbkt").get("Contents", []))})
t("missing bucket", lambda: s3.list_objects_v2(Bucket="nosuchbkt"))
# pagination
s3.create_bucket(Bucket="pagebkt")
for i in range(25): s3.put_object(Bucket="pagebkt", Key=f"packs/{i:03}", Body=b"")
r1 = s3.list_objects_v2(Bucket="pagebkt", Prefix="packs/", MaxKeys=10)
print("page1", r1["KeyCount"], r1["IsTruncated"], "token" if r1.get("NextContinuationToken") else None)
r2 = s3.list_objects_v2(Bucket="pagebkt", Prefix="packs/", MaxKeys=10, ContinuationToken=r1["NextContinuationToken"])
print("page2", r2["KeyCount"], r2["IsTruncated"])
r3 = s3.list_objects_v2(Bucket="pagebkt", Prefix="packs/", StartAfter="packs/020")
print("start-after", [o["Key"] for o in r3["Contents"]])
# race on If-None-Match
def try_put(i):
    c = boto3.client("s3", endpoint_url=E, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    try:
        c.put_object(Bucket="pagebkt", Key="locks/gc.lock", Body=str(i).encode(), IfNoneMatch="*"); return 1
    except ClientError as e:
        return 0
for round in range(5):
    try: s3.delete_object(Bucket="pagebkt", Key="locks/gc.lock")
    except ClientError: pass
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        print("race winners", sum(ex.map(try_put, range(16))))
