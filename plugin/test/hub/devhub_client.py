"""Drives the real Python huggingface_hub against the local development Hub (plugin/src/hub/dev-hub).

Called by plugin/test/dev-hub-python.test.ts with one JSON argument; prints one JSON line. The endpoint,
token, cache and offline mode come from the environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE,
HF_HUB_OFFLINE), as a user would set them.
"""

import hashlib
import json
import os
import sys

import huggingface_hub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_under(folder):
    out = {}
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, folder).replace(os.sep, "/")] = sha256_of(full)
    return out


def main():
    args = json.loads(sys.argv[1])
    op = args["op"]
    result = {"version": huggingface_hub.__version__}
    if op == "download":
        kwargs = {"revision": args["revision"]} if args.get("revision") else {}
        if args.get("local_files_only"):
            kwargs["local_files_only"] = True
        snap = snapshot_download(args["repo_id"], **kwargs)
        result["snapshot"] = snap
        result["files"] = files_under(snap)
        one = hf_hub_download(args["repo_id"], args["file"], **kwargs)
        result["file_path"] = one
        result["file_sha256"] = sha256_of(one)
        result["file_realpath"] = os.path.realpath(one)
    elif op == "upload":
        api = HfApi()
        result["whoami"] = api.whoami()["name"]
        api.create_repo(args["repo_id"], exist_ok=True)
        api.create_repo(args["repo_id"], exist_ok=True)  # 409 → exists, no error
        info = api.upload_folder(repo_id=args["repo_id"], folder_path=args["folder"], commit_message="from python")
        result["commit"] = info.oid
        result["tree"] = sorted(
            [f.path, f.lfs.sha256 if f.lfs else None] for f in api.list_repo_tree(args["repo_id"], recursive=True) if hasattr(f, "size")
        )
        result["paths_info"] = [p.path for p in api.get_paths_info(args["repo_id"], ["model.safetensors", "sub"])]
        result["refs"] = [b.name for b in api.list_repo_refs(args["repo_id"]).branches]
        result["commits"] = [c.title for c in api.list_repo_commits(args["repo_id"])]
    else:
        raise SystemExit(f"unknown op {op}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
