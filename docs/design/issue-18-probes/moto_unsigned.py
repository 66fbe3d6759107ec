import boto3, json, datetime
from botocore.exceptions import ClientError
E="http://127.0.0.1:50703"
iam = boto3.client("iam", endpoint_url=E, aws_access_key_id="boot", aws_secret_access_key="boot", region_name="us-east-1")
iam.create_user(UserName="sendense")
iam.put_user_policy(UserName="sendense", PolicyName="all", PolicyDocument=json.dumps({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}))
k = iam.create_access_key(UserName="sendense")["AccessKey"]
s3 = boto3.client("s3", endpoint_url=E, aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"], region_name="us-east-1")
s3.create_bucket(Bucket="authlock", ObjectLockEnabledForBucket=True)
until = (datetime.datetime.now(datetime.timezone.utc)+datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
def add(request, **kw):
    request.headers["x-amz-object-lock-mode"] = "COMPLIANCE"
    request.headers["x-amz-object-lock-retain-until-date"] = until
s3.meta.events.register("before-send.s3.PutObject", add)
try:
    r = s3.put_object(Bucket="authlock", Key="u", Body=b"1"); print("unsigned lock headers PUT: OK", r["VersionId"])
    s3.meta.events.unregister("before-send.s3.PutObject", add)
    print("head:", {a: b for a, b in s3.head_object(Bucket="authlock", Key="u").items() if "ObjectLock" in a})
except ClientError as e:
    print("unsigned lock headers PUT: ERR", e.response["Error"]["Code"])
