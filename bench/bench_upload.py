"""Benchmark: the chunked uploader vs a minimal raw httpx loop, over loopback to the simulator.

    python bench/bench_upload.py [--size-gib 2] [--plan PLAN.xlsx]

The simulator runs in its own process (python -m mocks serve), so the peak RSS printed is the
uploader's process alone. The file is sparse: it costs no disk. Prints throughput of both,
their ratio (target >= 0.9) and the uploader's peak RSS (target < 150 MB).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def start_simulator(plan: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "mocks", "serve", "--plan", str(plan), "--time-scale", "0.001"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("control:"):
            return proc, line.split()[1].removesuffix("/_sim")
    raise RuntimeError("the simulator did not start")


def deployed_cluster(plan_path: Path, control_url: str):
    """Deploy through the suite's own clients; return a logged-in fisheye client and the address map."""
    from clients.addressing import AddressMap
    from clients.base import TlsMode
    from clients.deployment import DeploymentClient
    from clients.fisheye import FisheyeClient
    from clients.payloads import deploy_payload
    from mocks.remote import RemoteSimulator
    from plan.parse import load

    plan, _ = load(plan_path)
    remote = RemoteSimulator(control_url)
    amap = AddressMap(True, remote.address_map, alive=remote.is_alive)
    tls = TlsMode(True, remote.ca_bundle)
    hosts = {str(h.mgmt_ip): DeploymentClient(str(h.mgmt_ip), amap=amap, tls=tls) for h in plan.hosts}
    first = hosts[str(plan.hosts[0].mgmt_ip)]
    first.deploy(deploy_payload(plan, {ip: c.scan_host() for ip, c in hosts.items()}))
    while not first.deploy_verify().get("is_deployed"):
        time.sleep(0.2)
    fe = FisheyeClient(str(plan.hosts[0].mgmt_ip), username="root", password=plan.cluster_admin_password,
                       amap=amap, tls=tls)
    fe.setup_root(plan.cluster_admin_password)
    fe.login()
    return fe, amap, tls


def raw_loop(fe, path: Path) -> float:
    """The same chunks pushed by the simplest possible httpx loop (no retries, no streaming slices)."""
    import httpx

    from clients.addressing import GuardedTransport

    vol = fe.svt_create_volume(path.name + ".raw", path.stat().st_size)
    size, chunk = path.stat().st_size, int(vol["chunk_size"])
    http = httpx.Client(transport=GuardedTransport(fe.amap, httpx.HTTPTransport(verify=fe.tls.shared_verify)),
                        headers={"x-smartx-token": fe.token}, timeout=300)
    url = f"https://{fe.address}/api/v2/svt_image/upload_template"
    start = time.perf_counter()
    with open(path, "rb") as fh:
        for num in range(-(-size // chunk)):
            data = fh.read(chunk)
            r = http.post(url, params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": num,
                                       "image_uuid": vol["image_uuid"]}, files={"file": (path.name, data)})
            r.raise_for_status()
    http.close()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gib", type=float, default=2.0)
    ap.add_argument("--plan", type=Path)
    ap.add_argument("--rounds", type=int, default=2, help="alternate ours/raw this many times; best of each")
    args = ap.parse_args()
    from clients.fisheye import SvtUpload
    from clients.upload import upload_file
    from plan.example import write_example

    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    plan = args.plan or write_example(tmp / "plan.xlsx")
    size = int(args.size_gib * 1024 ** 3)
    iso = tmp / "SMTX_VMTOOLS-9.9.9-bench.iso"
    with open(iso, "wb") as fh:
        fh.truncate(size)  # sparse
    proc, control = start_simulator(plan)
    try:
        fe, _amap, _tls = deployed_cluster(plan, control)
        rss_before = peak_rss_mb()
        ours_times, raw_times = [], []
        for n in range(args.rounds):  # alternate the order so neither side gets a warm-up advantage
            if n % 2:
                raw_times.append(raw_loop(fe, iso))
            result = upload_file(iso, SvtUpload(fe))
            ours_times.append(result.seconds)
            if n == 0:
                rss_after = peak_rss_mb()  # before any raw pass: the raw loop holds whole chunks
            if not n % 2:
                raw_times.append(raw_loop(fe, iso))
        ours_s, raw = min(ours_times), min(raw_times)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.unlink(iso)
    ours_mbs = size / 1e6 / ours_s
    raw_mbs = size / 1e6 / raw
    print(f"file:                 {size / 1024 ** 3:.2f} GiB sparse, {result.chunks_sent} chunks")
    print(f"uploader (ours):      {ours_s:8.2f} s  {ours_mbs:8.1f} MB/s   (best of {len(ours_times)})")
    print(f"raw httpx loop:       {raw:8.2f} s  {raw_mbs:8.1f} MB/s   (best of {len(raw_times)})")
    print(f"ratio ours / raw:     {ours_mbs / raw_mbs:8.3f}  (target >= 0.9)")
    if rss_after is not None:
        print(f"uploader peak RSS:    {rss_after:.0f} MB (process before uploading: {rss_before:.0f} MB; "
              f"target < 150 MB)")
    else:
        print("peak RSS: not measurable on this platform")


if __name__ == "__main__":
    main()
