"""``petscale export``: a saved delta in another library's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    folder: Annotated[Path, typer.Argument(help="A folder written by `petscale tune --out`.")],
    out: Annotated[Path, typer.Option(help="Where to write the exported adapter.")],
    format: Annotated[str, typer.Option(help="Target format: peft.")] = "peft",
    base_model: Annotated[
        str | None,
        typer.Option(
            help="The base the adapter names (a hub id). Default: the model's hub id where "
            "petscale knows it, else its local folder."
        ),
    ] = None,
) -> None:
    """Write a LoRA or prompt-tuning delta as a PEFT adapter (PeftModel.from_pretrained), with
    a model card (README.md: what was trained, the label names, how to load it)."""
    # Here, not at the top: export loads the run with torch.
    from petscale import export as exporting

    written = exporting.export(folder, out, format, base_model)
    print(f"wrote a {format} adapter to {written}/: {', '.join(exporting.EXPORTED)}")
