"""Prompt templates for the zero-shot branch (class name -> text embedding).

Every vocabulary version records the `PromptSet` it is read with (its templates and
its name rule), so changing the defaults here never changes what an old version answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from knnvocab.errors import ConfigError, InputError

#: a compact ensemble, as used by training-free dense CLIP methods (MaskCLIP, SCLIP)
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a bad photo of a {}.",
    "a cropped photo of the {}.",
    "there is a {} in the scene.",
)


def display_name(name: str) -> str:
    """Class names as datasets spell them -> words a text encoder reads ("_background_",
    "potted_plant", "tv/monitor" -> "background", "potted plant", "tv or monitor")."""
    words = name.strip("_").replace("_", " ").replace("/", " or ").replace("-", " ")
    return " ".join(words.split())


#: how a class name becomes the words put into each template. Versions record the key,
#: so a released rule never changes: a different rule is a new key, the old one stays.
NAME_RULES: dict[str, Callable[[str], str]] = {"words-v1": display_name}
DEFAULT_NAME_RULE = "words-v1"


def list_name_rules() -> list[str]:
    return sorted(NAME_RULES)


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot be used (None: it can): it needs exactly one ``{}`` for the
    class name and no other braces, so formatting it can only ever insert the name."""
    if not template.strip():
        return "an empty template"
    rest = template.replace("{}", "", 1)
    if template.count("{}") != 1 or "{" in rest or "}" in rest:
        return f"{template!r} must contain exactly one {{}} (the class name) and no other braces"
    return None


@dataclass(frozen=True)
class PromptSet:
    """What shapes a version's zero-shot text embeddings besides the encoder: the
    ``templates`` (each with one ``{}``) whose prompt embeddings are averaged per class,
    and the name ``rule`` (a key of `NAME_RULES`) that fills the ``{}``."""

    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    rule: str = DEFAULT_NAME_RULE

    def __post_init__(self) -> None:
        if self.rule not in NAME_RULES:
            known = ", ".join(list_name_rules())
            raise ConfigError(f"unknown prompt name rule {self.rule!r} (known: {known})")
        if not self.templates:
            raise ConfigError("no prompt templates: at least one is needed")
        for template in self.templates:
            problem = template_problem(template)
            if problem is not None:
                raise ConfigError(f"prompt template: {problem}")

    def prompts_for(self, name: str) -> list[str]:
        words = NAME_RULES[self.rule](name)
        return [t.format(words) for t in self.templates]

    @property
    def key(self) -> str:
        """A short hash naming this prompt set (text embedding cache files)."""
        text = "\n".join((self.rule, *self.templates))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_PROMPTS


DEFAULT_PROMPTS = PromptSet()


def load_templates(path: Path) -> tuple[str, ...]:
    """Templates from a text file: one per line; blank lines and lines starting with
    ``#`` are ignored. Raises InputError naming the file and the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text file of prompt templates") from None
    except OSError as exc:
        raise InputError(path, f"cannot read prompt templates ({exc.strerror or exc})") from None
    templates: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        template = line.strip()
        if not template or template.startswith("#"):
            continue
        problem = template_problem(template)
        if problem is None and template in templates:
            problem = f"{template!r} repeats line {templates[template]}"
        if problem is not None:
            raise InputError(path, f"line {number}: {problem}")
        templates[template] = number
    if not templates:
        raise InputError(path, "no prompt templates (one per line, each with one {})")
    return tuple(templates)
