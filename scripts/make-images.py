#!/usr/bin/env python3
"""Build deterministic OCI image layouts offline (Python stdlib only).

Usage: scripts/make-images.py [OUT_DIR]
  OUT_DIR defaults to $DEPPROXY_TEST_DATA or /tmp/depproxy-test/layouts.
  Creates OUT_DIR/<name>/{oci-layout,index.json,blobs/sha256/*}, tag "v1":
    tiny    1 layer, ~1 KB
    layers  16 layers x 256 KiB (random)
    medium  1 layer of $MEDIUM_MB MiB random data (default 50)
    multi   image index: linux/amd64 + linux/arm64, one small layer each
    big     1 layer of $BIG_MB MiB (default 256), only if WITH_BIG=1
    large   1 layer of $LARGE_MB MiB (default 1024), only if WITH_LARGE=1
  Content derives from $SEED (default 1): reruns give identical digests.
  Complete layouts are skipped (delete OUT_DIR/<name> after changing SEED etc.).
  Layers are tar+gzip (level $GZIP_LEVEL, default 1), streamed to disk and
  compressed in parallel 4 MiB chunks by a thread pool (pigz-style: zlib
  releases the GIL; the result is still a single valid gzip member).
"""
import collections, concurrent.futures as cf, hashlib, io, json, os, random
import struct, sys, tarfile, time, zlib

SEED = os.environ.get("SEED", "1")
MIB = 1 << 20
CHUNK = 4 * MIB
LEVEL = int(os.environ.get("GZIP_LEVEL", "1"))  # 0 = stored blocks: ~3x faster for big random layers
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CREATED = "2024-01-01T00:00:00Z"
MTIME = 1704067200


def deflate(data, final):
    c = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


class GzipSink:
    """File-like sink for tarfile: hashes the tar, gzips it in parallel, writes + hashes the blob."""

    def __init__(self, out, pool):
        self.out, self.pool, self.pending, self.buf = out, pool, collections.deque(), bytearray()
        self.tar_sha, self.gz_sha, self.crc, self.size, self.gz_size = hashlib.sha256(), hashlib.sha256(), 0, 0, 0
        self._emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff")  # gzip header, mtime 0

    def _emit(self, b):
        self.out.write(b)
        self.gz_sha.update(b)
        self.gz_size += len(b)

    def _submit(self, final=False):
        self.pending.append(self.pool.submit(deflate, bytes(self.buf), final))
        self.buf.clear()
        while len(self.pending) > (0 if final else 2 * (os.cpu_count() or 1)):
            self._emit(self.pending.popleft().result())

    def write(self, b):
        self.tar_sha.update(b)
        self.crc = zlib.crc32(b, self.crc)
        self.size += len(b)
        self.buf += b
        if len(self.buf) >= CHUNK:
            self._submit()
        return len(b)

    def tell(self):
        return self.size

    def finish(self):
        self._submit(final=True)
        self._emit(struct.pack("<II", self.crc, self.size & 0xFFFFFFFF))


class RandomReader:
    def __init__(self, rng):
        self.rng = rng

    def read(self, n):
        return self.rng.randbytes(n)


def tarinfo(name, size=0, mode=0o644, dir=False):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if dir else tarfile.REGTYPE
    ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = size, (0o755 if dir else mode), MTIME, "root", "root"
    return ti


