"""ELF CPU compatibility: the cluster's recommended CPU models and the chosen one
(``settings["cpu_model"]``)."""
from __future__ import annotations

from typing import Any

from .cluster import ClusterContext
from .errors import invalid


def cpu_models_for(cpu: dict) -> list[str]:
    """Recommended ELF CPU models for one host's CPU (deterministic). AMD EPYC gives ``["EPYC"]``
    as the guide shows for the scan example's AMD EPYC 7K62."""
    vendor = str(cpu.get("vendor") or "")
    brand = str(cpu.get("brand") or "").upper()
    if vendor == "AuthenticAMD":
        return ["EPYC"] if "EPYC" in brand else ["Opteron_G5"]
    if vendor == "HygonGenuine":
        return ["Dhyana"]
    if vendor == "GenuineIntel":
        return ["Skylake-Server-IBRS", "Skylake-Server"] if "XEON" in brand else ["Haswell-noTSX"]
    return []


class Cpu:
    def __init__(self, ctx: ClusterContext, settings: dict[str, Any]):
        self.ctx = ctx
        self.settings = settings            # the Settings dict (shared)

    def recommended_cpu_models(self) -> list[str]:
        models: list[str] | None = None
        for h in self.ctx.cluster_hosts():
            mine = cpu_models_for(h.scan()["cpu"])
            models = mine if models is None else [m for m in models if m in mine]
        return models or []

    def cpu_compatibility(self) -> dict:
        return {"cpu_model": self.settings.get("cpu_model")}

    def set_cpu_compatibility(self, cpu_model: str) -> dict:
        rec = self.recommended_cpu_models()
        if cpu_model not in rec:
            raise invalid(f"cpu_model {cpu_model!r} is not one of the cluster's recommended models {rec}")
        with self.ctx.lock:
            self.settings["cpu_model"] = cpu_model
        return {}
