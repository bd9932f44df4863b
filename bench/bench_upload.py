"""Benchmark: the chunked uploader vs a minimal raw httpx loop, over loopback to the simulator.

    python bench/bench_upload.py [--size-gib 2] [--plan PLAN.xlsx] [--protocol all|svt|obs|backup|elf]

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


def start_simulator(plan: Path, *preset: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "mocks", "serve", "--plan", str(plan), "--time-scale", "0.001",
                             *preset], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


# --- the OBS protocol (stage 07a): OVM operator chunked uploads, no index, cumulative offset ------------------------
def obs_tower(plan_path: Path, control_url: str):
    """A CloudTower client on a simulator at ``cloudtower-ready`` (the GraphQL login's cookie is what OVM needs)."""
    from clients.addressing import AddressMap
    from clients.base import TlsMode
    from clients.cloudtower import CloudTowerClient
    from mocks.remote import RemoteSimulator
    from plan.parse import load

    plan, _ = load(plan_path)
    remote = RemoteSimulator(control_url)
    ct = CloudTowerClient(str(plan.cloudtower.ip), amap=AddressMap(True, remote.address_map, alive=remote.is_alive),
                          tls=TlsMode(True, remote.ca_bundle))
    ct.login()
    return ct


def obs_raw_loop(ct, path: Path) -> float:
    """The OBS chunks pushed by the simplest httpx loop: init, then each 4 MiB read whole and posted (no checks)."""
    import httpx

    from clients.addressing import GuardedTransport
    from clients.obs import CHUNK, OVM_V1, OvmApi
    from clients.cloudtower import OVM_BASIC

    upload_id = OvmApi(ct).init(path.name + ".raw")["id"]
    headers = {"Authorization": OVM_BASIC, "Cookie": f"connect.sid={ct.sessions['ovm'].value}"}
    http = httpx.Client(transport=GuardedTransport(ct.amap, httpx.HTTPTransport(verify=ct.tls.shared_verify)),
                        headers=headers, timeout=300)
    start = time.perf_counter()
    with open(path, "rb") as fh:
        while data := fh.read(CHUNK):
            http.post(f"https://{ct.address}{OVM_V1}", files={"file": (path.name, data), "id": (None, upload_id)}
                      ).raise_for_status()
    http.close()
    return time.perf_counter() - start


def alternate(rounds: int, ours, raw) -> tuple[list[float], list[float], object, float | None]:
    """``rounds`` passes of ``ours()`` (a result with ``.seconds``) and ``raw()`` (seconds), the order alternating so
    neither side gets a warm-up advantage: (ours' times, raw times, ours' last result, peak RSS after ours' first pass,
    taken before any raw pass: the raw loop holds whole chunks)."""
    ours_times, raw_times, result, rss_after = [], [], None, None
    for n in range(rounds):
        if n % 2:
            raw_times.append(raw())
        result = ours()
        ours_times.append(result.seconds)
        if n == 0:
            rss_after = peak_rss_mb()
        if not n % 2:
            raw_times.append(raw())
    return ours_times, raw_times, result, rss_after


def bench_tower(plan: Path, path: Path, rounds: int, ours, raw, *, cookie: bool = False,
                preset: str = "cloudtower-ready"):
    """:func:`alternate` ``ours(ct)`` and ``raw(ct, path)`` on a logged-in CloudTower client of a simulator at
    ``preset`` (``cookie``: its GraphQL cookie session logged in too), the simulator stopped after."""
    proc, control = start_simulator(plan, "--preset", preset)
    try:
        ct = obs_tower(plan, control)
        if cookie:
            ct.sessions["cookie"].login()
        timed = alternate(rounds, lambda: ours(ct), lambda: raw(ct, path))
        ct.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return timed


def report(name: str, label: str, detail: str, size: int, ours_times: list[float], raw_times: list[float],
           rss_after: float | None) -> None:
    """The best time and throughput of ours and of the raw loop, their ratio and the peak RSS after ours."""
    head = f"{name} {label}: "
    ours_mbs, raw_mbs = size / 1e6 / min(ours_times), size / 1e6 / min(raw_times)
    print(f"{head}{min(ours_times):8.2f} s  {ours_mbs:8.1f} MB/s   ({detail}best of {len(ours_times)})")
    print(f"{name + ' raw httpx loop:':<{len(head)}}{min(raw_times):8.2f} s  {raw_mbs:8.1f} MB/s   "
          f"(best of {len(raw_times)})")
    print(f"{name + ' ratio ours / raw:':<{len(head)}}{ours_mbs / raw_mbs:8.3f}  (target >= 0.9)")
    if rss_after is not None:
        print(f"peak RSS after the {name} upload: {rss_after:.0f} MB (target < 150 MB)")


def bench_obs(plan: Path, path: Path, rounds: int) -> None:
    from clients.obs import ObsUpload, OvmApi

    ours_times, raw_times, result, rss_after = bench_tower(
        plan, path, rounds, lambda ct: ObsUpload(OvmApi(ct), path).run(record=lambda **_: None), obs_raw_loop)
    report("OBS", "(OVM, offset-checked)", f"{result.chunks} chunks, ", path.stat().st_size, ours_times, raw_times,
           rss_after)


# --- the backup protocol (stage 07b): GraphQL multipart request spec, 1-based chunks, the server's chunk size -------
def raw_backup_loop(ct, path: Path) -> float:
    """The same backup chunks by the simplest httpx loop: each chunk read whole into memory, no retries, no checks."""
    import json

    import httpx

    from clients.addressing import GuardedTransport
    from clients.backup import Q_UPLOAD_CHUNK, BackupUpload

    size = path.stat().st_size
    vol = BackupUpload(ct).create(path.name, size)
    chunk = int(vol["chunk_size"])
    http = httpx.Client(transport=GuardedTransport(ct.amap, httpx.HTTPTransport(verify=ct.tls.shared_verify)),
                        headers={"Cookie": f"connect.sid={ct.sessions['cookie'].value}"}, timeout=300)
    start = time.perf_counter()
    with open(path, "rb") as fh:
        for k in range(1, -(-size // chunk) + 1):
            ops = {"operationName": "uploadCloudTowerApplicationPackage", "query": Q_UPLOAD_CHUNK,
                   "variables": {"data": {"upload_task_id": vol["image_uuid"], "file": None, "current_chunk": k}}}
            r = http.post(f"https://{ct.address}/api", files={
                "operations": (None, json.dumps(ops)), "map": (None, '{"1":["variables.data.file"]}'),
                "1": (path.name, fh.read(chunk), "application/octet-stream")})
            r.raise_for_status()
    http.close()
    return time.perf_counter() - start


def bench_backup(plan: Path, path: Path, rounds: int) -> None:
    """The one uploader (clients/upload.py) over clients.backup.BackupUpload against :func:`raw_backup_loop`."""
    from clients.backup import BackupUpload
    from clients.upload import upload_file

    ours_times, raw_times, result, rss_after = bench_tower(
        plan, path, rounds, lambda ct: upload_file(path, BackupUpload(ct)), raw_backup_loop, cookie=True)
    report("backup", "(GraphQL multipart)", f"{result.chunks_sent} chunks of {result.volume['chunk_size']} B, ",
           path.stat().st_size, ours_times, raw_times, rss_after)


# --- the ELF disk protocol (stage 09): REST upload-elf-file multipart, no chunk index, the server's current_chunk ----
def elf_cluster_id(ct, plan_path: Path) -> str:
    """The CloudTower id of the plan's cluster (connected at preset ``cluster-attached``)."""
    from plan.parse import load

    plan, _ = load(plan_path)
    found = ct.clusters(ip=str(plan.vip)) or ct.clusters()
    if not found:
        raise RuntimeError("the simulator's CloudTower lists no cluster (preset cluster-attached?)")
    return found[0]["id"]


def raw_elf_loop(ct, cluster_id: str, path: Path) -> float:
    """The same upload-elf-file calls by the simplest httpx loop (the first without upload_task_id, then with it):
    each 4 MiB chunk read whole into memory, no retries, no checks."""
    import httpx

    from clients.addressing import GuardedTransport
    from clients.ct_vms import CHUNK_SIZE

    size = path.stat().st_size
    form = {"cluster_id": (None, cluster_id), "name": (None, path.name), "size": (None, str(size)),
            "size_unit": (None, "BYTE")}
    http = httpx.Client(transport=GuardedTransport(ct.amap, httpx.HTTPTransport(verify=ct.tls.shared_verify)),
                        headers={"Authorization": ct.token}, timeout=300)
    url = f"https://{ct.address}/v2/api/upload-elf-file"
    task_id = None
    start = time.perf_counter()
    with open(path, "rb") as fh:
        while data := fh.read(CHUNK_SIZE):
            extra = {"upload_task_id": (None, task_id)} if task_id else {}
            r = http.post(url, files={"file": (path.name, data, "application/octet-stream"), **form, **extra})
            r.raise_for_status()
            if task_id is None:
                body = r.json()
                task_id = (body[0] if isinstance(body, list) else body)["id"]
    http.close()
    return time.perf_counter() - start


def bench_elf(plan: Path, path: Path, rounds: int) -> None:
    """The one uploader (clients/upload.py) over clients.ct_vms.ElfUpload against :func:`raw_elf_loop`, on a
    simulator at ``cluster-attached`` (a connected cluster)."""
    from clients.ct_vms import ElfUpload
    from clients.upload import upload_file

    cid: list[str] = []

    def cluster(ct) -> str:
        if not cid:
            cid.append(elf_cluster_id(ct, plan))
        return cid[0]

    ours_times, raw_times, result, rss_after = bench_tower(
        plan, path, rounds, lambda ct: upload_file(path, ElfUpload(ct, cluster(ct), path)),
        lambda ct, p: raw_elf_loop(ct, cluster(ct), p), preset="cluster-attached")
    report("ELF", "(upload-elf-file multipart)", f"1 + {result.chunks_sent} chunks of {result.volume['chunk_size']} B, ",
           path.stat().st_size, ours_times, raw_times, rss_after)


# --protocol -> (the sparse package's file name, its bench)
TOWER_BENCHES = {"obs": ("Observability-X86_64-v9.9.9-release.20990101-1.tar.gz", bench_obs),
                 "backup": ("smtx-backup-dr-x86_64-9.9.9.tar.gz", bench_backup),
                 "elf": ("smtx-acceptance-fio-disk1.vmdk", bench_elf)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gib", type=float, default=2.0)
    ap.add_argument("--plan", type=Path)
    ap.add_argument("--rounds", type=int, default=2, help="alternate ours/raw this many times; best of each")
    ap.add_argument("--protocol", choices=("all", "svt", "obs", "backup", "elf"), default="all",
                    help="svt: the SVT/ISO uploader; obs: the OBS (OVM operator) upload; backup: the backup (GraphQL "
                         "multipart) upload; elf: the test VM disk (REST upload-elf-file) upload; all: every "
                         "one (default)")
    args = ap.parse_args()
    if args.protocol == "all":   # one process per protocol: a peak RSS is a process's own, never another's
        for protocol in ("obs", "backup", "elf", "svt"):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--protocol", protocol, "--size-gib",
                   str(args.size_gib), "--rounds", str(args.rounds)] + (["--plan", str(args.plan)] if args.plan else [])
            if subprocess.run(cmd).returncode:
                raise SystemExit(f"bench --protocol {protocol} failed")
        return
    from clients.fisheye import SvtUpload
    from clients.upload import upload_file
    from plan.example import write_example

    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    plan = args.plan or write_example(tmp / "plan.xlsx")
    size = int(args.size_gib * 1024 ** 3)
    if args.protocol in TOWER_BENCHES:   # OBS / backup / ELF: its own simulator (at its CloudTower preset)
        name, bench = TOWER_BENCHES[args.protocol]
        package = tmp / name
        with open(package, "wb") as fh:
            fh.truncate(size)  # sparse
        try:
            bench(plan, package, args.rounds)
        finally:
            os.unlink(package)
        return
    iso = tmp / "SMTX_VMTOOLS-9.9.9-bench.iso"
    with open(iso, "wb") as fh:
        fh.truncate(size)  # sparse
    proc, control = start_simulator(plan)
    try:
        fe, _amap, _tls = deployed_cluster(plan, control)
        rss_before = peak_rss_mb()
        ours_times, raw_times, result, rss_after = alternate(args.rounds, lambda: upload_file(iso, SvtUpload(fe)),
                                                             lambda: raw_loop(fe, iso))
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
