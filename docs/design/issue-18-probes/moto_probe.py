import boto3, datetime, botocore
from botocore.exceptions import ClientError
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:50701", aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
def t(name, f):
    try:
        r = f(); print(f"{name}: OK", {k: v for k, v in (r or {}).items() if k not in ("ResponseMetadata","Body")} if isinstance(r, dict) else r)
    except ClientError as e:
        print(f"{name}: ERR {e.response['Error'].get('Code')} {e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error'].get('Message','')[:100]}")
s3.create_bucket(Bucket="lockbkt", ObjectLockEnabledForBucket=True)
s3.create_bucket(Bucket="plainbkt")
t("get lock cfg lk", lambda: s3.get_object_lock_configuration(Bucket="lockbkt"))
t("get lock cfg plain", lambda: s3.get_object_lock_configuration(Bucket="plainbkt"))
t("versioning lk", lambda: s3.get_bucket_versioning(Bucket="lockbkt"))
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
r = s3.put_object(Bucket="lockbkt", Key="packs/a", Body=b"x"*10, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
vid = r.get("VersionId"); print("put locked vid", vid)
t("head locked", lambda: s3.head_object(Bucket="lockbkt", Key="packs/a"))
t("delete w/ versionId (compliance)", lambda: s3.delete_object(Bucket="lockbkt", Key="packs/a", VersionId=vid))
t("delete w/ versionId + bypass (compliance)", lambda: s3.delete_object(Bucket="lockbkt", Key="packs/a", VersionId=vid, BypassGovernanceRetention=True))
t("delete no versionId", lambda: s3.delete_object(Bucket="lockbkt", Key="packs/a"))
t("get after marker", lambda: s3.get_object(Bucket="lockbkt", Key="packs/a"))
t("versions", lambda: {"v":[(v["Key"],v["IsLatest"]) for v in s3.list_object_versions(Bucket="lockbkt").get("Versions",[])], "m":[(m["Key"]) for m in s3.list_object_versions(Bucket="lockbkt").get("DeleteMarkers",[])]})
t("bulk delete versionId (compliance)", lambda: s3.delete_objects(Bucket="lockbkt", Delete={"Objects":[{"Key":"packs/a","VersionId":vid}]}))
t("versions after bulk", lambda: [(v["Key"],v["VersionId"]) for v in s3.list_object_versions(Bucket="lockbkt").get("Versions",[])])
r = s3.put_object(Bucket="lockbkt", Key="packs/g", Body=b"y", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until); gv = r["VersionId"]
t("delete governance w/o bypass", lambda: s3.delete_object(Bucket="lockbkt", Key="packs/g", VersionId=gv))
t("delete governance with bypass", lambda: s3.delete_object(Bucket="lockbkt", Key="packs/g", VersionId=gv, BypassGovernanceRetention=True))
r = s3.put_object(Bucket="lockbkt", Key="packs/c", Body=b"z"); cv = r["VersionId"]
t("put retention after put", lambda: s3.put_object_retention(Bucket="lockbkt", Key="packs/c", VersionId=cv, Retention={"Mode":"COMPLIANCE","RetainUntilDate":until}))
t("get retention", lambda: s3.get_object_retention(Bucket="lockbkt", Key="packs/c", VersionId=cv))
t("delete after put_retention", lambda: s3.delete_object(Bucket="lockbkt", Key="packs/c", VersionId=cv))
t("shorten compliance", lambda: s3.put_object_retention(Bucket="lockbkt", Key="packs/c", VersionId=cv, Retention={"Mode":"COMPLIANCE","RetainUntilDate":until - datetime.timedelta(hours=12)}))
t("extend compliance", lambda: s3.put_object_retention(Bucket="lockbkt", Key="packs/c", VersionId=cv, Retention={"Mode":"COMPLIANCE","RetainUntilDate":until + datetime.timedelta(days=2)}))
t("lock headers on plain bucket", lambda: s3.put_object(Bucket="plainbkt", Key="x", Body=b"1", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until))
# default retention
t("put lock cfg default", lambda: s3.put_object_lock_configuration(Bucket="lockbkt", ObjectLockConfiguration={"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Days":1}}}))
r = s3.put_object(Bucket="lockbkt", Key="packs/d", Body=b"d"); dv = r["VersionId"]
t("head default-retained", lambda: {k: r2 for k, r2 in s3.head_object(Bucket="lockbkt", Key="packs/d").items() if "ObjectLock" in k})
t("delete default-retained", lambda: s3.delete_object(Bucket="lockbkt", Key="packs/d", VersionId=dv))
# conditional writes
def cond(bucket, key):
    def f():
        def add(request, **kw): request.headers["If-None-Match"] = "*"
        ev = s3.meta.events
        ev.register("before-sign.s3.PutObject", add)
        try:
            return s3.put_object(Bucket=bucket, Key=key, Body=b"c")
        finally:
            ev.unregister("before-sign.s3.PutObject", add)
    return f
t("IfNoneMatch first (plain)", lambda: s3.put_object(Bucket="plainbkt", Key="locks/gc.lock", Body=b"1", IfNoneMatch="*"))
t("IfNoneMatch second (plain)", lambda: s3.put_object(Bucket="plainbkt", Key="locks/gc.lock", Body=b"2", IfNoneMatch="*"))
t("IfNoneMatch second (lk versioned)", lambda: (s3.put_object(Bucket="lockbkt", Key="locks/gc.lock", Body=b"1", IfNoneMatch="*"), s3.put_object(Bucket="lockbkt", Key="locks/gc.lock", Body=b"2", IfNoneMatch="*")))
h = s3.head_object(Bucket="plainbkt", Key="locks/gc.lock"); et = h["ETag"]
t("IfMatch right etag", lambda: s3.put_object(Bucket="plainbkt", Key="locks/gc.lock", Body=b"3", IfMatch=et))
t("IfMatch stale etag", lambda: s3.put_object(Bucket="plainbkt", Key="locks/gc.lock", Body=b"4", IfMatch=et))
t("range get", lambda: s3.get_object(Bucket="plainbkt", Key="locks/gc.lock", Range="bytes=0-0")["ContentRange"])
# after delete marker, IfNoneMatch?
s3.delete_object(Bucket="plainbkt", Key="locks/gc.lock")
t("IfNoneMatch after delete", lambda: s3.put_object(Bucket="plainbkt", Key="locks/gc.lock", Body=b"5", IfNoneMatch="*"))
