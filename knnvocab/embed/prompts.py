"""Prompt templates for the zero-shot branch (class name -> text embedding)."""

from __future__ import annotations

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


def prompts_for(name: str, templates: tuple[str, ...] = DEFAULT_TEMPLATES) -> list[str]:
    return [t.format(display_name(name)) for t in templates]
