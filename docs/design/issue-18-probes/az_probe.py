import concurrent.futures
from azure.storage.blob import BlobServiceClient
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core import MatchConditions
KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CS=f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:50702/devstoreaccount1;"
svc = BlobServiceClient.from_connection_string(CS)
c = svc.get_container_client("repo")
try: c.create_container()
except ResourceExistsError: pass
def t(name, f):
    try: print(name, "OK", f())
    except HttpResponseError as e: print(name, "ERR", e.status_code, getattr(e, "error_code", None))
b = c.get_blob_client("locks/gc.lock")
try: b.delete_blob()
except Exception: pass
t("create-if-absent 1", lambda: b.upload_blob(b"1", overwrite=False)["etag"])
t("create-if-absent 2", lambda: b.upload_blob(b"2", overwrite=False)["etag"])
et = b.get_blob_properties().etag
t("if-match right", lambda: b.set_blob_metadata({"a":"1"}, etag=et, match_condition=MatchConditions.IfNotModified)["etag"])
t("if-match stale", lambda: b.set_blob_metadata({"a":"2"}, etag=et, match_condition=MatchConditions.IfNotModified)["etag"])
t("range", lambda: b.download_blob(offset=0, length=1).readall())
for i in range(12): c.upload_blob(f"packs/{i:03}", b"", overwrite=True)
pages = c.list_blobs(name_starts_with="packs/", results_per_page=5).by_page()
print("pages", [len(list(p)) for p in pages])
bad = BlobServiceClient.from_connection_string(CS.replace(KEY, "AAAA"+KEY[4:]))
t("wrong key", lambda: len(list(bad.get_container_client("repo").list_blobs())))
t("missing container", lambda: len(list(svc.get_container_client("nosuch").list_blobs())))
t("immutability policy", lambda: c.get_blob_client("packs/000").set_immutability_policy(__import__("azure.storage.blob", fromlist=["ImmutabilityPolicy"]).ImmutabilityPolicy(expiry_time=__import__("datetime").datetime.now(__import__("datetime").timezone.utc)+__import__("datetime").timedelta(days=1), policy_mode="Unlocked")))
t("legal hold", lambda: c.get_blob_client("packs/000").set_legal_hold(True))
def race(i):
    x = BlobServiceClient.from_connection_string(CS).get_container_client("repo").get_blob_client("locks/race")
    try: x.upload_blob(str(i).encode(), overwrite=False); return 1
    except HttpResponseError: return 0
for r in range(3):
    try: c.get_blob_client("locks/race").delete_blob()
    except Exception: pass
    with concurrent.futures.ThreadPoolExecutor(16) as ex: print("race winners", sum(ex.map(race, range(16))))
