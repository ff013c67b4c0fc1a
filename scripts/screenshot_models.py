"""Screenshots of the model manager and the Image panel's model fit, with a made-up ComfyUI install to list.

Run under a display:  xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshot_models.py --out DIR
The install holds small stand-in files with real key names (a FLUX transformer alone, an SD 1.5-shaped checkpoint,
a LoRA, an embedding, a damaged file): what the manager shows is read from their headers as it would be from real ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_install(home: Path) -> None:
    import torch
    from safetensors.torch import save_file

    root = home / "ComfyUI"
    (root / "comfy").mkdir(parents=True)

    def save(path: Path, tensors: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path))

    half = torch.float16
    save(root / "models" / "diffusion_models" / "flux1-dev.safetensors",
         {"double_blocks.0.img_attn.qkv.weight": torch.zeros(6, 2, dtype=torch.bfloat16),
          "guidance_in.in_layer.weight": torch.zeros(2, 2, dtype=torch.bfloat16),
          "img_in.weight": torch.zeros(2, 4, dtype=torch.bfloat16),
          "final_layer.linear.weight": torch.zeros(4, 2, dtype=torch.bfloat16)})
    save(root / "models" / "checkpoints" / "dreamy-sd15.safetensors",
         {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3, dtype=half),
          "first_stage_model.decoder.conv_in.weight": torch.zeros(8, 4, 3, 3, dtype=half),
          "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(4, 2, dtype=half)})
    save(root / "models" / "loras" / "ink-wash.safetensors",
         {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":
          torch.zeros(4, 768, dtype=half)})
    save(root / "models" / "embeddings" / "bad-hands.safetensors", {"emb_params": torch.zeros(2, 768)})
    (root / "models" / "checkpoints" / "half-copied.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs")
    parser.add_argument("--width", type=int, default=1360)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp())
    os.environ.setdefault("LATENT_STUDIO_HOME", str(home / "studio"))
    os.environ["LATENT_STUDIO_DETECT_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the screenshot shows the offline wording
    make_install(home)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from studio.app import create_window

    app = QApplication([])
    app.setOrganizationName("LatentStudioScreenshots")
    window = create_window(app, warm_up=False)
    window.resize(args.width, 860)
    window.show()
    library = window.state.model_library

    def shoot() -> None:
        from studio.widgets.model_manager import ModelManagerDialog

        window.show_panel("image")
        window.state.image.update({"width": 512, "height": 512, "prompt": "a heron in ink <lora:ink-wash:0.8>"})
        app.processEvents()
        window.grab().save(str(out / f"image-size-warning-{args.width}.png"))
        dialog = ModelManagerDialog(library, window, use_model=lambda ref: None)
        dialog.resize(min(args.width, 1200), 560)
        dialog.show()
        dialog.select_ref(next(e.ref for e in library.entries if e.name == "flux1-dev"))
        app.processEvents()
        dialog.grab().save(str(out / f"model-manager-{args.width}.png"))
        dialog.select_ref("stabilityai/sd-turbo")
        app.processEvents()
        dialog.grab().save(str(out / f"model-manager-download-{args.width}.png"))
        window.close()
        app.quit()

    library.changed.connect(lambda: QTimer.singleShot(200, shoot))
    library.refresh()
    app.exec()


if __name__ == "__main__":
    main()
