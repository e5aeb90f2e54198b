#!/usr/bin/env bash
# Side environments for the tests of issue 26, made once per CI run. Each holds only what
# differs from .venv and sees .venv's packages after its own (an addsitedir .pth line), so
# none reinstalls the stack:
#   .venv-tf      tensorflow-cpu, Keras' third backend (tests/test_backend_second.py), kept out
#                 of .venv so that installing TensorFlow changes nothing the torch suite
#                 imports (tensorflow-datasets reads through TensorFlow once it is there);
#   .venv-newest  the newest torch the index serves (tests/test_version_pairs.py, and the
#                 wheel install that must keep it: tests/test_distribution.py).
# Sourced by .ci/run after .venv is active; exports the variables those tests read.
side_venv() {  # side_venv DIR PACKAGE...
  python3 -m venv "$1"
  local base own
  base="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  own="$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  echo "import site; site.addsitedir('$base')" > "$own/zz_base.pth"
  "$1/bin/python" -m pip install -q "${@:2}"
}
side_venv .venv-tf "tensorflow-cpu>=2.21"
side_venv .venv-newest torch==2.14.1
export KVISION_TENSORFLOW_VENV="$PWD/.venv-tf" KVISION_NEWEST_TORCH_VENV="$PWD/.venv-newest"
