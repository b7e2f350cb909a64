#!/usr/bin/env bash
# System packages the test suite uses as real components, installed only where missing (Debian, as root, or with
# sudo). Each block checks first, so on a prepared machine this does nothing and needs no network.
set -euo pipefail

apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "system-deps: need root or sudo to install $*" >&2; return 1; }
        sudo="sudo"
    fi
    if [ -z "${SYSTEM_DEPS_APT_UPDATED:-}" ]; then
        $sudo apt-get update -qq
        SYSTEM_DEPS_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

# PostgreSQL server binaries (initdb, pg_ctl) for the distributed-sweep tests (tests/sweep/test_workers.py). The
# tests start their own throw-away server on 127.0.0.1; the Debian service itself is not used.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    if command -v apt-get >/dev/null; then
        apt_install postgresql || echo "system-deps: could not install postgresql; the PostgreSQL sweep test skips" >&2
    else
        echo "system-deps: no apt-get; install PostgreSQL (initdb, pg_ctl) yourself or the PostgreSQL sweep test skips" >&2
    fi
fi

# Chromium + chromedriver for the MLflow UI browser test (tests/ui/test_mlflow_ui.py), driven by Selenium with these
# explicit paths: no test tool ever downloads a browser.
if ! { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } || ! command -v chromedriver >/dev/null; then
    if command -v apt-get >/dev/null; then
        apt_install chromium chromium-driver || echo "system-deps: could not install chromium; the UI test skips" >&2
    else
        echo "system-deps: no apt-get; install chromium and chromedriver yourself or the MLflow UI browser test skips" >&2
    fi
fi
