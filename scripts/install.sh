#!/usr/bin/env bash
# Install Latent Studio into ./.venv from nothing.
#   bash scripts/install.sh          the app
#   bash scripts/install.sh --test   the app + the test tools
# On Debian/Ubuntu, as root (or with sudo), it first installs the system libraries Qt and audio
# need, and the packages the built-in models' training data come from. Elsewhere it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

DEBIAN_PACKAGES=(
  # Qt (offscreen and on a desktop)
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
  # building llama-cpp-python (GGUF models) where no wheel fits
  cmake g++
  # audio playback (PortAudio) and FLAC/WAV (libsndfile ships in the soundfile wheel)
  libportaudio2
  # data the built-in models are trained on (and tests render a few glyphs from)
  fonts-noto-color-emoji unicode-data fortunes fortunes-min jargon-text
  fortune-anarchism fortunes-bofh-excuses dict-devil dict-foldoc
  # words people use for emoji (CLDR keywords): the image models' captions
  unicode-cldr-core
  # a second hand: EmojiOne 2.2's pictures of the same emoji (emoji-ldm round 11, its two-hand evaluation)
  ruby-gemojione
)

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$sudo" ] || command -v sudo >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${DEBIAN_PACKAGES[@]}" >/dev/null
  fi
else
  echo "Not a Debian-like system: install Qt's runtime libraries and PortAudio with your package manager." >&2
fi

python3 -m venv .venv
# torch first, pinned, so pip does not pick a multi-GB CUDA build for a CPU machine.
# With an NVIDIA GPU: TORCH_SPEC="torch==2.13.0" plus PyTorch's CUDA index (see README).
.venv/bin/pip install -q ${TORCH_PIP_ARGS:-} "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/pip install -q -e ".${extras}"
# llama.cpp for GGUF models (and the built-in text model's fastest path): compiled here when no wheel fits, which
# needs a C++ compiler and cmake. Without it the app runs the same models through transformers.
if ! .venv/bin/pip install -q -e ".[llama]"; then
  echo "llama-cpp-python could not be built (a C++ compiler and cmake are needed): GGUF files won't load;" \
       "the built-in text model runs through transformers." >&2
fi
echo "Installed. Start with: .venv/bin/studio"
