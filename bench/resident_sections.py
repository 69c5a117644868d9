#!/usr/bin/env python3
"""Which parts of the Trellis binary an idle server keeps resident (a diagnostic for idle RSS).

    python3 bench/resident_sections.py [BINARY]   # default: the release binary

Starts the binary alone (loopback, temporary database, as bench/run.py does), waits until it
answers and then 2 s more, and reads `/proc/<pid>/pagemap` (needs root) to map every resident
page of the binary's file mappings to its ELF section. Prints MiB resident per section: code
outside `.text.hot` is what the layout of `bench/code-order.txt` (build.rs) did not gather.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "trellis-target"))


def sections(binary: str) -> list[tuple[str, int, int]]:
    out = []
    for line in subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 6 and f[0].startswith("[") and f[1].startswith("."):
            try:
                out.append((f[1], int(f[3], 16), int(f[5], 16)))
            except ValueError:
                pass
    return out


def main() -> None:
    binary = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else TARGET / "release" / "trellis")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="trellis-resident-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
        env.update(TRELLIS_SERVER_NAME="localhost", TRELLIS_LISTEN__CLIENT=f"127.0.0.1:{port}",
                   TRELLIS_DATABASE__PATH=f"{tmp}/db", TRELLIS_RATE_LIMITS__ENABLED="false",
                   TRELLIS_LOGGING__LEVEL="warn", TRELLIS_PRESENCE__ENABLED="false")
        proc = subprocess.Popen([binary], env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_matrix/client/versions", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            time.sleep(2)
            secs = sections(binary)
            base, maps = None, []
            for line in open(f"/proc/{proc.pid}/maps"):
                parts = line.split()
                if len(parts) >= 6 and parts[5] == binary:
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    if base is None:
                        base = lo - int(parts[2], 16)
                    maps.append((lo, hi))
            resident: dict[str, int] = {}
            with open(f"/proc/{proc.pid}/pagemap", "rb") as pm:
                for lo, hi in maps:
                    for addr in range(lo, hi, 4096):
                        pm.seek(addr // 4096 * 8)
                        if struct.unpack("Q", pm.read(8))[0] >> 63:
                            va = addr - base
                            name = next((n for n, s, z in secs if s <= va < s + z), "(no section)")
                            resident[name] = resident.get(name, 0) + 4096
            status = {l.split(":")[0]: l.split(":")[1].strip() for l in open(f"/proc/{proc.pid}/status") if ":" in l}
        finally:
            proc.kill()
            proc.wait()
    print(f"VmRSS {status.get('VmRSS')}, RssAnon {status.get('RssAnon')}, RssFile {status.get('RssFile')}")
    for name, size in sorted(resident.items(), key=lambda x: -x[1]):
        if size >= 16384:
            print(f"{size / 2**20:7.2f} MiB  {name}")


if __name__ == "__main__":
    main()
