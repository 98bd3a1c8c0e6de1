"""The one point payload every writer and reader uses, the table of its indexed fields,
and the one description of which points a `PointFilter` admits (the visibility rule),
which each backend translates into its own filter type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from knnvocab.errors import StoreError


@dataclass(frozen=True)
class PointPayload:
    """What a stored instance embedding carries.

    Attributes:
        domain: the tenant (always filtered on).
        class_id / label: the domain's stable class id and its name at ingest.
        added_in: the version that added the point; ``removed_in``: the version that hid
            it (None while live). A reader of version v sees ``added_in <= v`` and not
            ``removed_in <= v``.
        dataset / image / instance: provenance (dataset name, image key, instance key).
        run_id: the ingest run (or lifecycle change) that wrote it.
        area: the instance's mask area in pixels.
        restored_from: the id of the retired point a restore copied.
    """

    domain: str
    class_id: int
    label: str
    added_in: int
    dataset: str
    run_id: str
    image: str
    instance: str
    area: int
    removed_in: int | None = None
    restored_from: str | None = None

    def __post_init__(self) -> None:
        for name in ("domain", "label", "dataset", "run_id", "image", "instance"):
            if not isinstance(getattr(self, name), str):
                raise StoreError(
                    f"point payload: {name} must be a string, got {getattr(self, name)!r}"
                )
        if not self.domain:
            raise StoreError("point payload: domain is required")
        for name in ("class_id", "added_in", "area"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise StoreError(f"point payload: {name} must be an integer >= 0, got {value!r}")
        if self.removed_in is not None and (
            not isinstance(self.removed_in, int) or self.removed_in <= self.added_in
        ):
            raise StoreError(
                f"point payload: removed_in must be a version after added_in {self.added_in}, "
                f"got {self.removed_in!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The payload as stored: absent optional fields are left out (a live point has
        no ``removed_in`` field, which is what the visibility rule tests)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointPayload:
        """A stored payload, checked; fields this code does not know are ignored."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise StoreError(f"point payload {dict(data)!r} is incomplete: {exc}") from None


Kind = Literal["keyword", "integer"]


@dataclass(frozen=True)
class IndexedField:
    """A payload field with an index, created before any data."""

    name: str
    kind: Kind
    tenant: bool = False  # the tenant key: Qdrant co-locates each value's points
    range: bool = False  # integer range queries (the visibility rule)


#: every indexed payload field; both backends create exactly these
INDEXED_FIELDS: tuple[IndexedField, ...] = (
    IndexedField("domain", "keyword", tenant=True),
    IndexedField("added_in", "integer", range=True),
    IndexedField("removed_in", "integer", range=True),
    IndexedField("class_id", "integer"),
    IndexedField("dataset", "keyword"),
)
INDEXED = {f.name for f in INDEXED_FIELDS}


# the filter, described once ----------------------------------------------------------


@dataclass(frozen=True)
class Equals:
    field: str
    value: int | str


@dataclass(frozen=True)
class AnyOf:
    field: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class AtMost:
    field: str
    value: int


@dataclass(frozen=True)
class Above:
    field: str
    value: int


@dataclass(frozen=True)
class Missing:
    """The field is absent (or null)."""

    field: str


Condition = Equals | AnyOf | AtMost | Above | Missing


@dataclass(frozen=True)
class Conditions:
    """A conjunction: every ``must`` holds and no ``must_not`` does."""

    must: tuple[Condition, ...]
    must_not: tuple[Condition, ...]
