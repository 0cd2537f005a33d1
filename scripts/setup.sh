#!/usr/bin/env bash
# Set up everything fcnet needs on a fresh machine; fast and silent on a second run.
#  - Debian's dataset-fashion-mnist package, when it is missing and apt is usable as root
#  - a virtual environment in .venv with fcnet (editable) and its dev tools
# Environment: FCNET_PYTHON (default python3), FCNET_SKIP_APT=1 to never call apt-get,
# FCNET_SETUP_MIN_FREE_GB (default 7): the free disk a new .venv asks for.
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir=/usr/share/datasets/fashion-mnist
if [ ! -f "$data_dir/train-images-idx3-ubyte.gz" ] && [ "${FCNET_SKIP_APT:-0}" != 1 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian package dataset-fashion-mnist" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: Fashion-MNIST is not in $data_dir and apt-get is not usable here;" \
         "fcnet will download it on first use (or set FCNET_DATA_DIR)" >&2
  fi
fi

# Reinstall only when the package definition or the pinned builds change.
stamp=.venv/.fcnet-setup-stamp
want=$(cat pyproject.toml constraints-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if [ ! -x .venv/bin/python ]; then
    # torch's Linux wheels carry CUDA's libraries: a new environment takes about 6.2 GB,
    # and a full disk would otherwise stop pip half-way with a bare OSError.
    need_gb=${FCNET_SETUP_MIN_FREE_GB:-7}
    free_gb=$(( $(df -Pk . | awk 'NR == 2 {print $4}') / 1048576 ))
    if [ "$free_gb" -lt "$need_gb" ]; then
      echo "setup: a new .venv in $PWD needs about $need_gb GB of free disk and only" \
           "$free_gb GB are free; free some space (old virtual environments, pip's" \
           "cache) and run it again, or set FCNET_SETUP_MIN_FREE_GB=0 to try anyway" >&2
      exit 1
    fi
    echo "setup: creating .venv" >&2
    "${FCNET_PYTHON:-python3}" -m venv .venv
  fi
  echo "setup: installing fcnet and its dev tools into .venv (about a minute)" >&2
  set +e
  .venv/bin/python -m pip install -q --disable-pip-version-check \
      -c constraints-dev.txt -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" >&2
  pip_status=${PIPESTATUS[0]}
  set -e
  if [ "$pip_status" != 0 ]; then
    echo "setup: pip failed (exit $pip_status, its message above); nothing was marked" \
         "as installed, so the next run tries again" >&2
    exit "$pip_status"
  fi
  .venv/bin/python -c "import fcnet, torch, torchvision, pytest, hypothesis"
  echo "$want" > "$stamp"
fi
