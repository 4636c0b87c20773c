"""A GOCACHEPROG helper in standard-library Python: the other candidate, for the measurement only.

It does what gotune's Go helper does for the local tier (Go's own cache layout in
$GOCACHE: ``<xx>/<action>-a`` entries, ``<xx>/<output>-d`` outputs), without the site:
enough to compare what go pays for a Python helper's start-up and round trips with
what it pays for the Go one (bench/buildcache.py, ``helper_language``). gotune ships
the Go helper; this file is not installed anywhere.

    GOCACHEPROG="python3 -S -I bench/cacheprog_py.py" go build ./...
"""

import base64
import hashlib
import json
import os
import sys
import tempfile
import time

ENTRY = "v1 %s %s %20d %20d\n"
ENTRY_SIZE = 175


def main():
    root = os.environ.get("GOCACHE") or os.path.expanduser("~/.cache/go-build")
    out = sys.stdout
    out.write('{"ID":0,"KnownCommands":["get","put","close"]}\n')
    out.flush()
    stdin = sys.stdin
    while True:
        line = stdin.readline()
        if not line:
            return
        if not line.strip():  # go writes a blank line after each request
            continue
        req = json.loads(line)
        rid, cmd = req["ID"], req.get("Command")
        if cmd == "close":
            out.write(json.dumps({"ID": rid}) + "\n")
            out.flush()
            return
        if cmd == "get":
            res = get(root, bytes(base64.b64decode(req["ActionID"])).hex())
        else:
            body = b""
            if req.get("BodySize"):
                text = stdin.readline()
                while not text.strip():
                    text = stdin.readline()
                body = base64.b64decode(json.loads(text))
            res = put(root, base64.b64decode(req["ActionID"]).hex(),
                      base64.b64decode(req["OutputID"]).hex(), body)
        res["ID"] = rid
        out.write(json.dumps(res) + "\n")
        out.flush()


def get(root, action):
    try:
        with open(os.path.join(root, action[:2], action + "-a"), "rb") as fh:
            entry = fh.read(ENTRY_SIZE + 1)
        if len(entry) != ENTRY_SIZE:
            return {"Miss": True}
        _, eid, output, size, nanos = entry.decode().split()
        path = os.path.join(root, output[:2], output + "-d")
        if eid != action or os.stat(path).st_size != int(size):
            return {"Miss": True}
    except (OSError, ValueError):
        return {"Miss": True}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(nanos) / 1e9))
    return {"OutputID": base64.b64encode(bytes.fromhex(output)).decode(), "Size": int(size),
            "Time": stamp, "DiskPath": path}


def put(root, action, output, body):
    if hashlib.sha256(body).hexdigest() != output:
        return {"Err": "body does not match its OutputID"}
    path = os.path.join(root, output[:2], output + "-d")
    write(path, body)
    write(os.path.join(root, action[:2], action + "-a"),
          (ENTRY % (action, output, len(body), time.time_ns())).encode())
    return {"DiskPath": path}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".py-tmp-", dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


main()
