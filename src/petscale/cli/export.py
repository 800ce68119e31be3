"""``petscale export``: a saved delta in another library's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    folder: Annotated[Path, typer.Argument(help="A folder written by `petscale tune --out`.")],
    out: Annotated[Path, typer.Option(help="Where to write the exported adapter.")],
    format: Annotated[str, typer.Option(help="Target format: peft.")] = "peft",
) -> None:
    """Write a LoRA or prompt-tuning delta as a PEFT adapter (PeftModel.from_pretrained)."""
    from petscale.export import export as run

    written = run(folder, out, format)
    print(f"wrote a {format} adapter to {written}/: adapter_config.json, adapter_model.safetensors")
