# Shared by the Python side-by-side scripts (sourced, not run): benches/.venv, the
# git-ignored virtualenv their Python dependencies live in, so they never touch the
# system Python. PYTHON picks the interpreter it is made with (default python3).

# bench_venv MINOR IMPORTS PACKAGE...: checks that the interpreter is Python 3.MINOR or
# later, makes benches/.venv if it is absent, installs the PACKAGEs when `import IMPORTS`
# fails there (so repeated runs stay offline and fast), and sets BENCH_PYTHON to the
# virtualenv's interpreter.
bench_venv() {
    local minor="$1" imports="$2"
    shift 2
    local venv py
    venv="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv"
    py="${PYTHON:-python3}"
    "$py" -c "import sys; sys.exit(sys.version_info < (3, $minor))" \
        || { echo "error: $py is older than Python 3.$minor" >&2; exit 1; }
    if [[ ! -x "$venv/bin/python" ]]; then
        "$py" -m venv "$venv"
    fi
    if ! "$venv/bin/python" -c "import $imports" 2>/dev/null; then
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet "$@"
    fi
    BENCH_PYTHON="$venv/bin/python"
}
