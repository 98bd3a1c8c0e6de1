"""Domains (tenants) and the encoders they are bound to."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.models import Domain, Encoder
from knnvocab.embed.spec import EncoderInfo, EncoderSpec
from knnvocab.errors import ConfigError, DomainNotFoundError, EncoderMismatchError

DOMAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_domain_name(name: str) -> str:
    if not DOMAIN_NAME.match(name):
        raise ConfigError(
            f"invalid domain name {name!r}: use 1-64 lowercase letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_max_instances(value: int | None) -> int | None:
    """A quota as stored: at least 1 instance, or None for no quota."""
    if value is not None and value < 1:
        raise ConfigError(
            f"a domain's quota (max instances) must be at least 1, got {value}; remove a "
            "quota with `knnvocab domain set NAME --no-limit`"
        )
    return value


def find_domain(session: Session, name: str) -> Domain | None:
    return session.scalar(select(Domain).where(Domain.name == name))


def get_domain(session: Session, name: str) -> Domain:
    domain = find_domain(session, name)
    if domain is None:
        known = session.scalars(select(Domain.name).order_by(Domain.name).limit(10)).all()
        hint = f" (known: {', '.join(known)})" if known else " (no domains yet)"
        raise DomainNotFoundError(name, f"domain {name!r} does not exist{hint}")
    return domain


def list_domains(session: Session) -> list[Domain]:
    return list(session.scalars(select(Domain).order_by(Domain.name)))


def create_domain(
    session: Session,
    name: str,
    user: str,
    description: str = "",
    encoder: Encoder | None = None,
    max_instances: int | None = None,
) -> Domain:
    """A new, empty domain, bound to ``encoder`` if given (else by its first ingest), with
    a quota of ``max_instances`` if given."""
    check_domain_name(name)
    check_max_instances(max_instances)
    if find_domain(session, name) is not None:
        raise ConfigError(f"domain {name!r} already exists")
    domain = Domain(
        name=name,
        description=description,
        created_by=user,
        head_version=0,
        max_instances=max_instances,
    )
    if encoder is not None:
        domain.encoder_id, domain.encoder = encoder.id, encoder
    session.add(domain)
    session.flush()
    detail: dict[str, str | int] = {"description": description}
    if encoder is not None:
        detail["encoder"] = encoder.fingerprint
    if max_instances is not None:
        detail["max_instances"] = max_instances
    audit.record(session, "domain.create", user, domain=name, detail=detail)
    return domain


def ensure_encoder(session: Session, info: EncoderInfo) -> Encoder:
    """The catalog row of an encoder, created on first use (also when another process
    creates it at the same moment: then its row is returned)."""
    row = session.scalar(select(Encoder).where(Encoder.fingerprint == info.fingerprint))
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = _new_encoder(info)
            session.add(row)
    except IntegrityError:
        row = session.scalar(select(Encoder).where(Encoder.fingerprint == info.fingerprint))
        if row is None:
            raise
    return row


def _new_encoder(info: EncoderInfo) -> Encoder:
    spec = info.spec
    return Encoder(
        fingerprint=info.fingerprint,
        model=info.model_name,
        source=spec.source,
        pretrained=spec.pretrained,
        checkpoint=spec.checkpoint,
        weights_sha256=info.weights_sha256,
        method=spec.method,
        resolution=info.resolution,
        dim=info.dim,
        collection=info.collection,
        params={
            "spec": spec.to_json(),
            "model_config_sha256": info.model_config_sha256,
            "patch_size": info.patch_size,
        },
    )


def encoder_spec(row: Encoder) -> EncoderSpec:
    """How to load the encoder a catalog row describes."""
    return EncoderSpec.from_json(row.params["spec"])


def describe_encoder(row: Encoder) -> str:
    return (
        f"{encoder_spec(row).describe()} [{row.method}, {row.resolution}px, {row.fingerprint[:12]}]"
    )


def bind_encoder(domain: Domain, encoder: Encoder) -> None:
    """Bind a new domain to ``encoder``; refuse if it is bound to another one."""
    if domain.encoder_id is None:
        domain.encoder_id = encoder.id
        domain.encoder = encoder
        return
    if domain.encoder_id != encoder.id:
        bound = domain.encoder
        raise EncoderMismatchError(
            f"domain {domain.name!r} is bound to encoder "
            f"{describe_encoder(bound) if bound else domain.encoder_id}, but this run uses "
            f"{describe_encoder(encoder)}; vectors of two encoders are never mixed — use the "
            "domain's encoder or another domain"
        )
