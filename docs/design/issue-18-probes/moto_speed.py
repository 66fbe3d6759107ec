import boto3, os, time, concurrent.futures
E="http://127.0.0.1:50701"
mk=lambda: boto3.client("s3", endpoint_url=E, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
s3=mk(); s3.create_bucket(Bucket="speedbkt")
data=os.urandom(8<<20)
def put(i):
    c=mk(); c.put_object(Bucket="speedbkt", Key=f"packs/{i}", Body=data)
for w in (1,4):
    t=time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(w) as ex: list(ex.map(put, range(24)))
    dt=time.perf_counter()-t; print(f"PUT 24x8MiB workers={w}: {24*8/dt:.0f} MiB/s")
def get(i):
    c=mk(); c.get_object(Bucket="speedbkt", Key=f"packs/{i}")["Body"].read()
for w in (1,4):
    t=time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(w) as ex: list(ex.map(get, range(24)))
    dt=time.perf_counter()-t; print(f"GET 24x8MiB workers={w}: {24*8/dt:.0f} MiB/s")
t=time.perf_counter()
for i in range(200): s3.get_object(Bucket="speedbkt", Key="packs/1", Range=f"bytes={i*40000}-{i*40000+39999}")["Body"].read()
print(f"ranged GET 40KB: {(time.perf_counter()-t)/200*1000:.1f} ms/request")
