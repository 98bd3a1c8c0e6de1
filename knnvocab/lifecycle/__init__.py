"""A vocabulary's lifecycle beyond ingest: retire and restore classes, purge data, manage
domains, read the audit log, and check (and repair) the catalog against the store.

Every change is a new version of the domain (the pending version is its write lock) or,
for a domain delete and doctor repairs, an audit event; nothing here imports torch.
"""

from knnvocab.lifecycle.auditlog import AuditRecord, audit_log, parse_since
from knnvocab.lifecycle.common import LifecycleResult
from knnvocab.lifecycle.consistency import DoctorReport, doctor
from knnvocab.lifecycle.consistency_checks import Finding
from knnvocab.lifecycle.domains import (
    DomainInfo,
    delete_domain,
    domain_info,
    domain_infos,
    new_domain,
    set_quota,
)
from knnvocab.lifecycle.purging import PurgePlan, plan_purge, purge
from knnvocab.lifecycle.retirement import restore, retire
from knnvocab.lifecycle.rollback import liveness, rollback_pending

__all__ = [
    "AuditRecord",
    "DoctorReport",
    "DomainInfo",
    "Finding",
    "LifecycleResult",
    "PurgePlan",
    "audit_log",
    "delete_domain",
    "doctor",
    "domain_info",
    "domain_infos",
    "liveness",
    "new_domain",
    "parse_since",
    "plan_purge",
    "purge",
    "restore",
    "retire",
    "rollback_pending",
    "set_quota",
]
