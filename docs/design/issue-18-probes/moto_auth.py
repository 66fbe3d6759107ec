import boto3, json
from botocore.exceptions import ClientError
E="http://127.0.0.1:50703"
iam = boto3.client("iam", endpoint_url=E, aws_access_key_id="boot", aws_secret_access_key="boot", region_name="us-east-1")
iam.create_user(UserName="sendense")
iam.put_user_policy(UserName="sendense", PolicyName="all", PolicyDocument=json.dumps({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}))
k = iam.create_access_key(UserName="sendense")["AccessKey"]
good = boto3.client("s3", endpoint_url=E, aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"], region_name="us-east-1")
badsecret = boto3.client("s3", endpoint_url=E, aws_access_key_id=k["AccessKeyId"], aws_secret_access_key="wrong", region_name="us-east-1")
unknown = boto3.client("s3", endpoint_url=E, aws_access_key_id="AKIAUNKNOWN", aws_secret_access_key="x", region_name="us-east-1")
def t(n, f):
    try: f(); print(n, "OK")
    except ClientError as e: print(n, "ERR", e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
t("good create bucket", lambda: good.create_bucket(Bucket="authbkt"))
t("good put", lambda: good.put_object(Bucket="authbkt", Key="a", Body=b"1"))
t("bad secret put", lambda: badsecret.put_object(Bucket="authbkt", Key="b", Body=b"1"))
t("unknown key list", lambda: unknown.list_objects_v2(Bucket="authbkt"))
