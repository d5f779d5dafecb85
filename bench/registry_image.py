#!/usr/bin/env python3
"""Writes an OCI image layout (which is also a strata store) holding one image
of LAYERS gzip-compressed tar layers with SIZE_MB MiB of incompressible data
in total, named NAME (org.opencontainers.image.ref.name). Deterministic: the
same arguments give the same bytes.

  registry_image.py DIR NAME [LAYERS] [SIZE_MB]
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

out, name = sys.argv[1], sys.argv[2]
layers = int(sys.argv[3]) if len(sys.argv) > 3 else 5
size_mb = int(sys.argv[4]) if len(sys.argv) > 4 else 250
os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)


def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d


rng = random.Random(42)
descs, diff_ids = [], []
per_layer = size_mb * 1024 * 1024 // layers
for i in range(layers):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for j in range(4):
            data = rng.randbytes(per_layer // 4)
            info = tarfile.TarInfo(f"layer{i}/file{j}.bin")
            info.size = len(data)
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    tar = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    gz = gzip.compress(tar, compresslevel=1, mtime=0)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": put(gz), "size": len(gz)})
config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                     "config": {"Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids},
                     "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"}
                                 for i in range(layers)]},
                    separators=(",", ":")).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": put(config), "size": len(config)},
                       "layers": descs}, separators=(",", ":")).encode()
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": put(manifest), "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": name}}]}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
print(sum(d["size"] for d in descs))