class Layout:
    def __init__(self, path, pool):
        self.path, self.pool = path, pool
        self.blobs = os.path.join(path, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)

    def put_json(self, obj, media_type):
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def put_layer(self, files, seed):
        """files: list of (name, bytes | int size of random data). Returns (descriptor, diff_id)."""
        rng = random.Random(f"{SEED}:{seed}")
        tmp = os.path.join(self.blobs, ".tmp-layer")
        with open(tmp, "wb") as out:
            sink = GzipSink(out, self.pool)
            with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=MIB) as tar:
                for d in sorted({os.path.dirname(n) for n, _ in files}):
                    tar.addfile(tarinfo(d, dir=True))
                for name, content in files:
                    if isinstance(content, int):
                        tar.addfile(tarinfo(name, content), RandomReader(rng))
                    else:
                        mode = 0o755 if name.startswith("bin/") else 0o644
                        tar.addfile(tarinfo(name, len(content), mode), io.BytesIO(content))
            sink.finish()
        digest = sink.gz_sha.hexdigest()
        os.replace(tmp, os.path.join(self.blobs, digest))
        desc = {"mediaType": MT_LAYER, "digest": "sha256:" + digest, "size": sink.gz_size}
        return desc, "sha256:" + sink.tar_sha.hexdigest()

    def put_image(self, name, layers, arch="amd64"):
        """layers: list of file lists. Returns the manifest descriptor."""
        descs, diff_ids = zip(*(self.put_layer(files, f"{name}:{arch}:{i}") for i, files in enumerate(layers)))
        config = {
            "created": CREATED, "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/bin/sh"], "Labels": {"depproxy.test.image": name}},
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [{"created": CREATED, "created_by": f"make-images.py {name} layer {i}"} for i in range(len(descs))],
        }
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                    "config": self.put_json(config, MT_CONFIG), "layers": list(descs)}
        return self.put_json(manifest, MT_MANIFEST)

    def finish(self, desc):
        desc = dict(desc, annotations={"org.opencontainers.image.ref.name": "v1"})
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        tmp = os.path.join(self.path, "index.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc]}, f, indent=2)
        os.replace(tmp, os.path.join(self.path, "index.json"))  # written last = layout complete


def complete(path):
    """True if index.json exists and every referenced blob exists with the right size."""
    def ok(desc):
        p = os.path.join(path, "blobs", *desc["digest"].split(":"))
        if not os.path.isfile(p) or os.path.getsize(p) != desc["size"]:
            return False
        if desc["mediaType"] in (MT_MANIFEST, MT_INDEX):
            doc = json.load(open(p))
            children = doc.get("manifests", []) + doc.get("layers", []) + ([doc["config"]] if "config" in doc else [])
            return all(ok(c) for c in children)
        return True
    try:
        return all(ok(d) for d in json.load(open(os.path.join(path, "index.json")))["manifests"])
    except (OSError, ValueError, KeyError):
        return False


def random_layer(i, size):
    return [(f"data/blob-{i}.bin", size), (f"etc/layer-{i}.txt", f"layer {i} seed {SEED}\n".encode())]


def build(name, lay):
    if name == "tiny":
        files = [("etc/hello.txt", b"hello from depproxy tiny image\n"),
                 ("bin/hello", b"#!/bin/sh\necho hello\n" + b"# padding\n" * 80), ("data/r.bin", 256)]
        return lay.put_image(name, [files])
    if name == "layers":
        return lay.put_image(name, [random_layer(i, 256 * 1024) for i in range(16)])
    if name == "multi":
        manifests = []
        for arch in ("amd64", "arm64"):
            files = [("etc/arch.txt", arch.encode() + b"\n"), (f"data/{arch}.bin", 4096)]
            d = lay.put_image(name, [files], arch=arch)
            manifests.append(dict(d, platform={"architecture": arch, "os": "linux"}))
        return lay.put_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}, MT_INDEX)
    mb = int(os.environ.get(f"{name.upper()}_MB", {"medium": 50, "big": 256, "large": 1024}[name]))
    return lay.put_image(name, [random_layer(0, mb * MIB)])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DEPPROXY_TEST_DATA", "/tmp/depproxy-test/layouts")
    names = ["tiny", "layers", "medium", "multi"]
    names += ["big"] if os.environ.get("WITH_BIG") == "1" else []
    names += ["large"] if os.environ.get("WITH_LARGE") == "1" else []
    with cf.ThreadPoolExecutor(os.cpu_count()) as pool:
        for name in names:
            path = os.path.join(out, name)
            if complete(path):
                print(f"{name}: exists, skipped ({path})")
                continue
            t = time.monotonic()
            lay = Layout(path, pool)
            desc = build(name, lay)
            lay.finish(desc)
            print(f"{name}: {desc['digest']} in {time.monotonic() - t:.1f}s ({path})", flush=True)


if __name__ == "__main__":
    main()
