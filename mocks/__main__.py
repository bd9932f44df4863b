"""``python -m mocks serve --plan PLAN.xlsx [--time-scale 1.0] [--faults FILE]``;
``python -m mocks ca PATH`` writes the simulator's CA certificate (fixed: the same in every simulator).

Loads the plan, starts the simulator, prints the address map, serves until Ctrl-C, SIGTERM or
SIGHUP (SIGBREAK on Windows), then stops cleanly: threads joined, sockets closed, its temporary
folder (certificates) removed; exit code 0. SIGINT is handled explicitly, so a server started as a
background job (where the shell set SIGINT to "ignore") still stops on it. No fork: works the same
on Linux, macOS and Windows.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")


def install_stop_handlers(stop: threading.Event) -> dict:
    """Make every stop signal this platform has set ``stop`` (also SIGINT when inherited as
    ignored). Returns the previous handlers, for :func:`restore_handlers`."""
    from clients import signals

    return signals.install(STOP_SIGNALS, lambda signum, frame: stop.set())


def restore_handlers(previous: dict) -> None:
    from clients import signals

    signals.restore(previous)


def main(argv: list[str] | None = None) -> int:
    from .deployment.models import DEFAULT_DEPLOY_TOKEN, DISK_LAYOUTS

    parser = argparse.ArgumentParser(prog="python -m mocks", description="SMTX OS world simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="simulate the world a planning workbook describes")
    serve.add_argument("--plan", required=True, help="planning workbook (.xlsx)")
    serve.add_argument("--time-scale", type=float, default=1.0,
                       help="real seconds per simulated second: 1.0 realistic (default), 0.01 = 100x faster")
    serve.add_argument("--faults", help="JSON file of fault rules (SMTX_SIM_FAULTS is read too)")
    serve.add_argument("--disk-layout", choices=sorted(DISK_LAYOUTS), help="default: from the storage architecture")
    serve.add_argument("--token", default=DEFAULT_DEPLOY_TOKEN, help="deployment API x-smartx-token")
    serve.add_argument("--preset-hostnames", action="store_true",
                       help="hosts report their planned hostname before deployment")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    serve.add_argument("--profile", help="behaviours where the vendor sources differ, e.g. real-gear or "
                                         "sudo-nopasswd,vip-job (default: SMTX_SIM_PROFILE, else each group's default)")
    from .presets import PRESETS
    serve.add_argument("--preset", choices=PRESETS,
                       help="fast-forward the world first (cluster-deployed: stages 01-02 done, cluster-configured: "
                            "01-03, cloudtower-ready: 01-04, cluster-attached: 01-05, cloudtower-configured: 01-06; "
                            "see mocks/presets.py)")
    ca = sub.add_parser("ca", help="write the simulator's CA certificate (the same in every simulator), for "
                                   "pytest --simulate --ca-bundle PATH")
    ca.add_argument("path", help="where to write the PEM")
    args = parser.parse_args(argv)
    if args.command == "ca":
        return write_ca(args.path)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    from plan.parse import PlanReadError, load

    from .server import Simulator, format_address_map

    try:
        plan, findings = load(args.plan)
    except PlanReadError as exc:
        print(exc, file=sys.stderr)
        return 2
    errors = [f for f in findings if f.is_error]
    if findings:
        print(f"plan: {len(findings)} finding(s), {len(errors)} error(s); simulating what could be read",
              file=sys.stderr)
    try:
        sim = Simulator.from_plan(plan, time_scale=args.time_scale, faults=args.faults,
                                  disk_layout=args.disk_layout, deploy_token=args.token,
                                  preset_hostnames=args.preset_hostnames, profiles=args.profile)
    except (ValueError, OSError) as exc:
        print(f"cannot start the simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = install_stop_handlers(stop)
    try:
        sim.start()
        summary = None
        if args.preset:
            from .presets import PresetError, apply_preset
            try:
                summary = apply_preset(sim, args.preset)
            except PresetError as exc:
                print(f"cannot apply preset {args.preset}: {exc}", file=sys.stderr)
                return 2
        print(f"SMTX OS simulator: plan {args.plan} ({len(sim.hosts)} hosts), time_scale {args.time_scale}, "
              f"disk layout {sim.world.disk_layout}")
        print(f"control:   {sim.control_url}/_sim")
        print(f"ca bundle: {sim.ca_bundle}")
        print(f"token:     x-smartx-token: {sim.deploy_token}")
        print(f"profiles:  {', '.join(sim.profiles) or 'defaults'}  (SMTX_SIM_PROFILE; see mocks/README.md)")
        if summary is not None:
            import json
            print(f"preset {args.preset}: {json.dumps(summary, ensure_ascii=False)}")
        print("requests are routed by the local port; send the simulated address as the Host header:")
        print(format_address_map(sim))
        print("serving; press Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping", flush=True)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        sim.close()
        restore_handlers(previous)
    return 0


def write_ca(path: str) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from .tls import TLSMaterial

    with tempfile.TemporaryDirectory(prefix="smtx-sim-ca-") as tmp:
        shutil.copyfile(TLSMaterial(Path(tmp)).ca_bundle, path)
    print(f"simulator CA written to {path}; use: pytest --plan PLAN.xlsx --simulate --ca-bundle {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
