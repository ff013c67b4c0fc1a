#!/usr/bin/env bash
# Build the one-folder desktop bundle into dist/latent-studio/ and check it runs headless.
#   bash scripts/build_app.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/install.sh
.venv/bin/pip install -q "pyinstaller>=6"
STUDIO_CONSOLE=1 .venv/bin/pyinstaller --noconfirm --clean --log-level WARN build.spec
du -sh dist/latent-studio
# The bundled executable runs one built-in image, text and music job and checks their recipes.
QT_QPA_PLATFORM=offscreen LATENT_STUDIO_HOME="$(mktemp -d)" dist/latent-studio/latent-studio selftest
