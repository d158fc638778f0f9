"""Make sure Debian's chromium is there for the browser tests (`make test` calls this).

Playwright drives /usr/bin/chromium; `playwright install` cannot download browsers here.
As root on Debian we install the `chromium` package; elsewhere we say what is missing
and the browser tests skip (in CI, where CI=true, they fail instead).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    if os.path.exists(CHROMIUM):
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("Installing Debian's chromium for the browser tests ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, env=env)
    if os.path.exists(CHROMIUM):
        return 0
    print(f"{CHROMIUM} is missing: install Debian's 'chromium' package.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
