"""Crash points for the acceptance run: a pytest plugin the crash tests load into a real run
(``python -m pytest --plan ... -p tests.crashpoints``) with ``SMTX_CRASH_AT=<point>``.

At that point the run's own process is killed with SIGKILL (``SMTX_CRASH_SIGNAL=TERM`` or ``HUP``: sent that
signal instead, to test a clean stop). Nothing in the suite knows about this module: it hooks pytest's reports
and wraps a few client methods from outside, so the product has no test seam.

Points (``<n>`` counts from 1, in this process):

* ``after:<step>`` -- right after the step's outcome is recorded in state.json (a step boundary);
* ``attached:<intent>`` -- right after a long operation's intent record got its ids (job submitted, installer
  started), before anything waited for it;
* ``deploy-poll:<n>`` -- at the n-th deployment status poll after the deploy was submitted (mid-deploy);
* ``job-poll:<n>`` -- at the n-th job poll after a VM create job was submitted (mid-VM-create);
* ``install-log:<n>`` -- at the n-th read of the CloudTower installer's log (mid-install);
* ``connect-poll:<n>`` -- at the n-th ``get-clusters`` after ``connect-cluster`` returned (mid-connect, stage 05);
* ``upload-chunk:<glob>:<n>`` -- after the n-th chunk of a file matching glob was sent (mid-upload).
* ``obs-chunk:<n>`` -- after the n-th chunk of the OBS package reached the OVM operator (mid-upload, stage 07a);
* ``obs-poll:<n>`` -- at the n-th OBS inventory read after ``createBundleApplicationInstance`` returned
  (mid-install, stage 07a).
* ``backup-chunk:<n>`` -- after the n-th chunk of the backup package was sent (mid-upload, stage 07b);
* ``backup-poll:<n>`` -- at the n-th ``backupServices`` read after ``createBackupService`` returned (mid-install,
  stage 07b). ``attached:07b.package`` (upload complete, registration not yet seen) and ``attached:07b.service``
  (service submitted) are intent points.
* ``inspection-poll:<n>`` -- at the n-th job read after the inspection job was created (mid-job, stage 08);
* ``export-poll:<n>`` -- at the n-th export-status read after the report export was requested (mid-export,
  stage 08). ``attached:08.job`` and ``attached:08.export`` are intent points.
* ``elf-chunk:<n>`` -- right after the n-th ``upload-elf-file`` answer (the test VM's disk, stage 09; the first call
  carries chunk 1 under the default profile, so ``elf-chunk:1`` is mid-upload, before the uploader's journal holds
  the task);
* ``ct-answer:<call>:<n>`` -- right after the n-th answer to the CloudTower REST call ``<call>`` (``import-vm``,
  ``clone-vm``, ``start-vm``, ``update-vm-nic``, ``delete-vm``...): the operation is submitted, its intent not yet
  given the task id (stages 09-11). ``attached:09.import``, ``attached:09.clones/<vm>`` and
  ``attached:09.start/<vm>`` are intent points;
* ``guest-cmd:<glob>:<n>`` -- when the n-th command matching glob is run in a test VM over SSH (the earlier ones,
  in the other VMs, still running): mid-preconditioning (``fio --name=precondition *``) or mid-profile (stage 10).
"""
from __future__ import annotations

import fnmatch
import os
import signal
import threading

import pytest

ENV = "SMTX_CRASH_AT"
SIGNAL_ENV = "SMTX_CRASH_SIGNAL"


def _die(point: str) -> None:
    name = os.environ.get(SIGNAL_ENV, "KILL").upper()
    sig = getattr(signal, f"SIG{name}")
    os.kill(os.getpid(), sig)
    if sig != getattr(signal, "SIGKILL", None):
        return   # a catchable signal: its handler runs (now, in the main thread) and decides what follows


class _Points:
    def __init__(self, spec: str):
        self.kind, _, self.arg = spec.partition(":")
        self.spec = spec
        self.count = 0
        self.armed = False

    def hit(self) -> None:
        self.count += 1


def pytest_configure(config: pytest.Config) -> None:
    spec = os.environ.get(ENV, "").strip()
    if spec:
        config.pluginmanager.register(CrashAt(_Points(spec)), "smtx-crashpoints")


class CrashAt:
    def __init__(self, p: _Points):
        self.p = p
        self.fired = False
        self._wrap()

    def fire(self) -> None:
        if not self.fired:
            self.fired = True
            _die(self.p.spec)

    # --- step boundaries -------------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report) -> None:
        if self.p.kind != "after" or getattr(report, "step_id", None) != self.p.arg:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.fire()

    # --- inside long operations ------------------------------------------------------------------------------
    def _wrap(self) -> None:
        """Wrap only what this point needs (so the plugin also runs against code without intent records)."""
        crash, p = self, self.p
        if p.kind == "attached":
            from fixtures.run import Intent

            attach = Intent.attach

            def attach_then_crash(it, **ids):
                attach(it, **ids)
                if it.key == p.arg:
                    crash.fire()

            Intent.attach = attach_then_crash
        elif p.kind == "deploy-poll":
            from clients.deployment import DeploymentClient

            _arm_after(DeploymentClient, "deploy", p)
            _count_calls(DeploymentClient, "deploy_status", crash)
        elif p.kind == "job-poll":
            from clients.fisheye import FisheyeClient

            _arm_after(FisheyeClient, "create_vm", p)
            _count_calls(FisheyeClient, "job", crash)
        elif p.kind == "connect-poll":
            from clients.cloudtower import CloudTowerClient

            _arm_after(CloudTowerClient, "connect_cluster", p)
            _count_calls(CloudTowerClient, "clusters", crash)
        elif p.kind == "install-log":
            from clients.cloudtower import InstallLog

            p.armed = True
            _count_calls(InstallLog, "read", crash)
        elif p.kind == "upload-chunk":
            import clients.upload as upload

            pattern, _, n = p.arg.rpartition(":")
            send_one = upload._send_one

            def send_then_crash(path, *args, **kwargs):
                answer = send_one(path, *args, **kwargs)
                if fnmatch.fnmatch(os.path.basename(str(path)), pattern):
                    p.hit()
                    if p.count >= int(n):
                        crash.fire()
                return answer

            upload._send_one = send_then_crash
        elif p.kind in ("inspection-poll", "export-poll"):
            from clients.inspector import InspectorApi

            submit, poll = ("create_job", "job") if p.kind == "inspection-poll" else ("export", "export_status")
            _arm_after(InspectorApi, submit, p)
            _count_calls(InspectorApi, poll, crash)
        elif p.kind in _WRAPPERS:
            _WRAPPERS[p.kind](crash)


def _wrap_workloads(crash: CrashAt) -> None:
    """Stages 09-11: test VM disk chunks, CloudTower VM calls answered, commands in the test VMs."""
    p = crash.p
    if p.kind == "elf-chunk":
        from clients.ct_vms import ElfUpload

        call = ElfUpload._call

        def chunk_then_crash(self, *args, **kwargs):
            answer = call(self, *args, **kwargs)
            p.hit()
            if p.count >= int(p.arg):
                crash.fire()
            return answer

        ElfUpload._call = chunk_then_crash
        return
    name, _, n = p.arg.rpartition(":")
    if p.kind == "ct-answer":
        from clients.cloudtower import CloudTowerClient

        rest = CloudTowerClient.rest

        def answered_then_crash(self, call, *args, **kwargs):
            answer = rest(self, call, *args, **kwargs)
            if call == name:
                p.hit()
                if p.count >= int(n):
                    crash.fire()
            return answer

        CloudTowerClient.rest = answered_then_crash
        return
    from clients.ssh import SshClient

    run = SshClient.run

    def crash_while_running(self, cmd, *args, **kwargs):
        if fnmatch.fnmatch(str(cmd), name):
            with _GUEST_LOCK:
                p.hit()
                due = p.count >= int(n)
            if due:
                crash.fire()
        return run(self, cmd, *args, **kwargs)

    SshClient.run = crash_while_running


_GUEST_LOCK = threading.Lock()


def _wrap_backup(crash: CrashAt) -> None:
    """Stage 07b: ``backup-chunk`` counts the backup chunks sent; ``backup-poll`` the service reads after the create."""
    import clients.backup as backup

    p = crash.p
    if p.kind == "backup-chunk":
        send = backup.BackupUpload.send

        def chunk_then_crash(self, *args, **kwargs):
            answer = send(self, *args, **kwargs)
            p.hit()
            if p.count >= int(p.arg):
                crash.fire()
            return answer

        backup.BackupUpload.send = chunk_then_crash
        return
    create, services = backup.create_service, backup.services

    def create_then_arm(*args, **kwargs):
        answer = create(*args, **kwargs)
        p.armed = True
        return answer

    def counted_services(*args, **kwargs):
        if p.armed:
            p.hit()
            if p.count >= int(p.arg):
                crash.fire()
        return services(*args, **kwargs)

    backup.create_service, backup.services = create_then_arm, counted_services


def _wrap_obs(crash: CrashAt) -> None:
    """Stage 07a: ``obs-chunk`` counts the OBS chunks sent; ``obs-poll`` the inventory reads after the create."""
    import clients.obs as obs

    p = crash.p
    if p.kind == "obs-chunk":
        send_chunk = obs.ObsUpload.send_chunk

        def chunk_then_crash(self, *args, **kwargs):
            answer = send_chunk(self, *args, **kwargs)
            p.hit()
            if p.count >= int(p.arg):
                crash.fire()
            return answer

        obs.ObsUpload.send_chunk = chunk_then_crash
        return
    create, inventory = obs.create_instance, obs.inventory

    def create_then_arm(*args, **kwargs):
        answer = create(*args, **kwargs)
        p.armed = True
        return answer

    def counted_inventory(*args, **kwargs):
        if p.armed:
            p.hit()
            if p.count >= int(p.arg):
                crash.fire()
        return inventory(*args, **kwargs)

    obs.create_instance, obs.inventory = create_then_arm, counted_inventory


def _arm_after(cls, name: str, p: _Points) -> None:
    """Count from the moment ``cls.name`` returned (the long operation was submitted)."""
    original = getattr(cls, name)

    def armed(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        p.armed = True
        return result

    setattr(cls, name, armed)


def _count_calls(cls, name: str, crash: CrashAt) -> None:
    original = getattr(cls, name)
    p = crash.p

    def counted(self, *args, **kwargs):
        if p.armed:
            p.hit()
            if p.count >= int(p.arg):
                crash.fire()
        return original(self, *args, **kwargs)

    setattr(cls, name, counted)


# the points whose wrapping lives in a function of its own (stages 07a, 07b, 09-11)
_WRAPPERS = {"obs-chunk": _wrap_obs, "obs-poll": _wrap_obs, "backup-chunk": _wrap_backup, "backup-poll": _wrap_backup,
             "elf-chunk": _wrap_workloads, "ct-answer": _wrap_workloads, "guest-cmd": _wrap_workloads}
